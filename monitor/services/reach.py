"""Potential reach and contributors: how many people the campaign's posts could have
reached, and how many different people took part.

Potential reach, the listening tools' standard figure, done honestly: per platform,
the sum of the follower counts of the distinct authors who posted in the period
(Reddit: the subscribers of the subreddit posted in), each author's count as of the
end of the period. It is a ceiling on who *could* have seen a post, never a count of
who did: followers overlap, and most never see a given post. It is shown next to
views, never added to them, and always with its coverage: which platforms give
counts, and for how many of their authors we hold one. A platform that gives none is
"not available", never 0. An author on two platforms is two accounts to us, counted
once on each. See ``docs/reach.md``.

Counts come from the posts themselves where the payload carries them
(``FetchedPost.author_followers``) and, for platforms that need a profile lookup,
from :meth:`adapters.base.Adapter.follower_counts` after each polling cycle. They
are snapshotted: a new row only when an author's count changes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from adapters.base import Adapter, AdapterError, FetchedPost
from monitor.db import session_scope
from monitor.models import AuthorFollowers, AuthorSlot, Post, PostStatus, utcnow
from monitor.services import rollup
from monitor.services.digest_rows import InstallRows

log = logging.getLogger(__name__)

_FOLLOWERS = AuthorFollowers.__table__
_AUTHORS = AuthorSlot.__table__
_POSTS = Post.__table__
#: A count is looked up again once it is this old.
LOOKUP_AFTER = timedelta(days=1)
#: Authors looked up per platform and cycle (Bluesky: 25 a call; YouTube: 50 a unit).
LOOKUP_BATCH = 500
TOP_CONTRIBUTORS = 10
#: A count this many times the author's one before, and at least this much bigger, is
#: called out as a jump: shown as the platform gave it, never capped.
JUMP_FACTOR = 10
JUMP_MINIMUM = 100_000
#: The footnote every figure of reach carries (digest, /stats, the report).
DEFINITION = (
    "Potential reach is the sum of the follower counts of the different accounts that"
    " posted in the period, per platform (on Reddit, the subscribers of the subreddit"
    " posted in), each count as of the end of the period. It is the most people who could"
    " have seen a post, not how many did: followers overlap and most never see a given"
    ' post. It is never added to views. "≥" means some accounts\' counts are unknown, so'
    ' the true figure is higher; a platform that gives no counts is "not available",'
    " not zero. A person with accounts on two platforms is counted once on each."
)
#: Platforms whose API never gives follower counts for hashtag results.
NEVER_GIVEN = {"instagram": "Instagram does not give follower counts for hashtag media"}


def record_followers(connection: Connection, posts: Sequence[FetchedPost], now: datetime) -> None:
    """Snapshot the follower counts these posts carry (a row only when one changed)."""
    counts = {
        (p.platform, p.author.handle): p.author_followers
        for p in posts
        if p.author_followers is not None and p.author_followers >= 0
    }
    store_counts(connection, {k: int(v) for k, v in counts.items() if v is not None}, now)


def store_counts(connection: Connection, counts: dict[tuple[str, str], int], now: datetime) -> None:
    if not counts:
        return
    latest = _latest(connection, list(counts))
    rows = [
        {"platform": p, "author_handle": h, "taken_at": now, "followers": n}
        for (p, h), n in sorted(counts.items())
        if latest.get((p, h)) != n
    ]
    if rows:
        connection.execute(sa.insert(_FOLLOWERS), rows)


def latest_followers(
    connection: Connection, authors: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Each author's most recent follower count held (absent: the platform did not say)."""
    return _latest(connection, sorted(set(authors)))


