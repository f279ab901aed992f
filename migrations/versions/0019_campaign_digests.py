"""campaign digests: each campaign's recipients, sender and time; a digest send names
its campaign; a campaign's posts of a period by one index range

Revision ID: 0019
Revises: 0017, 0018

A campaign's digest fields are NULL until set: on the default campaign that means
``DIGEST_TO``, ``DIGEST_FROM`` and ``DIGEST_TIME``, as before. The sends on record
are the default campaign's (the only digest there was), so a day already sent is not
sent again after the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = ("0017", "0018")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on campaigns (a few rows either way); digest_sends is small too,
    # and a foreign key on SQLite needs the batch's copy.
    op.add_column("campaigns", sa.Column("digest_to", sa.Text(), nullable=True))
    op.add_column("campaigns", sa.Column("digest_from", sa.String(length=320), nullable=True))
    op.add_column("campaigns", sa.Column("digest_time", sa.String(length=5), nullable=True))
    with op.batch_alter_table("digest_sends") as batch:
        batch.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_digest_sends_campaign_id",
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.execute(
        "UPDATE digest_sends SET campaign_id = (SELECT id FROM campaigns WHERE is_default = true)"
    )
    op.create_index(
        "ix_digest_sends_campaign_day", "digest_sends", ["campaign_id", "day", "status"]
    )
    op.create_index(
        "ix_campaign_posts_created", "campaign_posts", ["campaign_id", "created_at", "post_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_posts_created", table_name="campaign_posts")
    op.drop_index("ix_digest_sends_campaign_day", table_name="digest_sends")
    with op.batch_alter_table("digest_sends") as batch:
        batch.drop_constraint("fk_digest_sends_campaign_id", type_="foreignkey")
        batch.drop_column("campaign_id")
    op.drop_column("campaigns", "digest_time")
    op.drop_column("campaigns", "digest_from")
    op.drop_column("campaigns", "digest_to")
