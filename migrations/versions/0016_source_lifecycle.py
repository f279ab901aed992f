"""source lifecycle: when a source was configured and when it left the configuration

Revision ID: 0016
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.models

revision: str = "0016"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(
            sa.Column("created_at", monitor.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("retired_at", monitor.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_sources_retired_at", ["retired_at"])


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_index("ix_sources_retired_at")
        batch.drop_column("retired_at")
        batch.drop_column("created_at")
