"""Store fetched posts: upsert by (platform, external id), in bulk, edits noticed.

Called inside the caller's transaction, so a poller can commit a page of posts
and its cursor together. A post seen again (a re-poll, another hashtag, a
federated copy) is updated in place, never stored twice. A change of content
at source is an edit: the new content is kept, ``edited_at`` set, and an
approved post goes back to the queue with an audit event.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from adapters.base import FetchedPost, Media
from monitor.config import Settings
from monitor.models import (
    ErasedAuthor,
    MediaItem,
    Post,
    PostHashtag,
    PostStatus,
    utcnow,
)
from monitor.services import audit, reach, rollup
from monitor.services.audit import Action
from monitor.services.engagement import append_snapshots
from monitor.services.links import foreign_link_reason
from monitor.services.placements import PostFacts, place_new, set_status
from monitor.services.staging import mark_queued

_CHUNK = 500
ERASED_AUTHOR_REASON = "the author's data was erased on request before"
_MAX_TAG_CHARS = 200
_MAX_DIMENSION = 2**31 - 1
_METRICS = ("likes", "shares", "replies", "quotes", "views")
SYSTEM_ACTOR = "system"


@dataclasses.dataclass(slots=True)
class IngestResult:
    new: int = 0
    updated: int = 0
    #: Ids of the posts that were inserted, for rules and notifications downstream.
    new_ids: list[int] = dataclasses.field(default_factory=list)
    #: Ids of the posts whose content changed at source: the rules look at them again.
    edited_ids: list[int] = dataclasses.field(default_factory=list)

    @property
    def edited(self) -> int:
        return len(self.edited_ids)

    def add(self, other: IngestResult) -> None:
        self.new += other.new
        self.updated += other.updated
        self.new_ids.extend(other.new_ids)
        self.edited_ids.extend(other.edited_ids)


def content_hash(post: FetchedPost) -> str:
    """What a moderator approved: text, warning and media (by stable key, and alt)."""
    digest = hashlib.sha256()
    digest.update(post.text.encode())
    digest.update(b"\0" + (post.content_warning or "").encode())
    for media in post.media:
        digest.update(f"\0{media.kind}\0{media.key or media.url}\0{media.alt or ''}".encode())
    return digest.hexdigest()


def merge_duplicates(posts: Iterable[FetchedPost]) -> list[FetchedPost]:
    """One record per (platform, external id); hashtags of every sighting kept."""
    merged: dict[tuple[str, str], FetchedPost] = {}
    for post in posts:
        key = (post.platform, post.external_id)
        earlier = merged.get(key)
        if earlier is not None:
            tags = tuple(dict.fromkeys(earlier.hashtags + post.hashtags))
            post = dataclasses.replace(post, hashtags=tags)
        merged[key] = post
    return list(merged.values())


def record_posts(
    *,
    session: Session,
    posts: Sequence[FetchedPost],
    now: datetime | None = None,
    settings: Settings | None = None,
) -> IngestResult:
    """Upsert ``posts`` in the session's transaction (the caller commits).

    New posts are placed in their campaigns (:mod:`monitor.services.placements`), which
    needs ``settings`` once an install has more than one campaign.
    """
    now = now or utcnow()
    result = IngestResult()
    unique_posts = merge_duplicates(posts)
    for start in range(0, len(unique_posts), _CHUNK):
        result.add(_record_chunk(session, unique_posts[start : start + _CHUNK], now, settings))
    reach.record_followers(session.connection(), unique_posts, now)
    return result


def _record_chunk(
    session: Session, posts: list[FetchedPost], now: datetime, settings: Settings | None
) -> IngestResult:
    result = IngestResult()
    existing = _load_existing(session, posts)
    fresh = [p for p in posts if (p.platform, p.external_id) not in existing]
    seen = [p for p in posts if (p.platform, p.external_id) in existing]
    if fresh:
        with rollup.tracking(session) as tracked:
            inserted = _insert_new(session, fresh, now)
            tracked.update(inserted.values())
        by_key = {(p.platform, p.external_id): p for p in fresh}
        place_new(
            session,
            settings,
            [
                PostFacts(post_id, key[0], _storable_tags(by_key[key]), by_key[key].created_at)
                for key, post_id in inserted.items()
            ],
        )
        result.new_ids = list(inserted.values())
        result.new = len(inserted)
        # Stored meanwhile by a concurrent poll (another instance or hashtag):
        # from here on they are simply posts seen again.
        raced = [p for p in fresh if (p.platform, p.external_id) not in inserted]
        if raced:
            existing.update(_load_existing(session, raced))
            seen.extend(raced)
    if seen:
        ids = [existing[(p.platform, p.external_id)].id for p in seen]
        with rollup.tracking(session, ids):
            result.updated, result.edited_ids = _update_seen(session, seen, existing, now)
    return result


def _load_existing(session: Session, posts: list[FetchedPost]) -> dict[tuple[str, str], Any]:
    table = Post.__table__
    rows: dict[tuple[str, str], Any] = {}
    by_platform: dict[str, list[str]] = {}
    for post in posts:
        by_platform.setdefault(post.platform, []).append(post.external_id)
    for platform, ids in by_platform.items():
        query = sa.select(
            table.c.id,
            table.c.external_id,
            table.c.content_hash,
            table.c.status,
            table.c.version,
            *(table.c[m] for m in _METRICS),
        ).where(table.c.platform == platform, table.c.external_id.in_(ids))
        for row in session.execute(query):
            rows[(platform, row.external_id)] = row
    return rows


def _post_row(post: FetchedPost, now: datetime) -> dict[str, Any]:
    return {
        "platform": post.platform,
        "external_id": post.external_id,
        "ref": post.ref or post.external_id,
        "url": post.url,
        "author_handle": post.author.handle,
        "author_name": post.author.name,
        "author_url": post.author.url,
        "text": post.text,
        "html": post.html,
        "content_warning": post.content_warning,
        "sensitive": post.sensitive or any(m.sensitive for m in post.media),
        "opt_out": post.opt_out,
        "content_hash": content_hash(post),
        "created_at": post.created_at,
        "edited_at": post.edited_at,
        **{m: getattr(post.engagement, m) for m in _METRICS},
    }


def _insert_new(
    session: Session, posts: list[FetchedPost], now: datetime
) -> dict[tuple[str, str], int]:
    """Insert what is not there yet; returns (platform, external id) -> id of those inserted."""
    erased = _erased_authors(session, posts)
    rows = [
        {
            **_post_row(p, now),
            "first_seen_at": now,
            "last_seen_at": now,
            "status": PostStatus.PENDING,
            "version": 1,
            **_arrival_flags(p, erased=p in erased),
        }
        for p in posts
    ]
    table = Post.__table__
    insert = _dialect_insert(session)(table).on_conflict_do_nothing(
        index_elements=[table.c.platform, table.c.external_id]
    )
    returning = insert.returning(table.c.id, table.c.platform, table.c.external_id)
    inserted = {(row.platform, row.external_id): row.id for row in session.execute(returning, rows)}
    pairs = [
        (inserted[(p.platform, p.external_id)], p)
        for p in posts
        if (p.platform, p.external_id) in inserted
    ]
    tag_rows = [{"post_id": pid, "tag": tag} for pid, p in pairs for tag in _storable_tags(p)]
    if tag_rows:
        session.execute(sa.insert(PostHashtag.__table__), tag_rows)
    _insert_media(session, pairs)
    # A post with no picture to stage is in the queue as soon as this commits.
    mark_queued(session, [pid for pid, _ in pairs], now)
    if pairs:
        append_snapshots(session, [_snapshot_row(pid, p, now) for pid, p in pairs])
    return inserted


def opt_out_reason(opt_out: str) -> str:
    """The flag a moderator reads on an opted-out author's post."""
    return f"Opt-out: {opt_out}; publish only with consent on record"


