"""campaign credentials: a campaign's own platform credentials (sealed), and which
campaign's credentials a source polls with

Revision ID: 0021
Revises: 0017, 0018

Only new things: a new table, and a nullable column on ``sources`` (a plain ADD
COLUMN, never a batch that would copy the table). Every existing source polls with
the install's credentials, as before (``campaign_id`` NULL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.models

revision: str = "0021"
down_revision: str | tuple[str, ...] | None = ("0017", "0018")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_credentials",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("set_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("campaign_id", "platform", "key"),
    )
    op.add_column("sources", sa.Column("campaign_id", sa.Integer(), nullable=True))
    op.create_index("ix_sources_campaign_id", "sources", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_sources_campaign_id", table_name="sources")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("campaign_id")
    op.drop_table("campaign_credentials")
