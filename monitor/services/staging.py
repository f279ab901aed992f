"""Staging: every attachment is downloaded once, before anyone sees it, and that copy is
the only one ever shown or published.

The queue shows our stored, re-encoded copy (a moderator's browser never contacts a
media host), and approval publishes the very same files. Nothing is downloaded a
second time, so a hostile host cannot show the moderator one picture and the public
another, and a small preview cannot stand in for a different full-size file.

A download happens outside any database transaction (on SQLite a transaction holds
the write lock, and pollers would wait on a slow media host). Its result is written
in one short transaction that bumps the post's version, because what a moderator
sees changed: a decision made on the page from before the copy existed is refused
as stale, so nobody approves media they were never shown.

Who stages: the scheduler's staging job for everything waiting, ``poll`` after a
cycle, and a decision that finds a post not yet staged (see
:mod:`monitor.services.moderation`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import MediaItem, Post, PostStatus
from monitor.services.media import PinError, PinnedImage, pin_url, pinned_file, pinned_name

log = logging.getLogger("monitor.staging")

#: Kinds whose picture a moderator judges: an image itself, a video or GIF by its thumbnail.
SHOWN_KINDS = ("image", "video", "gif")
#: Posts staged per run of the staging job; the next run takes the rest.
STAGE_BATCH = 50
#: How often the scheduler looks for media to fetch: a new post waits about this long
#: before a moderator can see its pictures.
STAGE_INTERVAL_SECONDS = 10


def shown_source(kind: str, url: str, preview_url: str | None) -> str | None:
    """The URL whose picture stands for an attachment; audio has nothing to show."""
    if kind == "image":
        return url
    if kind in ("video", "gif"):
        return preview_url
    return None


def is_staged(item: MediaItem) -> bool:
    """True when the attachment needs no picture or its stored copy is in place."""
    return item.kind not in SHOWN_KINDS or bool(item.pinned_hash and item.pinned_widths)


def unstaged_positions(media: Iterable[MediaItem]) -> list[int]:
    """1-based positions of attachments a moderator has not been shown a copy of."""
    return [item.position + 1 for item in media if not is_staged(item)]


def copy_is_present(settings: Settings, item: MediaItem) -> bool:
    """The stored files of a staged attachment are still on disk."""
    if not item.pinned_hash or not item.pinned_widths:
        return False
    return all(
        pinned_file(settings.media_dir, pinned_name(item.pinned_hash, width)).is_file()
        for width in item.pinned_widths
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Wanted:
    media_id: int
    position: int
    source: str | None


@dataclasses.dataclass(slots=True)
class StageOutcome:
    """What staging one post did: attachments stored, and the ones that failed, with why."""

    post_id: int
    stored: int = 0
    failed: dict[int, str] = dataclasses.field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.stored or self.failed)


def stage_post(
    *, engine: Engine, settings: Settings, post_id: int, retry: bool = False
) -> StageOutcome:
    """Download and store every not-yet-staged attachment of one post.

    An attachment that failed before is tried again only with ``retry`` (a
    moderator asked), so a broken link is not hammered by every job run.
    """
    outcome = StageOutcome(post_id)
    if retry:
        _forget_lost_copies(engine, settings, post_id)
    wanted = _wanted(engine, post_id, retry=retry)
    if not wanted:
        return outcome
    results: dict[int, PinnedImage | str] = {}
    for item in wanted:
        if item.source is None:
            results[item.media_id] = "the platform gives no picture for it"
            continue
        try:
            results[item.media_id] = pin_url(item.source, settings=settings)
        except PinError as exc:
            results[item.media_id] = str(exc)
    _record(engine, post_id, wanted, results, outcome)
    return outcome


def _forget_lost_copies(engine: Engine, settings: Settings, post_id: int) -> None:
    """A copy whose files are gone (a restored backup, a wiped disk) is fetched anew."""
    media = MediaItem.__table__
    with session_scope(engine) as session:
        items = session.exec(select(MediaItem).where(MediaItem.post_id == post_id)).all()
        lost = [
            item.id for item in items if item.pinned_hash and not copy_is_present(settings, item)
        ]
        if lost:
            session.execute(
                sa.update(media)
                .where(media.c.id.in_(lost))
                .values(pinned_hash=None, pinned_widths=None, pinned_path=None, pin_error=None)
            )


def _wanted(engine: Engine, post_id: int, *, retry: bool) -> list[_Wanted]:
    media = MediaItem.__table__
    query = sa.select(
        media.c.id, media.c.position, media.c.kind, media.c.url, media.c.preview_url
    ).where(
        media.c.post_id == post_id,
        media.c.kind.in_(SHOWN_KINDS),
        media.c.pinned_hash.is_(None),
    )
    if not retry:
        query = query.where(media.c.pin_error.is_(None))
    with session_scope(engine) as session:
        status = session.execute(
            sa.select(Post.__table__.c.status).where(Post.__table__.c.id == post_id)
        ).scalar()
        if status is None or status == PostStatus.REMOVED:
            return []
        rows = session.execute(query.order_by(media.c.position)).all()
    return [
        _Wanted(row.id, row.position, shown_source(row.kind, row.url, row.preview_url))
        for row in rows
    ]


def _record(
    engine: Engine,
    post_id: int,
    wanted: list[_Wanted],
    results: dict[int, PinnedImage | str],
    outcome: StageOutcome,
) -> None:
    """Write what the downloads found, in one short transaction, and bump the version.

    An attachment replaced meanwhile (an edit at source deletes and re-creates the
    rows) is simply not found by id and left for the next run.
    """
    media, posts = MediaItem.__table__, Post.__table__
    with session_scope(engine) as session:
        # Lock the post first, as decisions do, so a decision under way finishes first.
        locked = session.execute(
            sa.select(posts.c.id).where(posts.c.id == post_id).with_for_update()
        ).first()
        if locked is None:
            return
        for item in wanted:
            result = results[item.media_id]
            still_waiting = sa.and_(media.c.id == item.media_id, media.c.pinned_hash.is_(None))
            if isinstance(result, PinnedImage):
                values: dict[str, object] = {
                    "pinned_hash": result.digest,
                    "pinned_widths": list(result.widths),
                    "pinned_width": result.width,
                    "pinned_height": result.height,
                    "pinned_path": _pinned_path(result),
                    "pin_error": None,
                }
            else:
                # The same failure again changes nothing a moderator sees: no new version.
                still_waiting = sa.and_(still_waiting, media.c.pin_error.is_distinct_from(result))
                values = {"pin_error": result}
            updated = session.execute(sa.update(media).where(still_waiting).values(**values))
            if cast("sa.CursorResult[Any]", updated).rowcount:
                if isinstance(result, PinnedImage):
                    outcome.stored += 1
                else:
                    outcome.failed[item.position + 1] = result
        if outcome.changed:
            session.execute(
                sa.update(posts).where(posts.c.id == post_id).values(version=posts.c.version + 1)
            )
    for position, reason in outcome.failed.items():
        log.warning("post %d: attachment %d could not be stored: %s", post_id, position, reason)


def _pinned_path(pinned: PinnedImage) -> str:
    """The largest rendition, relative to the media directory."""
    return f"{pinned.digest[:2]}/{pinned_name(pinned.digest, pinned.widths[-1])}"


def posts_waiting(engine: Engine, *, limit: int = STAGE_BATCH) -> list[int]:
    """Posts with an attachment never tried yet, oldest arrival first."""
    media, posts = MediaItem.__table__, Post.__table__
    query = (
        sa.select(posts.c.id)
        .where(
            posts.c.status != PostStatus.REMOVED,
            sa.exists().where(
                media.c.post_id == posts.c.id,
                media.c.kind.in_(SHOWN_KINDS),
                media.c.pinned_hash.is_(None),
                media.c.pin_error.is_(None),
            ),
        )
        .order_by(posts.c.first_seen_at, posts.c.id)
        .limit(limit)
    )
    with session_scope(engine) as session:
        return list(session.execute(query).scalars())


def stage_waiting(*, engine: Engine, settings: Settings, limit: int = STAGE_BATCH) -> int:
    """Stage up to ``limit`` waiting posts (the scheduler's job); returns how many changed."""
    changed = 0
    for post_id in posts_waiting(engine, limit=limit):
        changed += stage_post(engine=engine, settings=settings, post_id=post_id).changed
    return changed


def stage_all_waiting(*, engine: Engine, settings: Settings) -> int:
    """Stage every waiting post, batch after batch (``poll`` from the command line)."""
    total = 0
    while done := stage_waiting(engine=engine, settings=settings):
        total += done
    return total