#: Attachments kept per post: every one is downloaded and decoded before review, so a
#: hostile post must not make us fetch hundreds. Platforms allow 4 to 20.
MAX_MEDIA_PER_POST = 20


def content_flags(post: FetchedPost) -> list[str]:
    """What ingestion itself flags in a post's content: an author's opt-out, links
    leading off the post's own site (a hijacker's favourite), attachments beyond the cap."""
    reasons = [opt_out_reason(post.opt_out)] if post.opt_out else []
    if len(post.media) > MAX_MEDIA_PER_POST:
        reasons.append(
            f"Has {len(post.media)} attachments; only the first {MAX_MEDIA_PER_POST} are kept"
            " here: check the original before approving"
        )
    if foreign := foreign_link_reason(post.url, post.author.url, post.html):
        reasons.append(foreign)
    return reasons


def _arrival_flags(post: FetchedPost, *, erased: bool) -> dict[str, Any]:
    """Flags a new post carries from the start: an erased author, and its content's."""
    reasons = [ERASED_AUTHOR_REASON] if erased else []
    reasons += content_flags(post)
    return {"flagged": bool(reasons), "flag_reasons": reasons or None}


def author_hash(platform: str, handle: str) -> str:
    """What is kept of an author whose data was erased: a hash, never the handle."""
    return hashlib.sha256(f"{platform}\0{handle.casefold()}".encode()).hexdigest()


