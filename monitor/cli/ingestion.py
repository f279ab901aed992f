"""``poll`` and ``status``: collecting posts and telling whether every source is watched."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.base import Adapter, Target
from adapters.text import normalise_tag
from monitor.cli._common import CampaignOption, echo, enabled_platform, load, open_engine, when
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import DigestStatus
from monitor.services.backfill import backfill_target
from monitor.services.campaigns import current_watch, get_campaign, watch_of, watched
from monitor.services.health import HealthReport, health_report
from monitor.services.polling import PollSummary, describe_summary, poll_all
from monitor.services.refresh import describe_refresh, refresh_all
from monitor.services.sources import configured_platforms, source_key
from monitor.services.staging import stage_all_waiting

PlatformOption = Annotated[str | None, typer.Option("--platform", help="Only this platform.")]


def poll(
    platform: PlatformOption = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only this hashtag.")] = None,
) -> None:
    """Run one polling cycle now and print a per-source summary (exit 1 if any failed)."""
    settings = load()
    platform = enabled_platform(settings, platform)
    engine = open_engine(settings)
    if tag is not None:
        tag = _configured_tag(engine, settings, tag)
    summaries = poll_all(engine=engine, settings=settings, platform=platform, tag=tag)
    if not summaries:
        echo("No source matched: check --platform, --tag, PLATFORMS and HASHTAGS.")
        raise typer.Exit(1)
    for summary in summaries:
        echo(f"{summary.source}: {describe_summary(summary)}")
    if staged := stage_all_waiting(engine=engine, settings=settings):
        echo(f"media: fetched for review on {staged} post(s)")
    if settings.image_analysis:
        _check_images(engine, settings)
    if not all(summary.ok for summary in summaries):
        raise typer.Exit(1)


def _check_images(engine: Engine, settings: Settings) -> None:
    """The image checks of what was stored: here on SQLite, queued for workers on PostgreSQL."""
    if engine.dialect.name == "postgresql":
        from monitor.services.jobs import enqueue_waiting, job_app

        if queued := enqueue_waiting(engine=engine, settings=settings, app=job_app(engine)):
            echo(f"images: {queued} queued for checking by `hashtag-monitor worker`")
        return
    from monitor.cli.server import start_analyser
    from monitor.services.analysis import analyse_all_waiting, media_waiting

    if not media_waiting(engine, limit=1):
        return
    analyser = start_analyser(settings)
    assert analyser is not None
    with analyser:
        if checked := analyse_all_waiting(engine=engine, settings=settings, analyser=analyser):
            echo(f"images: checked {checked} (faces, text, known images)")


def _configured_tag(engine: Engine, settings: Settings, tag: str) -> str:
    """The watched hashtag ``--tag`` names (any case, ``#`` optional), or a UserError."""
    wanted = normalise_tag(tag.lstrip("#"))
    watched = current_watch(engine, settings).all_tags()
    for configured in watched:
        if normalise_tag(configured) == wanted:
            return configured
    raise UserError(
        f"--tag {tag}: no running campaign watches it (watched: {', '.join(watched) or 'none'})"
    )


def status(
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 when a current source is failing or disabled."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the same as JSON.")] = False,
) -> None:
    """Health of every source: last success, last error, failures in a row, possible gaps."""
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        report = health_report(session, settings)
    if as_json:
        echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        _print_health(report, settings)
    if check and not report.ok:
        raise typer.Exit(1)


