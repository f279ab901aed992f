"""``db upgrade`` and ``export``: the schema, and getting the data out."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli._common import CLI_ACTOR, CampaignOption, echo, known_platform, load, open_engine
from monitor.db import SchemaState, create_db_engine, schema_state, session_scope, upgrade
from monitor.models import PostStatus, utcnow
from monitor.services import retention
from monitor.services.backup import backup_database
from monitor.services.export import csv_header, iter_export_records, to_csv, to_jsonl
from monitor.services.placements import scope_of

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


_UPGRADE_OUTCOME = {
    SchemaState.EMPTY: "Created the database schema on a new database.",
    SchemaState.BEHIND: "Upgraded the database schema to this version.",
}


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the newest schema."""
    settings = load()
    engine = create_db_engine(settings.database_url)
    before = schema_state(engine)
    upgrade(engine)
    echo(_UPGRADE_OUTCOME.get(before, "Database schema is up to date."))


@db_app.command("backup")
def db_backup(
    out: Annotated[Path, typer.Option("--out", help="The backup file to write.")],
) -> None:
    """Back up the database while it runs (SQLite online backup, or pg_dump)."""
    settings = load()
    echo(backup_database(create_db_engine(settings.database_url), out))


def export(
    format: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = (
        ExportFormat.JSONL
    ),
    status: Annotated[
        PostStatus | None, typer.Option("--status", help="Only posts in this state.")
    ] = None,
    campaign: CampaignOption = None,
) -> None:
    """Write a campaign's posts with their moderation history to stdout."""
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        scope = scope_of(session, settings, campaign)
        if format is ExportFormat.CSV:
            echo(csv_header())
        render = to_csv if format is ExportFormat.CSV else to_jsonl
        records = iter_export_records(session, status=status.value if status else None, scope=scope)
        for record in records:
            echo(render(record))


def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Apply retention now: delete posts past RETENTION_*_DAYS with their media."""
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        if dry_run:
            candidates = retention.purge_candidates(session, settings, utcnow())
            for candidate in candidates:
                echo(f"would delete {candidate.ref} ({candidate.status})")
            for slug, held in sorted(retention.candidates_by_campaign(session, candidates).items()):
                echo(f"campaign {slug}: {len(held)} post(s) would go")
            echo(f"{len(candidates)} post(s) would be deleted.")
            return
        counts = retention.purge(session=session, settings=settings)
    described = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    echo(f"Deleted {sum(counts.values())} post(s){': ' + described if counts else ''}.")


def erase(
    author: Annotated[str, typer.Option("--author", help="The author's handle, e.g. @a@b.")],
    platform: Annotated[str, typer.Option("--platform", help="The platform, e.g. mastodon.")],
) -> None:
    """Erase everything held about one author (a data-protection request)."""
    settings = load()
    platform = known_platform(platform)
    engine = open_engine(settings)
    with session_scope(engine) as session:
        erased = retention.erase_author(
            session=session, settings=settings, platform=platform, handle=author, actor=CLI_ACTOR
        )
        kept = retention.kept_for_escalation(session=session, platform=platform, handle=author)
    if erased:
        echo(f"Erased {erased} post(s) and their media.")
    elif not kept:
        echo(f"Nothing matched: no post by {author} on {platform} is held.")
    if kept:
        echo(
            f"Kept {kept} post(s) under an open safeguarding escalation as evidence;"
            " run erase again once the escalation is closed."
        )
    echo("Later posts by this author come back flagged.")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command()(export)
    app.command()(purge)
    app.command()(erase)
