"""Storing what a stream delivers: posts, deletions and the position, in one transaction.

A stream's events are committed in batches, each with the cursor it reaches,
so the cursor never runs ahead of the posts it covers (guarantee 3): after a
crash the stream resumes from the last committed position and the upsert drops
what it sees twice. A source's mode (streaming, catching up, polling) and why
are written here too, for ``status``, the Sources page and ``/metrics``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.base import FetchedPost, Target
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import Post, Source, utcnow
from monitor.services.health import SourceMode
from monitor.services.ingest import record_posts
from monitor.services.media import erase_after_commit
from monitor.services.refresh import mark_removed
from monitor.services.rules import apply_ingest_rules
from monitor.services.sources import ensure_source

#: Orders two cursors of one stream: returns the later (the stored one may be None).
Later = Callable[[str | None, str], str]


@dataclasses.dataclass(slots=True)
class StreamBatch:
    """What a stream delivered since the last commit."""

    posts: list[FetchedPost] = dataclasses.field(default_factory=list)
    #: Edits to apply only to posts already stored (see ``Posted.known_only``).
    edits_of_known: list[FetchedPost] = dataclasses.field(default_factory=list)
    #: Refs of posts deleted at source (most are posts we never stored).
    deleted: list[str] = dataclasses.field(default_factory=list)
    cursor: str | None = None
    position_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StoredBatch:
    new_ids: list[int]
    edited_ids: list[int]
    removed: int


def stream_sources(engine: Engine, platform: str, targets: Sequence[Target]) -> list[Source]:
    """The source rows a stream feeds (created on first sight), detached for reading."""
    with session_scope(engine) as session:
        return [ensure_source(session, platform, target) for target in targets]


def store_batch(
    *,
    engine: Engine,
    settings: Settings,
    platform: str,
    source_ids: Sequence[int],
    batch: StreamBatch,
    cursor_column: str,
    later: Later,
    now: datetime | None = None,
) -> StoredBatch:
    """Commit a batch and the position it reaches on every source it feeds.

    ``cursor_column`` is ``cursor`` when the stream shares the poller's cursor
    (Mastodon's status ids, so the REST catch-up starts where the stream got to)
    and ``stream_cursor`` when it has its own (Jetstream's ``time_us``).
    """
    now = now or utcnow()
    with session_scope(engine) as session:
        posts = batch.posts + stored_among(session, batch.edits_of_known)
        result = record_posts(session=session, posts=posts, now=now, settings=settings)
        apply_ingest_rules(session=session, post_ids=result.new_ids + result.edited_ids)
        removed = mark_removed(session, known_refs(session, platform, batch.deleted), now)
        if result.edited or removed:
            # Posts that left the gallery: their pinned files go once this commits.
            erase_after_commit(session, settings)
        for source_id in source_ids:
            source = session.get_one(Source, source_id)
            if batch.cursor is not None:
                stored = getattr(source, cursor_column)
                setattr(source, cursor_column, later(stored, batch.cursor))
            if batch.position_at is not None:
                source.stream_position_at = max(
                    batch.position_at, source.stream_position_at or batch.position_at
                )
    return StoredBatch(result.new_ids, result.edited_ids, removed)


def stored_among(session: Session, posts: Sequence[FetchedPost]) -> list[FetchedPost]:
    """The posts among ``posts`` that are already stored."""
    if not posts:
        return []
    table = Post.__table__
    keys = {(post.platform, post.external_id) for post in posts}
    query = sa.select(table.c.platform, table.c.external_id).where(
        sa.tuple_(table.c.platform, table.c.external_id).in_(sorted(keys))
    )
    held = {(row.platform, row.external_id) for row in session.execute(query)}
    return [post for post in posts if (post.platform, post.external_id) in held]


def known_refs(session: Session, platform: str, refs: Sequence[str]) -> list[int]:
    """Ids of the stored posts among ``refs``; a delete for a post never seen is no news."""
    if not refs:
        return []
    table = Post.__table__
    ids: list[int] = []
    unique = list(dict.fromkeys(refs))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        query = sa.select(table.c.id).where(table.c.platform == platform, table.c.ref.in_(chunk))
        ids.extend(session.execute(query).scalars())
    return ids


def set_mode(
    engine: Engine,
    source_ids: Sequence[int],
    mode: SourceMode,
    note: str | None,
    *,
    position_at: datetime | None = None,
) -> None:
    """Record how the sources' posts arrive now, and why (a person reads ``note``)."""
    if not source_ids:
        return
    values: dict[str, object] = {"mode": mode.value, "mode_note": note}
    if position_at is not None:
        values["stream_position_at"] = position_at
    with session_scope(engine) as session:
        table = Source.__table__
        session.execute(sa.update(table).where(table.c.id.in_(source_ids)).values(**values))


def note_unstored(engine: Engine, source_ids: Sequence[int], reason: str) -> None:
    """Streamed events that could not be stored: a possible gap until the next poll."""
    with session_scope(engine) as session:
        table = Source.__table__
        session.execute(
            sa.update(table).where(table.c.id.in_(source_ids)).values(possible_gap=reason)
        )


def note_position(engine: Engine, source_ids: Sequence[int], position_at: datetime) -> None:
    """A live stream with nothing to deliver is still caught up to ``position_at``."""
    with session_scope(engine) as session:
        table = Source.__table__
        session.execute(
            sa.update(table)
            .where(table.c.id.in_(source_ids))
            .values(stream_position_at=position_at)
        )
