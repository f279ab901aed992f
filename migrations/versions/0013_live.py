"""live gallery: latency samples of each step of a post's way to and off the public

Revision ID: 0013
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models

revision: str = "0013"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "latency_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stage", "post_id", "version", name="uq_latency_samples_once"),
    )
    op.create_index("ix_latency_samples_stage_at", "latency_samples", ["stage", "at"])


def downgrade() -> None:
    op.drop_index("ix_latency_samples_stage_at", table_name="latency_samples")
    op.drop_table("latency_samples")
