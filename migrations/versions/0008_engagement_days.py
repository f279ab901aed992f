"""engagement roll-up: per post and local day, back-filled from the snapshots

Revision ID: 0008
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models
from monitor.config import get_settings
from monitor.services.engagement import rebuild

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METRICS = ("likes", "shares", "replies", "quotes", "views")


def _counts(prefix: str) -> list[sa.Column[int]]:
    return [sa.Column(f"{prefix}{m}", sa.BigInteger(), nullable=True) for m in _METRICS]


def upgrade() -> None:
    op.create_table(
        "engagement_days",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("taken_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        *_counts(""),
        *_counts("prev_"),
        *_counts("gained_"),
        sa.Column("interactions", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id", "day"),
    )
    with op.batch_alter_table("engagement_days", schema=None) as batch_op:
        batch_op.create_index(
            "ix_engagement_days_day",
            ["day", "interactions", "post_id", "platform", *[f"gained_{m}" for m in _METRICS]],
            unique=False,
        )
    op.create_table(
        "engagement_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("built_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Days are cut in the configured zone, as the digest cuts them.
    rebuild(op.get_bind(), get_settings().zone)


def downgrade() -> None:
    op.drop_table("engagement_rollup")
    with op.batch_alter_table("engagement_days", schema=None) as batch_op:
        batch_op.drop_index("ix_engagement_days_day")
    op.drop_table("engagement_days")
