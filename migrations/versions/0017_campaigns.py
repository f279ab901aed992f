"""campaigns: what is watched, on which platforms, and when; one default campaign

Revision ID: 0017
Revises: 0001

A database from before campaigns gets one default campaign: the hashtags and
platforms it was watching (``HASHTAGS`` and ``PLATFORMS`` of the environment the
upgrade runs in). From then on the default campaign follows those settings at
every start (``monitor.services.campaigns.sync_default``), as the install did.
"""

import os
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import monitor.models

revision: str = "0017"
down_revision: str | None = "0001"
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


def downgrade() -> None:
    op.drop_table("campaigns")
