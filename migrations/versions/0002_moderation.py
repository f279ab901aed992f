"""moderation: web sessions, login attempts, ingestion rules, decorative media

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:55:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Personal-data detectors start switched on: they only ever flag.
_DETECTORS = ("uk_phone", "email", "uk_postcode")


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("flash", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_name_at", ["name", "at"], unique=False)
        batch_op.create_index("ix_login_attempts_address_at", ["address", "at"], unique=False)

    rules = op.create_table(
        "moderation_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("pattern", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        rules,
        [
            {
                "kind": "detector",
                "pattern": name,
                "action": "flag",
                "enabled": True,
                "created_at": now,
                "created_by": "system",
            }
            for name in _DETECTORS
        ],
    )

    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("decorative", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_posts_status_flagged_created",
            ["status", "flagged", "created_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_index("ix_posts_status_flagged_created")
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_column("decorative")
    op.drop_table("moderation_rules")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempts_address_at")
        batch_op.drop_index("ix_login_attempts_name_at")
    op.drop_table("login_attempts")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))
    op.drop_table("web_sessions")
