"""Refresh known posts: engagement snapshots, edits and deletions at source.

Posts younger than ``REFRESH_WINDOW_DAYS`` (by the platform's date) and every
approved post, whatever its age or stated date, are asked for again through each
platform's bulk endpoint: a parent who deletes a photo of their child on day ten,
or a back-dated post, must still leave the gallery. An approved post that has not
been seen at source for :data:`UNCHECKED_FLAG_AFTER` (its platform failing, or a
feed it rolled off) is flagged for a moderator. New counts become engagement snapshots (the digest
subtracts them), changed content is an edit (see :func:`ingest.apply_edit`),
and a post the platform no longer returns is ``removed``: off the gallery at
once, on the record.

A campaign polling a platform with its own credentials refreshes its own posts there
with them too (:func:`refresh_platform`'s ``owner``): on a platform the install has no
account for, nobody else could, and a deletion at source must still reach its gallery.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from adapters.base import Adapter, AdapterError
from monitor.config import Settings
from monitor.db import describe_db_error, session_scope
from monitor.models import Post, PostStatus, utcnow
from monitor.services import audit, rollup
from monitor.services.audit import Action
from monitor.services.campaigns import current_watch
from monitor.services.credentials import account_platforms, current_accounts
from monitor.services.ingest import SYSTEM_ACTOR, record_posts
from monitor.services.media import erase_after_commit
from monitor.services.placements import Scope, set_status
from monitor.services.rules import apply_ingest_rules
from monitor.services.sources import Owner, configured_platforms

log = logging.getLogger("monitor.refresh")

#: Refs handed to an adapter at once; adapters split them into their bulk sizes.
REFRESH_BATCH = 500
#: An approved post not seen at source for this long is flagged for a moderator.
UNCHECKED_FLAG_AFTER = timedelta(hours=24)
UNCHECKED_REASON_PREFIX = "Not seen at source since"


@dataclasses.dataclass(slots=True)
class RefreshSummary:
    platform: str
    ok: bool = True
    checked: int = 0
    updated: int = 0
    edited: int = 0
    removed: int = 0
    requests: int = 0
    error: str | None = None
    #: Approved posts newly flagged because they could not be re-checked at source.
    flagged_unchecked: int = 0


def mark_removed(session: Session, post_ids: Sequence[int], now: datetime) -> int:
    """Posts gone at source become ``removed``, each with an audit event; returns how many."""
    table = Post.__table__
    rows = session.execute(
        sa.select(table.c.id, table.c.status).where(
            table.c.id.in_(post_ids), table.c.status != PostStatus.REMOVED
        )
    ).all()
    # The posts roll-up counts approved posts: it follows the status change.
    with rollup.tracking(session, [row.id for row in rows]):
        for row in rows:
            session.execute(
                sa.update(table)
                .where(table.c.id == row.id)
                .values(status=PostStatus.REMOVED, deleted_at=now, version=table.c.version + 1)
            )
        set_status(session, [row.id for row in rows], PostStatus.REMOVED)  # in every campaign
    for row in rows:
        audit.record(
            session,
            post_id=row.id,
            at=now,
            actor=SYSTEM_ACTOR,
            action=Action.DELETED_AT_SOURCE,
            from_status=row.status,
            to_status=PostStatus.REMOVED,
            reason="no longer available at source",
        )
    return len(rows)


def refresh_platform(
    *,
    engine: Engine,
    adapter: Adapter,
    settings: Settings,
    now: datetime | None = None,
    owner: Owner | None = None,
) -> RefreshSummary:
    """Refresh one platform's recent posts (``owner``: those of the campaign whose own
    credentials ``adapter`` holds); never raises, failures are in the summary."""
    now = now or utcnow()
    label = adapter.name if owner is None else f"{adapter.name} (campaign {owner.slug})"
    summary = RefreshSummary(platform=label)
    # A campaign account reads the campaign's posts only.
    own_posts = [Scope(owner.campaign_id, alone=False).contains()] if owner is not None else []
    requests_before = adapter.http.thread_requests
    horizon = now - timedelta(days=settings.refresh_window_days)
    table = Post.__table__
    last_id = 0
    try:
        while True:
            with session_scope(engine) as session:
                batch = session.execute(
                    sa.select(table.c.id, table.c.ref)
                    .where(
                        table.c.platform == adapter.name,
                        sa.or_(
                            table.c.created_at >= horizon,
                            table.c.status == PostStatus.APPROVED,
                        ),
                        table.c.status != PostStatus.REMOVED,
                        table.c.id > last_id,
                        *own_posts,
                    )
                    .order_by(table.c.id)
                    .limit(REFRESH_BATCH)
                ).all()
            if not batch:
                break
            last_id = batch[-1].id
            _refresh_batch(engine, adapter, settings, batch, now, summary)
    except AdapterError as exc:
        summary.ok, summary.error = False, str(exc)
    except SQLAlchemyError as exc:
        summary.ok, summary.error = False, f"database error: {describe_db_error(exc)}"
    except Exception as exc:  # a bug in one adapter must not stop the others' refresh
        log.exception("refresh %s: unexpected error", label)
        summary.ok, summary.error = False, f"internal error: {type(exc).__name__}: {exc}"
    summary.requests = adapter.http.thread_requests - requests_before
    try:
        summary.flagged_unchecked = flag_unchecked(engine, adapter.name, now)
    except SQLAlchemyError as exc:
        log.warning("refresh %s: could not flag unchecked posts: %s", adapter.name, exc)
    log.log(
        logging.INFO if summary.ok else logging.WARNING,
        "refresh %s: %s",
        label,
        describe_refresh(summary),
    )
    return summary


def _refresh_batch(
    engine: Engine,
    adapter: Adapter,
    settings: Settings,
    batch: Sequence[sa.Row[tuple[int, str]]],
    now: datetime,
    summary: RefreshSummary,
) -> None:
    result = adapter.refresh([row.ref for row in batch])
    ids_by_ref = {row.ref: row.id for row in batch}
    with session_scope(engine) as session:
        ingested = record_posts(
            session=session, posts=list(result.posts), now=now, settings=settings
        )
        # New words at source (a phone number added, a school named) are checked again.
        apply_ingest_rules(session=session, post_ids=ingested.edited_ids)
        gone = [ids_by_ref[ref] for ref in result.deleted if ref in ids_by_ref]
        removed = mark_removed(session, gone, now)
        if removed or ingested.edited:
            # Posts that left the gallery: their pinned files go once this commits.
            erase_after_commit(session, settings)
    summary.checked += len(batch)
    summary.updated += ingested.updated
    summary.edited += ingested.edited
    summary.removed += removed
    for reason in result.skipped:
        log.warning("refresh %s: skipped a record: %s", adapter.name, reason)


def flag_unchecked(engine: Engine, platform: str, now: datetime) -> int:
    """Flag approved posts not seen at source for too long; returns how many were flagged.

    ``last_seen_at`` moves whenever a poll or a refresh finds the post, so a post
    that stopped moving cannot be vouched for: it may be deleted or edited there.
    It stays public (a takedown or a moderator takes it down), but a person must look.
    """
    table = Post.__table__
    cutoff = now - UNCHECKED_FLAG_AFTER
    flagged = 0
    with session_scope(engine) as session:
        rows = session.execute(
            sa.select(table.c.id, table.c.flag_reasons, table.c.last_seen_at)
            .where(
                table.c.platform == platform,
                table.c.status == PostStatus.APPROVED,
                table.c.last_seen_at < cutoff,
            )
            .with_for_update()
        ).all()
        for row in rows:
            reasons = list(row.flag_reasons or [])
            if any(reason.startswith(UNCHECKED_REASON_PREFIX) for reason in reasons):
                continue
            reason = (
                f"{UNCHECKED_REASON_PREFIX} {row.last_seen_at:%d %b %Y %H:%M} UTC: it may have"
                " been deleted or edited there; check the original"
            )
            session.execute(
                sa.update(table)
                .where(table.c.id == row.id)
                .values(flagged=True, flag_reasons=[*reasons, reason])
            )
            audit.record(
                session,
                post_id=row.id,
                at=now,
                actor=SYSTEM_ACTOR,
                action=Action.UNCHECKED_AT_SOURCE,
                from_status=PostStatus.APPROVED,
                to_status=PostStatus.APPROVED,
                reason=reason,
            )
            flagged += 1
    return flagged


def describe_refresh(summary: RefreshSummary) -> str:
    if not summary.ok:
        return f"FAILED: {summary.error}"
    described = (
        f"ok: {summary.checked} checked, {summary.updated} with new engagement,"
        f" {summary.edited} edited, {summary.removed} removed at source,"
        f" {summary.requests} request(s)"
    )
    if summary.flagged_unchecked:
        described += f", {summary.flagged_unchecked} approved post(s) flagged as not re-checked"
    return described


def refresh_all(
    *,
    engine: Engine,
    settings: Settings,
    platform: str | None = None,
) -> list[RefreshSummary]:
    """One refresh over every enabled platform, and every campaign account the running
    campaigns poll with (``hashtag-monitor refresh``)."""
    found = [
        account
        for account in current_accounts(engine, settings, current_watch(engine, settings))
        if platform is None or account.platform == platform
    ]
    with (
        configured_platforms(settings, only=platform) as platforms,
        account_platforms(settings, found) as owned,
    ):
        return [
            refresh_platform(engine=engine, adapter=c.adapter, settings=settings, owner=c.owner)
            if c.adapter is not None
            else RefreshSummary(platform=c.name, ok=False, error=f"disabled: {c.disabled_reason}")
            for c in platforms + owned
        ]
