"""safeguarding: takedown holds and review, escalations, alerts to the safeguarding contacts

Revision ID: 0006
Revises: 0003, 0004 (it extends the gallery branch's takedown table, so it merges the two)
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models

revision: str = "0006"
down_revision: str | tuple[str, ...] | None = ("0003", "0004")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("takedown_hold", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("takedown_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "network_key",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column("resolved_at", monitor.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch_op.add_column(
            sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True)
        )
        batch_op.create_index(
            "ix_takedown_requests_network_at", ["network_key", "at"], unique=False
        )
        batch_op.create_index("ix_takedown_requests_open", ["resolved_at", "post_id"], unique=False)
    op.create_table(
        "escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("closed_at", monitor.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_escalations_post_id"), ["post_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_escalations_closed_at"), ["closed_at"], unique=False)
    op.create_table(
        "safeguarding_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", monitor.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("safeguarding_alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_safeguarding_alerts_status_created", ["status", "created_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("safeguarding_alerts")
    op.drop_table("escalations")
    with op.batch_alter_table("takedown_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_takedown_requests_open")
        batch_op.drop_index("ix_takedown_requests_network_at")
        batch_op.drop_column("outcome")
        batch_op.drop_column("resolved_by")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("network_key")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_column("escalated")
        batch_op.drop_column("takedown_hold")
