"""campaigns' own rules, place-name lists and hash banks; campaigns' own retention periods

Revision ID: 0020
Revises: 0017, 0018

A rule, a place-name list or a hash bank belongs to one campaign or is shared by every
campaign (``campaign_id`` NULL). Every existing one stays shared, so an install that
never adds a campaign, or one that had several before, behaves as it did. A campaign's
retention periods are NULL (the install's ``RETENTION_*`` settings) until set.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | tuple[str, ...] | None = ("0017", "0018")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWNED = ("moderation_rules", "hash_banks")
_RETENTION = ("retention_rejected_days", "retention_pending_days", "retention_removed_days")


def upgrade() -> None:
    for table in _OWNED:
        # Small tables (an admin's lists, not their entries): a batch copy is cheap here.
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                f"fk_{table}_campaign_id", "campaigns", ["campaign_id"], ["id"], ondelete="CASCADE"
            )
        op.create_index(f"ix_{table}_campaign_id", table, ["campaign_id"])
    for column in _RETENTION:
        op.add_column("campaigns", sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        for column in _RETENTION:
            batch.drop_column(column)
    for table in _OWNED:
        op.drop_index(f"ix_{table}_campaign_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_campaign_id", type_="foreignkey")
            batch.drop_column("campaign_id")
