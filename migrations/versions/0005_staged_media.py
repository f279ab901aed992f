"""staged media: one stored copy per attachment, its source identity and moderator alt text

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_key", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("alt_edited", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Attachments stored before now are known by their URL; staging fetches the rest.
    op.execute("UPDATE media SET media_key = url WHERE media_key IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_column("alt_edited")
        batch_op.drop_column("media_key")
