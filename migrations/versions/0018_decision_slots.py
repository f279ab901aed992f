"""decisions roll-up per 15-minute UTC slot, status and wait bucket; each decision's wait;
each post's bound on what it can gain over a range (a range's top posts); indexes for a
period's removals and reported gaps; approved and pending posts in the posts roll-up

Revision ID: 0018
Revises: 0005, 0006, 0007, 0010, 0011, 0012, 0013, 0014, 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from monitor.services import engagement, rollup
from monitor.services.decisions import rebuild

revision: str = "0018"
down_revision: str | Sequence[str] | None = (
    "0005",
    "0006",
    "0007",
    "0010",
    "0011",
    "0012",
    "0013",
    "0014",
    "0016",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decision_slots",
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("to_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("decisions", sa.Integer(), nullable=False),
        sa.Column("wait_min", sa.BigInteger(), nullable=True),
        sa.Column("wait_max", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("slot", "to_status", "bucket"),
        sqlite_with_rowid=False,
    )
    # Plain ADD COLUMN and CREATE INDEX, never a batch (a batch may copy the table).
    op.add_column("moderation_events", sa.Column("wait_us", sa.BigInteger(), nullable=True))
    op.create_index("ix_moderation_events_action_at", "moderation_events", ["action", "at"])
    op.create_index("ix_poll_runs_gap", "poll_runs", ["gap", "started_at"])
    for table in ("post_slots", "platform_totals"):
        for status in ("approved", "pending"):
            op.add_column(
                table, sa.Column(status, sa.Integer(), server_default="0", nullable=False)
            )
    rollup.rebuild(op.get_bind())
    rebuild(op.get_bind())
    op.create_index("ix_moderation_events_wait", "moderation_events", ["wait_us", "at"])
    op.create_table(
        "gain_bounds",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.BigInteger(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id"),
    )
    engagement.rebuild_bounds(op.get_bind())
    op.create_index(
        "ix_gain_bounds_rank", "gain_bounds", ["rank", "post_id", "first_day", "last_day"]
    )


def downgrade() -> None:
    op.drop_index("ix_gain_bounds_rank", table_name="gain_bounds")
    op.drop_table("gain_bounds")
    op.drop_index("ix_moderation_events_wait", table_name="moderation_events")
    op.drop_index("ix_moderation_events_action_at", table_name="moderation_events")
    op.drop_index("ix_poll_runs_gap", table_name="poll_runs")
    for table in ("post_slots", "platform_totals"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("pending")
            batch.drop_column("approved")
    with op.batch_alter_table("moderation_events") as batch:
        batch.drop_column("wait_us")
    op.drop_table("decision_slots")