def _print_health(report: HealthReport, settings: Settings) -> None:
    """The digest's last attempt, every source, then the image analysis (a script reading
    the first line finds the digest there, as it always has)."""
    digest = report.digest
    if digest is not None:
        outcome = "sent" if digest.status == DigestStatus.SENT else f"NOT SENT: {digest.error}"
        echo(f"digest for {digest.day.isoformat()}: {outcome} ({when(digest.sent_at, settings)})")
    if not report.sources:
        echo("No source has been polled yet: run `hashtag-monitor poll`.")
    for health in report.sources:
        state = health.describe(settings.zone, upper=True)
        if not health.current:
            state += " [no longer configured]"
        echo(f"{health.key}  {state}")
        echo(
            f"  last success: {when(health.last_success_at, settings)}"
            f"  failures in a row: {health.failures_in_row}"
        )
        if health.last_error:
            echo(f"  last error ({when(health.last_error_at, settings)}): {health.last_error}")
        mode = f"  mode: {health.mode_words}"
        echo(f"{mode} ({health.mode_note})" if health.mode_note else mode)
        echo(f"  credentials: {health.credentials}")
        if health.possible_gap:
            echo(f"  possible gap: {health.possible_gap}")
    if (analysis := report.analysis) is not None:
        line = f"image analysis: {analysis.words.upper()}"
        if analysis.enabled:
            line += f"  backlog: {analysis.backlog}"
            if analysis.workers is not None:
                line += f"  workers: {analysis.workers}"
            line += f"  last checked: {when(analysis.last_done_at, settings)}"
        echo(line)
        if analysis.last_failure:
            echo(
                f"  last failure ({when(analysis.last_failure_at, settings)}):"
                f" {analysis.last_failure}  ({analysis.failed_today} in the last 24 h)"
            )


def refresh(platform: PlatformOption = None) -> None:
    """Refresh engagement and catch edits and deletions at source now."""
    settings = load()
    platform = enabled_platform(settings, platform)
    engine = open_engine(settings)
    summaries = refresh_all(engine=engine, settings=settings, platform=platform)
    for summary in summaries:
        echo(f"{summary.platform}: {describe_refresh(summary)}")
    if not all(summary.ok for summary in summaries):
        raise typer.Exit(1)


def backfill(
    since: Annotated[str, typer.Option("--since", help="Oldest day to reach, YYYY-MM-DD.")],
    platform: PlatformOption = None,
    campaign: CampaignOption = None,
) -> None:
    """Page back through history to a date, as far as each API allows; resumable."""
    settings = load()
    try:
        day = date.fromisoformat(since)
    except ValueError:
        raise UserError(f"--since {since!r}: give a date as YYYY-MM-DD") from None
    start = datetime.combine(day, time.min, tzinfo=settings.zone).astimezone(UTC)
    if start > datetime.now(UTC):
        raise UserError(f"--since {since}: that day has not begun yet")
    platform = enabled_platform(settings, platform)
    engine = open_engine(settings)
    with Session(engine) as session:
        # One campaign's hashtags (an ended one too), or what the running ones watch.
        chosen = [get_campaign(session, settings, campaign)] if campaign else None
        watch = watch_of(chosen, settings) if chosen else watched(session, settings)
    failed = False
    with configured_platforms(settings, only=platform) as platforms, _progress() as bars:
        for configured in platforms:
            if configured.adapter is None:
                echo(f"{configured.name}: skipped, disabled: {configured.disabled_reason}")
                failed = True
                continue
            for target in configured.adapter.targets(watch.tags_for(configured.name)):
                summary = _backfill_with_bar(engine, configured.adapter, target, start, bars)
                line = describe_summary(summary)
                if summary.gap:
                    line += " (the API cannot reach further back)"
                bars.console.print(f"{summary.source}: {line}", markup=False, highlight=False)
                failed = failed or not summary.ok
    if failed:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[posts]} posts, back to {task.fields[reached]}"),
        TimeElapsedColumn(),
    )


def _backfill_with_bar(
    engine: Engine, adapter: Adapter, target: Target, start: datetime, bars: Progress
) -> PollSummary:
    """Progress is how much of the time between now and the date has been walked."""
    now = datetime.now(UTC)
    span = max((now - start).total_seconds(), 1.0)
    task = bars.add_task(source_key(adapter.name, target), total=span, posts=0, reached="-")

    def advance(posts: int, oldest: datetime | None) -> None:
        walked = (now - oldest).total_seconds() if oldest else 0.0
        reached = f"{oldest:%Y-%m-%d %H:%M}" if oldest else "-"
        bars.update(task, completed=min(walked, span), posts=posts, reached=reached)

    summary = backfill_target(
        engine=engine, adapter=adapter, target=target, since=start, progress=advance
    )
    if summary.ok:
        bars.update(task, completed=span)
    return summary


def register(app: typer.Typer) -> None:
    app.command()(poll)
    app.command()(status)
    app.command()(refresh)
    app.command()(backfill)
