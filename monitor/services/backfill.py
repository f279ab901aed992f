"""Backfill: page back through a source's history to a date, resumably.

The position after each committed page is stored on the source
(``backfill_cursor``, apart from the polling cursor), together with the date
asked for, so an interrupted backfill (Ctrl-C, a crash) carries on where it
stopped; posts are upserted, so nothing is stored twice either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from adapters.base import Adapter, AdapterError, Target
from monitor.db import session_scope
from monitor.models import PollKind, PollRun, Source, utcnow
from monitor.services.ingest import record_posts
from monitor.services.polling import PollSummary
from monitor.services.sources import ensure_source, source_key

log = logging.getLogger("monitor.backfill")

#: Pages one backfill may walk; generous, since it runs by hand and resumes.
BACKFILL_MAX_PAGES = 10_000

#: Told after each committed page: posts so far, and the oldest time reached.
ProgressCallback = Callable[[int, datetime | None], None]


def _resume_position(source: Source, since: datetime) -> str | None:
    """The stored position, only if it belongs to a backfill to the same date."""
    if not source.backfill_cursor:
        return None
    try:
        saved = json.loads(source.backfill_cursor)
    except ValueError:
        return None
    if not isinstance(saved, dict) or saved.get("since") != since.isoformat():
        return None
    position = saved.get("position")
    return position if isinstance(position, str) else None


def backfill_target(
    *,
    engine: Engine,
    adapter: Adapter,
    target: Target,
    since: datetime,
    progress: ProgressCallback | None = None,
) -> PollSummary:
    """Walk one target back to ``since``; adapter failures end up in the summary."""
    summary = PollSummary(source=source_key(adapter.name, target), platform=adapter.name)
    started = utcnow()
    with session_scope(engine) as session:
        source = ensure_source(session, adapter.name, target)
        source_id, resume = source.id or 0, _resume_position(source, since)
        run = PollRun(source_id=source_id, kind=PollKind.BACKFILL, started_at=started)
        session.add(run)
        session.flush()
        run_id = run.id
    oldest: datetime | None = None
    try:
        pages = adapter.backfill(target, since=since, resume=resume, max_pages=BACKFILL_MAX_PAGES)
        for page in pages:
            with session_scope(engine) as session:
                result = record_posts(session=session, posts=page.posts)
                if page.cursor is not None:
                    session.get_one(Source, source_id).backfill_cursor = json.dumps(
                        {"since": since.isoformat(), "position": page.cursor}
                    )
            summary.pages += 1
            summary.fetched += len(page.posts)
            summary.new += result.new
            summary.updated += result.updated
            summary.skipped += len(page.skipped)
            summary.gap = page.gap or summary.gap
            times = [post.created_at for post in page.posts]
            if times:
                oldest = min([*times, oldest] if oldest else times)
            if progress is not None:
                progress(summary.fetched, oldest)
    except AdapterError as exc:
        summary.ok, summary.error = False, str(exc)
    with session_scope(engine) as session:
        if summary.ok:
            session.get_one(Source, source_id).backfill_cursor = None
        finished = session.get_one(PollRun, run_id)
        finished.finished_at = utcnow()
        finished.ok = summary.ok
        finished.pages, finished.fetched, finished.new = summary.pages, summary.fetched, summary.new
        finished.error, finished.gap = summary.error, summary.gap
    log.info("backfill %s: %d fetched, %d new", summary.source, summary.fetched, summary.new)
    return summary