def _erased_authors(session: Session, posts: list[FetchedPost]) -> set[FetchedPost]:
    """The posts whose author asked to be erased before: they must be looked at again."""
    keys = {p: (p.platform, author_hash(p.platform, p.author.handle)) for p in posts}
    table = ErasedAuthor.__table__
    found = session.execute(
        sa.select(table.c.platform, table.c.handle_hash).where(
            table.c.handle_hash.in_([digest for _, digest in keys.values()])
        )
    ).all()
    matched = {(row.platform, row.handle_hash) for row in found}
    return {post for post, key in keys.items() if key in matched}


def _dialect_insert(session: Session) -> Any:
    """INSERT with ON CONFLICT support for the session's backend."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def _insert_media(session: Session, pairs: list[tuple[int, FetchedPost]]) -> None:
    rows = [
        {
            "post_id": pid,
            "position": position,
            "kind": media.kind,
            "url": media.url,
            "preview_url": media.preview_url,
            "alt": media.alt,
            "sensitive": media.sensitive,
            "width": _dimension(media.width),
            "height": _dimension(media.height),
            "expires_at": media.expires_at,
            "media_key": media_key(media),
        }
        for pid, post in pairs
        for position, media in enumerate(post.media[:MAX_MEDIA_PER_POST])
    ]
    if rows:
        session.execute(sa.insert(MediaItem.__table__), rows)


def media_key(media: Media) -> str:
    """An attachment's identity at source: its stable key, else its URL."""
    return media.key or media.url


#: What an attachment keeps across an edit at source when it is still the same attachment:
#: our stored copy (never downloaded again, so never swapped) and the moderator's alt text.
_KEPT_ACROSS_EDITS = (
    "pinned_path",
    "pin_error",
    "pinned_hash",
    "pinned_widths",
    "pinned_width",
    "pinned_height",
)
_MODERATOR_ALT = ("alt", "decorative", "alt_edited")


def _replace_media(session: Session, post_id: int, post: FetchedPost) -> None:
    """New media rows for an edited post, carrying over what belongs to unchanged items."""
    table = MediaItem.__table__
    columns = [table.c[name] for name in ("media_key", *_KEPT_ACROSS_EDITS, *_MODERATOR_ALT)]
    old = {
        row.media_key: row
        for row in session.execute(sa.select(*columns).where(table.c.post_id == post_id))
        if row.media_key
    }
    session.execute(sa.delete(table).where(table.c.post_id == post_id))
    _insert_media(session, [(post_id, post)])
    for position, media in enumerate(post.media[:MAX_MEDIA_PER_POST]):
        before = old.get(media_key(media))
        if before is None:
            continue
        kept = {name: getattr(before, name) for name in _KEPT_ACROSS_EDITS}
        if before.alt_edited:
            kept.update({name: getattr(before, name) for name in _MODERATOR_ALT})
        session.execute(
            sa.update(table)
            .where(table.c.post_id == post_id, table.c.position == position)
            .values(**kept)
        )


def _dimension(pixels: int | None) -> int | None:
    """A width or height the column can hold; absurd ones are as good as unknown."""
    return pixels if pixels is not None and 0 < pixels <= _MAX_DIMENSION else None


def _storable_tags(post: FetchedPost) -> tuple[str, ...]:
    """Hashtags that fit the column; a 5,000-character "tag" is noise, not a hashtag."""
    return tuple(tag for tag in post.hashtags if len(tag) <= _MAX_TAG_CHARS)


