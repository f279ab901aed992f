"""streaming ingestion: a source's mode, its stream position, and when a post reached the queue

Revision ID: 0012
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True)
        )
        batch_op.add_column(sa.Column("mode_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("stream_cursor", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "stream_position_at", monitor.models.UTCDateTime(timezone=True), nullable=True
            )
        )
    # Posts stored before now have no queue time: the latency histograms leave them out.
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("queued_at", monitor.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_posts_platform_ref", ["platform", "ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_index("ix_posts_platform_ref")
        batch_op.drop_column("queued_at")
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("stream_position_at")
        batch_op.drop_column("stream_cursor")
        batch_op.drop_column("mode_note")
        batch_op.drop_column("mode")
