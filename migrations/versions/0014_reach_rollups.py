"""posts roll-up per 15-minute UTC slot (posts, hashtags, authors) and author follower counts

Revision ID: 0014
Revises: 0008
"""

from collections.abc import Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models
from monitor.services import engagement
from monitor.services.rollup import rebuild

revision: str = "0014"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METRICS = ("likes", "shares", "replies", "quotes", "views")


def upgrade() -> None:
    op.create_table(
        "post_slots",
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        *[sa.Column(m, sa.BigInteger(), nullable=False) for m in _METRICS],
        *[sa.Column(f"known_{m}", sa.Integer(), nullable=False) for m in _METRICS],
        sa.PrimaryKeyConstraint("slot", "platform"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "platform_totals",
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        *[sa.Column(m, sa.BigInteger(), nullable=False) for m in _METRICS],
        *[sa.Column(f"known_{m}", sa.Integer(), nullable=False) for m in _METRICS],
        sa.PrimaryKeyConstraint("platform"),
    )
    op.create_table(
        "tag_slots",
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("tag", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("slot", "tag"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "author_slots",
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("author_handle", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("prev_slot", sa.Integer(), nullable=True),
        sa.Column("posts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "author_handle", "slot"),
        sqlite_with_rowid=False,
    )
    # Plain CREATE INDEX and ADD COLUMN, never a batch: on SQLite a batch may copy a
    # table, and dropping ``posts`` would cascade to every snapshot.
    op.create_index("ix_author_slots_slot", "author_slots", ["platform", "slot", "prev_slot"])
    op.create_index("ix_author_slots_prev", "author_slots", ["platform", "prev_slot", "slot"])
    op.create_index(
        "ix_moderation_events_at_action",
        "moderation_events",
        ["at", "action", "to_status", "post_id"],
    )
    op.create_table(
        "author_followers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("author_handle", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("taken_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("followers", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_author_followers_author", "author_followers", ["platform", "author_handle", "taken_at"]
    )
    op.create_index("ix_posts_flagged_created_at", "posts", ["flagged", "created_at"])
    op.add_column(
        "engagement_days",
        sa.Column("flips", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index("ix_engagement_days_flips", "engagement_days", ["flips", "day", "post_id"])
    op.create_table(
        "gain_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        *[sa.Column(m, sa.BigInteger(), nullable=False) for m in _METRICS],
        *[sa.Column(f"known_{m}", sa.Integer(), nullable=False) for m in _METRICS],
        sa.PrimaryKeyConstraint("day", "platform"),
    )
    connection = op.get_bind()
    rebuild(connection)
    zone = engagement.rollup_zone(connection)
    if zone is not None:
        engagement.rebuild(connection, ZoneInfo(zone))


def downgrade() -> None:
    op.drop_index("ix_moderation_events_at_action", table_name="moderation_events")
    op.drop_table("gain_days")
    op.drop_index("ix_engagement_days_flips", table_name="engagement_days")
    with op.batch_alter_table("engagement_days", schema=None) as batch_op:
        batch_op.drop_column("flips")
    op.drop_index("ix_posts_flagged_created_at", table_name="posts")
    op.drop_index("ix_author_followers_author", table_name="author_followers")
    op.drop_table("author_followers")
    op.drop_index("ix_author_slots_prev", table_name="author_slots")
    op.drop_index("ix_author_slots_slot", table_name="author_slots")
    op.drop_table("author_slots")
    op.drop_table("tag_slots")
    op.drop_table("platform_totals")
    op.drop_table("post_slots")
