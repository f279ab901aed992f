"""staged media (one stored copy per attachment, its source identity, moderator alt text),
authors' opt-outs and recorded consent

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models

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
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opt_out", sa.Text(), nullable=True))
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("how", sa.Text(), nullable=False),
        sa.Column("obtained_on", sa.Date(), nullable=False),
        sa.Column("covers", sa.Text(), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("recorded_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_post_id"), ["post_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_post_id"))
    op.drop_table("consents")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_column("opt_out")
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_column("alt_edited")
        batch_op.drop_column("media_key")
