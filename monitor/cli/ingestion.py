"""``poll`` and ``status``: collecting posts and telling whether every source is watched."""

from __future__ import annotations

from typing import Annotated

import typer

from monitor.cli._common import echo, load, open_engine, when
from monitor.db import session_scope
from monitor.services.polling import describe_summary, poll_all
from monitor.services.sources import list_sources

PlatformOption = Annotated[str | None, typer.Option("--platform", help="Only this platform.")]


def poll(
    platform: PlatformOption = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only this hashtag.")] = None,
) -> None:
    """Run one polling cycle now and print a per-source summary (exit 1 if any failed)."""
    settings = load()
    engine = open_engine(settings)
    summaries = poll_all(engine=engine, settings=settings, platform=platform, tag=tag)
    if not summaries:
        echo("No source matched: check --platform, --tag, PLATFORMS and HASHTAGS.")
        raise typer.Exit(1)
    for summary in summaries:
        echo(f"{summary.source}: {describe_summary(summary)}")
    if not all(summary.ok for summary in summaries):
        raise typer.Exit(1)


def status() -> None:
    """Health of every source: last success, last error, failures in a row, possible gaps."""
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        sources = list_sources(session)
        if not sources:
            echo("No source has been polled yet: run `hashtag-monitor poll`.")
            return
        for source in sources:
            if source.disabled_reason:
                state = f"DISABLED ({source.disabled_reason})"
            elif source.failures_in_row:
                state = f"FAILING since {when(source.failing_since, settings)}"
            elif source.last_success_at is None:
                state = "NOT YET POLLED"
            else:
                state = "OK"
            echo(f"{source.key}  {state}")
            echo(
                f"  last success: {when(source.last_success_at, settings)}"
                f"  failures in a row: {source.failures_in_row}"
            )
            if source.last_error:
                echo(f"  last error ({when(source.last_error_at, settings)}): {source.last_error}")
            if source.possible_gap:
                echo(f"  possible gap: {source.possible_gap}")


def register(app: typer.Typer) -> None:
    app.command()(poll)
    app.command()(status)