def _latest(connection: Connection, authors: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Each author's most recent count held."""
    found: dict[tuple[str, str], tuple[datetime, int]] = {}
    for start in range(0, len(authors), 500):
        chunk = authors[start : start + 500]
        query = sa.select(
            _FOLLOWERS.c.platform,
            _FOLLOWERS.c.author_handle,
            _FOLLOWERS.c.taken_at,
            _FOLLOWERS.c.followers,
        ).where(sa.tuple_(_FOLLOWERS.c.platform, _FOLLOWERS.c.author_handle).in_(chunk))
        for platform, handle, taken_at, followers in connection.execute(query):
            key = (platform, handle)
            if key not in found or taken_at >= found[key][0]:
                found[key] = (taken_at, int(followers))
    return {key: value for key, (_, value) in found.items()}


def look_up_followers(engine: Engine, adapter: Adapter, *, now: datetime | None = None) -> int:
    """Ask a platform that needs a lookup for the counts of its recent authors; never
    raises (a failed lookup leaves those authors without a count: coverage says so)."""
    if not adapter.gives_follower_counts:
        return 0
    now = now or utcnow()
    try:
        with session_scope(engine) as session:
            handles = _due(session, adapter.name, now)
            urls = _profile_urls(session, adapter.name, handles)
        if not handles:
            return 0
        counts = adapter.follower_counts(handles, urls)
        with session_scope(engine) as session:
            store_counts(
                session.connection(), {(adapter.name, h): n for h, n in counts.items()}, now
            )
        return len(counts)
    except AdapterError as exc:
        log.warning("follower counts from %s: %s", adapter.name, exc)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("follower counts from %s not stored: %s", adapter.name, exc)
    except Exception:  # a bug in an adapter must not stop polling
        log.exception("follower counts from %s: unexpected error", adapter.name)
    return 0


def _due(session: Session, platform: str, now: datetime) -> list[str]:
    """Authors who posted in the last lookup window and have no count that recent."""
    since = rollup.slot_of(now - LOOKUP_AFTER)
    recent = (
        sa.select(_AUTHORS.c.author_handle)
        .where(_AUTHORS.c.platform == platform, _AUTHORS.c.slot >= since)
        .distinct()
        .limit(LOOKUP_BATCH * 4)
    )
    handles = list(session.execute(recent).scalars())
    fresh = set(
        session.execute(
            sa.select(_FOLLOWERS.c.author_handle).where(
                _FOLLOWERS.c.platform == platform,
                _FOLLOWERS.c.taken_at >= now - LOOKUP_AFTER,
                _FOLLOWERS.c.author_handle.in_(handles),
            )
        ).scalars()
    )
    return [h for h in handles if h not in fresh][:LOOKUP_BATCH]


def _profile_urls(session: Session, platform: str, handles: list[str]) -> dict[str, str]:
    """Each author's profile address as their posts hold it (a YouTube channel's id is in
    it, the handle being the channel's title)."""
    urls: dict[str, str] = {}
    for start in range(0, len(handles), 500):
        chunk = handles[start : start + 500]
        rows = session.execute(
            sa.select(_POSTS.c.author_handle, sa.func.max(_POSTS.c.author_url))
            .where(
                _POSTS.c.platform == platform,
                _POSTS.c.author_handle.in_(chunk),
                _POSTS.c.author_url.is_not(None),
            )
            .group_by(_POSTS.c.author_handle)
        )
        urls.update({str(handle): str(url) for handle, url in rows})
    return urls


@dataclasses.dataclass(frozen=True, slots=True)
class Contributor:
    """One of the authors with the most followers in the period."""

    platform: str
    handle: str
    followers: int
    #: The count before, when this one is a jump (see JUMP_FACTOR): shown, never capped.
    jumped_from: int | None = None
    #: Named only when a moderator approved one of their posts: the figures count every
    #: account, but nobody is named to partners on the strength of an unreviewed post.
    named: bool = False

    @property
    def label(self) -> str:
        return (
            self.handle
            if self.named
            else f"an account on {self.platform} (not named: no approved post)"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PlatformReach:
    platform: str
    authors: int
    new_authors: int
    #: Authors we hold a follower count for (the rest are unknown, not 0).
    counted: int
    reach: int | None
    why_not: str | None = None

    @property
    def complete(self) -> bool:
        return self.counted == self.authors


@dataclasses.dataclass(frozen=True, slots=True)
class Reach:
    """Potential reach and contributors of a period, with their coverage."""

    platforms: list[PlatformReach]
    top: list[Contributor]
    posts: int
    approved: int

    @property
    def authors(self) -> int:
        """Authors added up over platforms: one person on two platforms counts twice."""
        return sum(p.authors for p in self.platforms)

    @property
    def new_authors(self) -> int:
        return sum(p.new_authors for p in self.platforms)

    @property
    def total(self) -> int | None:
        known = [p.reach for p in self.platforms if p.reach is not None]
        return sum(known) if known else None

    @property
    def lower_bound(self) -> bool:
        """Some author's count is unknown: the true figure is higher ("at least")."""
        return any(p.reach is None or not p.complete for p in self.platforms)

    @property
    def covered(self) -> list[str]:
        return [p.platform for p in self.platforms if p.reach is not None]

    @property
    def not_available(self) -> list[PlatformReach]:
        return [p for p in self.platforms if p.reach is None]

    @property
    def approved_share(self) -> float | None:
        return None if self.posts == 0 else 100.0 * self.approved / self.posts

    @property
    def jumps(self) -> list[Contributor]:
        return [c for c in self.top if c.jumped_from is not None]


def compute_reach(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    authors: dict[str, rollup.Authors] | None = None,
    rows: InstallRows | None = None,
) -> Reach:
    """Reach and contributors of posts created in [start, end); ``authors``: the range's
    :func:`monitor.services.rollup.author_counts`, when the caller has them already;
    ``rows``: where the posts are read (default: every post, from the roll-up)."""
    rows = rows or InstallRows()
    lo, hi = rollup.slot_bound(start), rollup.slot_bound(end)
    if authors is None:
        authors = rollup.author_counts(session, lo, hi)
    writers = rows.distinct_authors(session, lo, hi).subquery()
    count = _count_as_of(writers, end)
    # Platforms with no count held at all need no per-author look (most of a store
    # where a platform never gives them).
    with_counts = set(session.execute(sa.select(_FOLLOWERS.c.platform).distinct()).scalars()) & set(
        authors
    )
    per_author = (
        session.execute(
            sa.select(writers.c.platform, writers.c.author_handle, count.label("n")).where(
                writers.c.platform.in_(sorted(with_counts))
            )
        ).all()
        if with_counts
        else []
    )
    reach: dict[str, int] = defaultdict(int)
    counted: dict[str, int] = defaultdict(int)
    ranked: list[tuple[int, str, str]] = []
    for platform, handle, followers in per_author:
        if followers is not None:
            reach[platform] += int(followers)
            counted[platform] += 1
            ranked.append((int(followers), platform, handle))
    ranked.sort(key=lambda r: (-r[0], r[1], r[2]))
    top = [
        Contributor(p, h, n, _jump(session, p, h, n, end), _has_approved(session, p, h))
        for n, p, h in ranked[:TOP_CONTRIBUTORS]
    ]
    platforms = [
        PlatformReach(
            platform=name,
            authors=figures.authors,
            new_authors=figures.new,
            counted=counted.get(name, 0),
            reach=reach[name] if counted.get(name) else None,
            why_not=None
            if counted.get(name)
            else NEVER_GIVEN.get(name, "no follower count held for its authors"),
        )
        for name, figures in authors.items()
    ]
    posts, approved = rows.approved_posts(session, lo, hi)
    return Reach(platforms=platforms, top=top, posts=posts, approved=approved)


def _count_as_of(writers: sa.Subquery, end: datetime) -> sa.ColumnElement[int]:
    """An author's count as of ``end``: the last taken before it, else the first after."""
    same = sa.and_(
        _FOLLOWERS.c.platform == writers.c.platform,
        _FOLLOWERS.c.author_handle == writers.c.author_handle,
    )
    before = (
        sa.select(_FOLLOWERS.c.followers)
        .where(same, _FOLLOWERS.c.taken_at < end)
        .order_by(_FOLLOWERS.c.taken_at.desc(), _FOLLOWERS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    after = (
        sa.select(_FOLLOWERS.c.followers)
        .where(same, _FOLLOWERS.c.taken_at >= end)
        .order_by(_FOLLOWERS.c.taken_at, _FOLLOWERS.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(before, after)


def _has_approved(session: Session, platform: str, handle: str) -> bool:
    return (
        session.execute(
            sa.select(_POSTS.c.id)
            .where(
                _POSTS.c.author_handle == handle,
                _POSTS.c.platform == platform,
                _POSTS.c.status == PostStatus.APPROVED.value,
            )
            .limit(1)
        ).first()
        is not None
    )


def _jump(session: Session, platform: str, handle: str, count: int, end: datetime) -> int | None:
    """The author's count before this one, when this one is a jump."""
    rows = session.execute(
        sa.select(_FOLLOWERS.c.followers)
        .where(
            _FOLLOWERS.c.platform == platform,
            _FOLLOWERS.c.author_handle == handle,
            _FOLLOWERS.c.taken_at < end,
        )
        .order_by(_FOLLOWERS.c.taken_at.desc(), _FOLLOWERS.c.id.desc())
        .limit(2)
    ).scalars()
    history = [int(n) for n in rows]
    if len(history) == 2 and history[0] == count:
        before = history[1]
        if count >= JUMP_FACTOR * max(before, 1) and count - before >= JUMP_MINIMUM:
            return before
    return None


def compact(value: int) -> str:
    """1234567 -> "1.2 M", 12345 -> "12 k", 999 -> "999" (a headline figure)."""
    for size, unit in ((1_000_000_000, "bn"), (1_000_000, "M"), (1_000, "k")):
        if value >= size:
            scaled = value / size
            text = f"{scaled:.1f}" if scaled < 10 else f"{scaled:.0f}"
            return f"{text.removesuffix('.0')} {unit}"
    return f"{value:,}"


def describe(reach: Reach) -> str:
    """ "≥ 1.2 M (Mastodon, Bluesky, X; Instagram not available)": the figure with its
    coverage, never without it."""
    names = [_title(p) for p in reach.covered]
    missing = [_title(p.platform) for p in reach.not_available]
    total = reach.total
    if total is None:
        return (
            f"not available ({', '.join(missing)}: no follower counts)"
            if missing
            else ("not available (no posts)")
        )
    coverage = ", ".join(names) + (f"; {', '.join(missing)} not available" if missing else "")
    return f"{'≥ ' if reach.lower_bound else ''}{compact(total)} ({coverage})"


_TITLES = {"x": "X", "youtube": "YouTube", "rss": "RSS"}


def _title(platform: str) -> str:
    return _TITLES.get(platform, platform.capitalize())
