"""campaign settings merge: one head again after the campaigns' digest (0019), rules and
retention (0020) and credentials (0021), made side by side on the campaigns model

Revision ID: 0022
Revises: 0019, 0020, 0021

Nothing changes in the schema: the three touch different tables and columns, so any
order is the same database. One head keeps ``alembic revision`` working for the next
change.
"""

from collections.abc import Sequence

revision: str = "0022"
down_revision: str | tuple[str, ...] | None = ("0019", "0020", "0021")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
