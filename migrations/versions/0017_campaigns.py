"""campaigns: what is watched, on which platforms, and when; posts and roles per campaign

Revision ID: 0017
Revises: every head before it (it needs posts, users and the audit trail as they are)

A database from before campaigns gets one default campaign: the hashtags and
platforms it was watching (``HASHTAGS`` and ``PLATFORMS`` of the environment the
upgrade runs in). From then on the default campaign follows those settings at
every start (``monitor.services.campaigns.sync_default``), as the install did.
Every post is placed in it with the status it has, in one INSERT ... SELECT, so
no post and no decision is lost however many there are.
"""

import os
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import monitor.models

revision: str = "0017"
down_revision: str | tuple[str, ...] | None = (
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

#: The product's default hashtags (``HASHTAGS``), for an environment that sets none.
DEFAULT_HASHTAGS = "CEADAY21,HelpingHands"


def upgrade() -> None:
    campaigns = op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hashtags", sa.Text(), nullable=False),
        sa.Column("platforms", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", monitor.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("archived_at", monitor.models.UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("slug"),
    )
    hashtags = ",".join(
        tag.strip().lstrip("#")
        for tag in os.environ.get("HASHTAGS", DEFAULT_HASHTAGS).split(",")
        if tag.strip()
    )
    platforms = ",".join(
        name.strip().lower() for name in os.environ.get("PLATFORMS", "").split(",") if name.strip()
    )
    op.bulk_insert(
        campaigns,
        [
            {
                "slug": "default",
                "name": "Default campaign",
                "hashtags": hashtags or DEFAULT_HASHTAGS,
                "platforms": platforms,
                "is_default": True,
                "created_at": datetime.now(UTC),
            }
        ],
    )

    op.create_table(
        "campaign_posts",
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "post_id", sa.Integer(), sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO campaign_posts (campaign_id, post_id, status, created_at)"
        " SELECT campaigns.id, posts.id, posts.status, posts.created_at FROM posts, campaigns"
        " WHERE campaigns.is_default"
    )
    op.create_index("ix_campaign_posts_post_id", "campaign_posts", ["post_id"])
    op.create_index(
        "ix_campaign_posts_queue",
        "campaign_posts",
        ["campaign_id", "status", "created_at", "post_id"],
    )
    op.create_table(
        "campaign_roles",
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(length=20), nullable=False),
    )
    op.create_index("ix_campaign_roles_campaign_id", "campaign_roles", ["campaign_id"])
    with op.batch_alter_table("moderation_events") as batch:
        batch.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_moderation_events_campaign_id",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_web_sessions_campaign_id",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_constraint("fk_web_sessions_campaign_id", type_="foreignkey")
        batch.drop_column("campaign_id")
    with op.batch_alter_table("moderation_events") as batch:
        batch.drop_constraint("fk_moderation_events_campaign_id", type_="foreignkey")
        batch.drop_column("campaign_id")
    op.drop_table("campaign_roles")
    op.drop_table("campaign_posts")
    op.drop_table("campaigns")
