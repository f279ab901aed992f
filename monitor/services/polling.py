"""One poll of one source: fetch pages, commit each with its cursor, record health.

The cursor moves only in the transaction that commits the posts it covers,
so a crash between two pages re-fetches at most one page and loses nothing.
Any failure (adapter error, database error, a bug) is written on the source
and the poll run; it never escapes to stop other sources.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from adapters.base import Adapter, AdapterError, Page, RateLimited, Target
from adapters.text import normalise_tag
from monitor.config import Settings
from monitor.db import describe_db_error, session_scope
from monitor.models import PollKind, PollRun, Source, utcnow
from monitor.services import reach
from monitor.services.campaigns import current_watch, sync_default
from monitor.services.credentials import account_platforms, current_accounts
from monitor.services.ingest import record_posts
from monitor.services.media import erase_after_commit
from monitor.services.rules import apply_ingest_rules
from monitor.services.sources import (
    OWNER_MARK,
    ConfiguredPlatform,
    Owner,
    configured_platforms,
    ensure_source,
    record_disabled,
    retire_unconfigured,
    source_key,
)

log = logging.getLogger("monitor.poll")

#: No platform asks for more than a day (YouTube's quota day is the longest); a
#: stored wait beyond that can only come from the clock jumping back, so it is ignored.
MAX_RATE_LIMIT_WAIT = timedelta(hours=25)


@dataclasses.dataclass(slots=True)
class PollSummary:
    """What one poll of one source did, for the CLI, the scheduler and metrics."""

    source: str
    platform: str
    ok: bool = True
    pages: int = 0
    requests: int = 0
    fetched: int = 0
    new: int = 0
    updated: int = 0
    edited: int = 0
    skipped: int = 0
    error: str | None = None
    gap: str | None = None


def poll_target(
    *,
    engine: Engine,
    adapter: Adapter,
    target: Target,
    settings: Settings,
    now: datetime | None = None,
    owner: Owner | None = None,
) -> PollSummary:
    """Poll one target from its stored cursor; never raises.

    ``owner``: the campaign whose own credentials ``adapter`` was built with; the
    source is then that campaign's (its own cursor and health).
    """
    started = now or utcnow()
    key = source_key(adapter.name, target, owner)
    summary = PollSummary(source=key, platform=adapter.name)
    try:
        with session_scope(engine) as session:
            source = ensure_source(session, adapter.name, target, started, owner)
            source_id, cursor, retry_at = source.id or 0, source.cursor, source.retry_at
            if retry_at is not None and started < retry_at <= started + MAX_RATE_LIMIT_WAIT:
                summary.ok = False
                summary.error = f"rate limited until {retry_at:%Y-%m-%d %H:%M} UTC"
                return summary
            run = PollRun(source_id=source_id, kind=PollKind.POLL, started_at=started)
            session.add(run)
            session.flush()
            run_id = run.id
    except SQLAlchemyError as exc:
        summary.ok, summary.error = False, f"database error: {describe_db_error(exc)}"
        log.error("poll %s: %s", summary.source, summary.error)
        return summary

    requests_before = adapter.http.thread_requests
    since = started - timedelta(hours=settings.initial_lookback_hours)
    pages = adapter.search(target, cursor, since=since, max_pages=settings.poll_max_pages)
    _consume(engine, settings, source_id, pages, summary)
    summary.requests = adapter.http.thread_requests - requests_before
    _finish(engine, source_id, run_id, summary, started)
    level = logging.INFO if summary.ok else logging.WARNING
    log.log(level, "poll %s: %s", summary.source, describe_summary(summary))
    return summary


def _consume(
    engine: Engine,
    settings: Settings,
    source_id: int,
    pages: Iterator[Page],
    summary: PollSummary,
) -> None:
    """Commit page after page; stop at the first failure, keeping what was committed."""
    try:
        for page in pages:
            with session_scope(engine) as session:
                result = record_posts(session=session, posts=page.posts, settings=settings)
                apply_ingest_rules(session=session, post_ids=result.new_ids + result.edited_ids)
                if result.edited:
                    # An edited post left the gallery: its pinned files go once this commits.
                    erase_after_commit(session, settings)
                source = session.get_one(Source, source_id)
                if page.cursor is not None:
                    source.cursor = page.cursor
                if page.gap:
                    source.possible_gap = page.gap
            summary.pages += 1
            summary.fetched += len(page.posts)
            summary.new += result.new
            summary.updated += result.updated
            summary.edited += result.edited
            summary.skipped += len(page.skipped)
            summary.gap = page.gap or summary.gap
            for reason in page.skipped:
                log.warning("poll %s: skipped a record: %s", summary.source, reason)
    except RateLimited as exc:
        summary.ok, summary.error = False, str(exc)
        if exc.retry_at is not None:
            with session_scope(engine) as session:
                session.get_one(Source, source_id).retry_at = exc.retry_at
    except AdapterError as exc:
        summary.ok, summary.error = False, str(exc)
    except SQLAlchemyError as exc:
        summary.ok, summary.error = False, f"database error: {describe_db_error(exc)}"
    except Exception as exc:  # a bug in an adapter must not stop the other sources
        log.exception("poll %s: unexpected error", summary.source)
        summary.ok, summary.error = False, f"internal error: {type(exc).__name__}: {exc}"


def _finish(
    engine: Engine, source_id: int, run_id: int | None, summary: PollSummary, started: datetime
) -> None:
    finished = utcnow()
    try:
        with session_scope(engine) as session:
            source = session.get_one(Source, source_id)
            source.last_poll_at = finished
            if summary.ok:
                source.last_success_at = finished
                source.failures_in_row = 0
                source.failing_since = None
                source.retry_at = None
            else:
                source.last_error = summary.error
                source.last_error_at = finished
                source.failures_in_row += 1
                source.failing_since = source.failing_since or started
            run = session.get(PollRun, run_id)
            if run is not None:
                run.finished_at = finished
                run.ok = summary.ok
                for field in ("pages", "requests", "fetched", "new", "updated", "skipped"):
                    setattr(run, field, getattr(summary, field))
                run.error = summary.error
                run.gap = summary.gap
    except SQLAlchemyError as exc:
        summary.ok = False
        summary.error = (
            f"{summary.error or 'poll done'}; health not recorded: {describe_db_error(exc)}"
        )


def describe_summary(summary: PollSummary) -> str:
    """One human line: what came in, or why nothing could."""
    if not summary.ok:
        return f"FAILED: {summary.error}"
    text = (
        f"ok: {summary.fetched} fetched, {summary.new} new, {summary.updated} updated,"
        f" {summary.edited} edited in {summary.pages} page(s), {summary.requests} request(s)"
    )
    if summary.skipped:
        text += f", {summary.skipped} unreadable record(s) skipped"
    if summary.gap:
        text += f"; possible gap: {summary.gap}"
    return text


def record_configuration(
    engine: Engine, settings: Settings, platforms: list[ConfiguredPlatform]
) -> None:
    """Retire the sources no running campaign wants and keep disabled platforms on record.

    Run by every ``poll`` and by the scheduler's leader when it plans its polls, so a
    campaign that ends or a tag that goes stops counting from then on.

    A database that cannot take it now (locked, read-only) must not stop the cycle:
    each source's own poll then says so.
    """
    now = utcnow()
    try:
        with session_scope(engine) as session:
            sync_default(session, settings)
            for key in retire_unconfigured(session, settings, now):
                log.info("poll: %s is no longer configured: retired", key)
            for configured in platforms:
                record_disabled(
                    session, configured.name, configured.disabled_reason, now, configured.owner
                )
    except SQLAlchemyError as exc:
        log.error("poll: configuration not recorded: %s", describe_db_error(exc))


def poll_all(
    *,
    engine: Engine,
    settings: Settings,
    platform: str | None = None,
    tag: str | None = None,
) -> list[PollSummary]:
    """One polling cycle over every enabled source (``hashtag-monitor poll``): with the
    install's credentials, and with each campaign's own where it holds some."""
    summaries: list[PollSummary] = []
    watch = current_watch(engine, settings)
    found = [a for a in current_accounts(engine, settings, watch) if platform in (None, a.platform)]
    with (
        configured_platforms(settings, only=platform) as installed,
        account_platforms(settings, found) as owned,
    ):
        platforms = installed + owned
        jobs: list[tuple[Adapter, Target, Owner | None]] = []
        for configured in platforms:
            if configured.adapter is None:
                summaries.append(
                    PollSummary(
                        source=f"{configured.name}:*"
                        + (f"{OWNER_MARK}{configured.owner.slug}" if configured.owner else ""),
                        platform=configured.name,
                        ok=False,
                        error=f"disabled: {configured.disabled_reason}",
                    )
                )
                continue
            hashtags = [
                t
                for t in watch.tags_for(configured.name, configured.campaign_id)
                if tag is None or normalise_tag(t) == normalise_tag(tag)
            ]
            if hashtags:  # no running campaign watches this platform (or this tag) today
                owner, adapter = configured.owner, configured.adapter
                jobs.extend((adapter, t, owner) for t in adapter.targets(hashtags))
        record_configuration(engine, settings, platforms)
        # Sources are independent: a slow one must not hold up the rest.
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="poll") as pool:
            summaries.extend(
                pool.map(
                    lambda job: poll_target(
                        engine=engine,
                        adapter=job[0],
                        target=job[1],
                        settings=settings,
                        owner=job[2],
                    ),
                    jobs,
                )
            )
        # Counts that need a profile lookup, once the cycle's posts are in (potential reach).
        for configured in installed:
            if configured.adapter is not None:
                reach.look_up_followers(engine, configured.adapter)
    return summaries