def _renew_signed_urls(session: Session, pairs: list[tuple[int, FetchedPost]]) -> None:
    """Store fresh signed URLs (same attachments) so approval can still download them."""
    table = MediaItem.__table__
    rows = [
        {
            "target_post": post_id,
            "target_position": position,
            "url": media.url,
            "preview_url": media.preview_url,
            "expires_at": media.expires_at,
        }
        for post_id, post in pairs
        for position, media in enumerate(post.media[:MAX_MEDIA_PER_POST])
        if media.expires_at is not None
    ]
    if rows:
        session.execute(
            sa.update(table)
            .where(
                table.c.post_id == sa.bindparam("target_post"),
                table.c.position == sa.bindparam("target_position"),
            )
            .values(
                url=sa.bindparam("url"),
                preview_url=sa.bindparam("preview_url"),
                expires_at=sa.bindparam("expires_at"),
            ),
            rows,
        )


def _snapshot_row(post_id: int, post: FetchedPost, now: datetime) -> dict[str, Any]:
    return {
        "post_id": post_id,
        "taken_at": now,
        **{m: getattr(post.engagement, m) for m in _METRICS},
    }


def _update_seen(
    session: Session,
    posts: list[FetchedPost],
    existing: dict[tuple[str, str], Any],
    now: datetime,
) -> tuple[int, list[int]]:
    """Update what was stored before; returns how many got new counts, and the edited ids."""
    table = Post.__table__
    ids = [existing[(p.platform, p.external_id)].id for p in posts]
    session.execute(sa.update(table).where(table.c.id.in_(ids)).values(last_seen_at=now))
    _add_missing_hashtags(session, posts, existing)

    updated = 0
    edited: list[int] = []
    snapshots: list[dict[str, Any]] = []
    unchanged: list[tuple[int, FetchedPost]] = []
    for post in posts:
        row = existing[(post.platform, post.external_id)]
        counts = {m: getattr(post.engagement, m) for m in _METRICS}
        if any(counts[m] != getattr(row, m) for m in _METRICS):
            snapshots.append(_snapshot_row(row.id, post, now))
            session.execute(sa.update(table).where(table.c.id == row.id).values(**counts))
            updated += 1
        if content_hash(post) != row.content_hash and row.status != PostStatus.REMOVED:
            apply_edit(session, row, post, now)
            edited.append(row.id)
        else:
            unchanged.append((row.id, post))
    append_snapshots(session, snapshots)
    _renew_signed_urls(session, unchanged)
    return updated, edited


def _add_missing_hashtags(
    session: Session, posts: list[FetchedPost], existing: dict[tuple[str, str], Any]
) -> None:
    table = PostHashtag.__table__
    wanted = {
        (existing[(p.platform, p.external_id)].id, tag) for p in posts for tag in _storable_tags(p)
    }
    if not wanted:
        return
    post_ids = {pid for pid, _ in wanted}
    query = sa.select(table.c.post_id, table.c.tag).where(table.c.post_id.in_(post_ids))
    have = {(row.post_id, row.tag) for row in session.execute(query)}
    missing = [{"post_id": pid, "tag": tag} for pid, tag in sorted(wanted - have)]
    if missing:
        session.execute(sa.insert(table), missing)


def apply_edit(session: Session, row: Any, post: FetchedPost, now: datetime) -> None:
    """Store the edited content; an approved post goes back to pending, on the record."""
    table = Post.__table__
    values = _post_row(post, now)
    values["edited_at"] = post.edited_at or now
    values["version"] = row.version + 1
    old, flags = session.execute(
        sa.select(table.c.text, table.c.flag_reasons).where(table.c.id == row.id)
    ).one()
    if row.status == PostStatus.APPROVED:
        values["status"] = PostStatus.PENDING
    if new_flags := [reason for reason in content_flags(post) if reason not in (flags or [])]:
        # An opt-out or a foreign link that came with the edit flags it as in a new post.
        values.update(flagged=True, flag_reasons=[*(flags or []), *new_flags])
    session.execute(sa.update(table).where(table.c.id == row.id).values(**values))
    if row.status == PostStatus.APPROVED:  # off every gallery it was on, back to each queue
        set_status(session, [row.id], PostStatus.PENDING, only_from=PostStatus.APPROVED)
    _replace_media(session, row.id, post)
    audit.record(
        session,
        post_id=row.id,
        at=now,
        actor=SYSTEM_ACTOR,
        action=Action.EDITED_AT_SOURCE,
        from_status=row.status,
        to_status=values.get("status", row.status),
        reason="edited at source after approval"
        if row.status == PostStatus.APPROVED
        else "edited at source",
        detail={"old_text": old, "new_text": post.text},
    )
