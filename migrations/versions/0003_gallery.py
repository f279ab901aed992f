"""gallery: pinned media renditions and public takedown requests

Revision ID: 0003
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pinned_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("pinned_widths", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("pinned_width", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pinned_height", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_media_pinned_hash"), ["pinned_hash"], unique=False)

    op.create_table(
        "takedown_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=True),
        sa.Column("at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("contact", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("client_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("takedown_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_takedown_requests_post_id"), ["post_id"], unique=False)
        batch_op.create_index("ix_takedown_requests_client_at", ["client_key", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("takedown_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_takedown_requests_client_at")
        batch_op.drop_index(batch_op.f("ix_takedown_requests_post_id"))
    op.drop_table("takedown_requests")
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_pinned_hash"))
        batch_op.drop_column("pinned_height")
        batch_op.drop_column("pinned_width")
        batch_op.drop_column("pinned_widths")
        batch_op.drop_column("pinned_hash")
