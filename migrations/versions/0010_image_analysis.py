"""image analysis: one row per stored copy (pending, done, failed), and the job queue

On PostgreSQL this also creates procrastinate's tables, types and functions (the
job queue ``hashtag-monitor worker`` processes share). Its schema is read from
the installed package, which pyproject pins to one minor version; a new minor
version of procrastinate brings schema migrations, applied by a new revision.

Revision ID: 0010
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.models

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media_analyses",
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("pinned_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("findings", sa.JSON(), nullable=True),
        sa.Column("queued_at", monitor.models.UTCDateTime(), nullable=False),
        sa.Column("started_at", monitor.models.UTCDateTime(), nullable=True),
        sa.Column("finished_at", monitor.models.UTCDateTime(), nullable=True),
        sa.Column("blurred_from", sa.String(length=64), nullable=True),
        sa.Column("withheld", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("media_id"),
    )
    op.create_index("ix_media_analyses_post_id", "media_analyses", ["post_id"])
    op.create_index("ix_media_analyses_status_queued", "media_analyses", ["status", "queued_at"])
    if op.get_bind().dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        # Straight to the driver: with no parameters psycopg leaves ``%`` and ``:`` alone
        # and runs the whole script (many statements) as procrastinate's own CLI does.
        cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
                procrastinate_jobs, procrastinate_workers CASCADE;
            DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
                procrastinate_job_status CASCADE;
            """
        )
        op.execute(
            """
            DO $$ DECLARE f record; BEGIN
              FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE p.proname LIKE 'procrastinate\\_%' AND n.nspname = current_schema()
              LOOP EXECUTE 'DROP FUNCTION ' || f.sig || ' CASCADE'; END LOOP;
            END $$;
            """
        )
    op.drop_index("ix_media_analyses_status_queued", table_name="media_analyses")
    op.drop_index("ix_media_analyses_post_id", table_name="media_analyses")
    op.drop_table("media_analyses")
