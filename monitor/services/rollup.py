"""The posts roll-up: counts per 15-minute UTC slot, kept with every write of a post.

The digest and ``/stats`` count posts per platform, per hashtag, per hour and per
day, distinct authors, and sum every post's counts as last seen. Read from the
posts, each of those grows with the history held; read from here, it grows with
the number of slots in the period (96 a day), whatever the size of the store.

* :class:`~monitor.models.PostSlot`: posts and their summed counts per slot and platform;
* :class:`~monitor.models.TagSlot`: posts per slot and hashtag;
* :class:`~monitor.models.AuthorSlot`: each author's slots, chained (see its docstring).

Slots are UTC quarter-hours because every zone's local midnight and hour fall on
one, so the roll-up never needs rebuilding when ``TIMEZONE`` changes.

It must never disagree with the posts, so the same transaction that writes posts
updates it: the bulk writers (ingest, retention) wrap their writes in
:func:`tracking`, which reads the posts' state before and after and applies the
difference; posts and hashtags written through the ORM are folded by mapper hooks.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Session

from monitor.models import (
    AuthorSlot,
    PlatformTotal,
    Post,
    PostHashtag,
    PostSlot,
    PostStatus,
    TagSlot,
)
from monitor.services import engagement

METRICS = ("likes", "shares", "replies", "quotes", "views")
#: What post_slots and platform_totals add up, in this order.
COUNTERS = ("posts", *METRICS, *[f"known_{m}" for m in METRICS], "approved", "pending")
#: The statuses counted (their counters, after the counts).
STATUS_COUNTERS = (PostStatus.APPROVED, PostStatus.PENDING)
SLOT = timedelta(minutes=15)
_SLOT_SECONDS = int(SLOT.total_seconds())
_CHUNK = 500
_COMPOUND = 400

_POSTS = Post.__table__
_TAGS = PostHashtag.__table__
_POST_SLOTS = PostSlot.__table__
_TAG_SLOTS = TagSlot.__table__
_TOTALS = PlatformTotal.__table__
_AUTHOR_SLOTS = AuthorSlot.__table__


def slot_of(moment: datetime) -> int:
    """The slot a moment falls in (quarter-hours since the Unix epoch, UTC)."""
    return int(moment.astimezone(UTC).timestamp()) // _SLOT_SECONDS


def slot_start(slot: int) -> datetime:
    return datetime.fromtimestamp(slot * _SLOT_SECONDS, UTC)


def slot_bound(moment: datetime) -> int:
    """The first slot at or after ``moment`` (a range's exclusive end, or its start).

    Local midnights and hours are on a slot boundary in every zone in use; a bound
    that is not (a historic local mean time) is rounded up, to the next slot.
    """
    seconds = moment.astimezone(UTC).timestamp()
    return -int(-seconds // _SLOT_SECONDS)


@dataclasses.dataclass(frozen=True, slots=True)
class PostState:
    """What the roll-up holds of one post."""

    post_id: int
    platform: str
    created_at: datetime
    author_handle: str
    values: tuple[int | None, ...]  # in METRICS order
    tags: tuple[str, ...]
    status: PostStatus | None = None


def _status(status: Any) -> PostStatus | None:
    return None if status is None else PostStatus(status)


def load_states(connection: Connection, post_ids: Iterable[int]) -> dict[int, PostState]:
    """The stored state of these posts (missing ones are simply absent)."""
    ids = sorted(set(post_ids))
    states: dict[int, PostState] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        tags: dict[int, list[str]] = defaultdict(list)
        for post_id, tag in connection.execute(
            sa.select(_TAGS.c.post_id, _TAGS.c.tag).where(_TAGS.c.post_id.in_(chunk))
        ):
            tags[post_id].append(tag)
        columns = [_POSTS.c.id, _POSTS.c.platform, _POSTS.c.created_at, _POSTS.c.author_handle]
        columns.append(_POSTS.c.status)
        for row in connection.execute(
            sa.select(*columns, *[_POSTS.c[m] for m in METRICS]).where(_POSTS.c.id.in_(chunk))
        ):
            post_id, platform, created_at, handle, status, *values = row
            states[post_id] = PostState(
                post_id,
                platform,
                created_at,
                handle,
                tuple(values),
                tuple(sorted(tags[post_id])),
                _status(status),
            )
    return states


@contextmanager
def tracking(session: Session, post_ids: Iterable[int] = ()) -> Iterator[set[int]]:
    """Keep the roll-up in step with the posts written inside the block.

    ``post_ids`` are the posts that exist before and may change; add the ids of posts
    inserted inside the block to the yielded set. On leaving, the difference between
    the states before and after is applied, in the session's transaction.
    """
    connection = session.connection()
    ids = set(post_ids)
    before = load_states(connection, ids)
    yield ids
    apply(connection, before.values(), load_states(connection, ids).values())


class _Delta:
    """Changes to the three tables, added up before they are written."""

    def __init__(self) -> None:
        self.posts: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0] * len(COUNTERS))
        self.tags: dict[tuple[int, str], int] = defaultdict(int)
        self.authors: dict[tuple[str, str, int], int] = defaultdict(int)

    def add(self, state: PostState, sign: int) -> None:
        slot = slot_of(state.created_at)
        row = self.posts[(slot, state.platform)]
        row[0] += sign
        for i, value in enumerate(state.values):
            if value is not None:
                row[1 + i] += sign * int(value)
                row[6 + i] += sign
        for i, status in enumerate(STATUS_COUNTERS, start=11):
            row[i] += sign * (state.status is status)
        for tag in state.tags:
            self.tags[(slot, tag)] += sign
        self.authors[(state.platform, state.author_handle, slot)] += sign


def apply(connection: Connection, before: Iterable[PostState], after: Iterable[PostState]) -> None:
    """Take the ``before`` states out of the roll-up and put the ``after`` states in."""
    delta = _Delta()
    for state in before:
        delta.add(state, -1)
    for state in after:
        delta.add(state, +1)
    insert = _insert_for(connection)
    names = list(COUNTERS)
    post_rows = [
        {"slot": slot, "platform": platform, **dict(zip(names, values, strict=True))}
        for (slot, platform), values in delta.posts.items()
        if any(values)
    ]
    _upsert(connection, insert, _POST_SLOTS, ["slot", "platform"], names, post_rows)
    platform_sums: dict[str, list[int]] = defaultdict(lambda: [0] * len(names))
    for (_, platform), values in delta.posts.items():
        platform_sums[platform] = [
            a + b for a, b in zip(platform_sums[platform], values, strict=True)
        ]
    total_rows = [
        {"platform": platform, **dict(zip(names, values, strict=True))}
        for platform, values in platform_sums.items()
        if any(values)
    ]
    _upsert(connection, insert, _TOTALS, ["platform"], names, total_rows)
    tag_rows = [{"slot": s, "tag": t, "posts": n} for (s, t), n in delta.tags.items() if n]
    _upsert(connection, insert, _TAG_SLOTS, ["slot", "tag"], ["posts"], tag_rows)
    author_rows = [
        {"platform": p, "author_handle": a, "slot": s, "posts": n}
        for (p, a, s), n in delta.authors.items()
        if n
    ]
    key = ["platform", "author_handle", "slot"]
    _upsert(connection, insert, _AUTHOR_SLOTS, key, ["posts"], author_rows)
    if post_rows:
        connection.execute(sa.delete(_POST_SLOTS).where(_POST_SLOTS.c.posts <= 0))
        connection.execute(sa.delete(_TOTALS).where(_TOTALS.c.posts <= 0))
    if tag_rows:
        connection.execute(sa.delete(_TAG_SLOTS).where(_TAG_SLOTS.c.posts <= 0))
    if author_rows:
        connection.execute(sa.delete(_AUTHOR_SLOTS).where(_AUTHOR_SLOTS.c.posts <= 0))
        _rechain(connection, sorted({(p, a) for p, a, _ in delta.authors}))


def _insert_for(connection: Connection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _upsert(
    connection: Connection,
    insert: Any,
    table: sa.Table,
    key: list[str],
    counters: list[str],
    rows: list[dict[str, Any]],
) -> None:
    """Add each row's counters to the stored row of its key (a new key starts at 0)."""
    if not rows:
        return
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[name] for name in key],
        set_={name: table.c[name] + statement.excluded[name] for name in counters},
    )
    for start in range(0, len(rows), _CHUNK):
        connection.execute(statement, rows[start : start + _CHUNK])


def _rechain(connection: Connection, authors: Sequence[tuple[str, str]]) -> None:
    """Point each of these authors' slots at the slot before it, where that changed."""
    table = _AUTHOR_SLOTS
    for start in range(0, len(authors), _CHUNK):
        chunk = authors[start : start + _CHUNK]
        if connection.dialect.name == "postgresql":
            # Two transactions adding slots of one author take turns, so the later sees
            # the other's slot (committed) and chains both; locks in one order.
            keys = sorted({hash_key(p, a) for p, a in chunk})
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(:keys) AS k ORDER BY k"),
                {"keys": keys},
            )
        rows = connection.execute(
            sa.select(table.c.platform, table.c.author_handle, table.c.slot, table.c.prev_slot)
            .where(sa.tuple_(table.c.platform, table.c.author_handle).in_(chunk))
            .order_by(table.c.platform, table.c.author_handle, table.c.slot)
        ).all()
        changes: list[dict[str, Any]] = []
        previous: tuple[str, str] | None = None
        prev_slot: int | None = None
        for platform, handle, slot, stored_prev in rows:
            if (platform, handle) != previous:
                previous, prev_slot = (platform, handle), None
            if stored_prev != prev_slot:
                changes.append({"b_p": platform, "b_a": handle, "b_s": slot, "prev": prev_slot})
            prev_slot = slot
        if changes:
            connection.execute(
                sa.update(table)
                .where(
                    table.c.platform == sa.bindparam("b_p"),
                    table.c.author_handle == sa.bindparam("b_a"),
                    table.c.slot == sa.bindparam("b_s"),
                )
                .values(prev_slot=sa.bindparam("prev")),
                changes,
            )


def hash_key(platform: str, handle: str) -> int:
    """A stable signed 64-bit lock key for one author."""
    digest = hashlib.blake2b(f"{platform}\0{handle}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def rebuild(connection: Connection) -> None:
    """Recompute the whole roll-up from the posts (the migration's back-fill).

    In SQL, grouped once per table: a million posts through Python would take minutes.
    """
    for table in (_POST_SLOTS, _TAG_SLOTS, _AUTHOR_SLOTS, _TOTALS):
        connection.execute(sa.delete(table))
    slot = slot_sql(connection, _POSTS.c.created_at).label("slot")
    sums = [sa.func.coalesce(sa.func.sum(_POSTS.c[m]), 0) for m in METRICS]
    knowns = [sa.func.count(_POSTS.c[m]) for m in METRICS]
    columns = [sa.func.count(), *sums, *knowns]
    # The 0014 back-fill runs this against the tables as they were then (no status counts).
    if "approved" in {c["name"] for c in sa.inspect(connection).get_columns(_POST_SLOTS.name)}:
        columns += [
            sa.func.count(sa.case((_POSTS.c.status == status.value, 1)))
            for status in STATUS_COUNTERS
        ]
    names = ["slot", "platform", *COUNTERS[: len(columns)]]
    per_slot = sa.select(slot, _POSTS.c.platform, *columns).group_by(slot, _POSTS.c.platform)
    # No Python-side defaults: they would name columns the table may not have yet.
    connection.execute(sa.insert(_POST_SLOTS).from_select(names, per_slot, include_defaults=False))
    summed = [sa.func.sum(_POST_SLOTS.c[name]) for name in names[2:]]
    connection.execute(
        sa.insert(_TOTALS).from_select(
            names[1:],
            sa.select(_POST_SLOTS.c.platform, *summed).group_by(_POST_SLOTS.c.platform),
            include_defaults=False,
        )
    )
    per_tag = (
        sa.select(slot, _TAGS.c.tag, sa.func.count())
        .select_from(_POSTS.join(_TAGS, _TAGS.c.post_id == _POSTS.c.id))
        .group_by(slot, _TAGS.c.tag)
    )
    connection.execute(sa.insert(_TAG_SLOTS).from_select(["slot", "tag", "posts"], per_tag))
    grouped = (
        sa.select(_POSTS.c.platform, _POSTS.c.author_handle, slot, sa.func.count().label("n"))
        .group_by(_POSTS.c.platform, _POSTS.c.author_handle, slot)
        .subquery()
    )
    chained = sa.select(
        grouped.c.platform,
        grouped.c.author_handle,
        grouped.c.slot,
        sa.func.lag(grouped.c.slot).over(
            partition_by=[grouped.c.platform, grouped.c.author_handle], order_by=grouped.c.slot
        ),
        grouped.c.n,
    )
    connection.execute(
        sa.insert(_AUTHOR_SLOTS).from_select(
            ["platform", "author_handle", "slot", "prev_slot", "posts"], chained
        )
    )


def slot_sql(connection: Connection, column: Any) -> Any:
    """:func:`slot_of` in SQL, for the back-fill."""
    if connection.dialect.name == "postgresql":
        seconds = sa.func.extract("epoch", column)
        return sa.cast(sa.func.floor(seconds / _SLOT_SECONDS), sa.Integer)
    # The whole seconds as stored ("YYYY-MM-DD HH:MM:SS.ffffff"): strftime would round the
    # fraction to the millisecond, so a moment 0.5 ms before a slot fell in the next one.
    return (
        sa.cast(sa.func.strftime("%s", sa.func.substr(column, 1, 19)), sa.Integer) // _SLOT_SECONDS
    )


# Reading: every figure is a range of slots [start, end), end exclusive.


def _bucket_of(bounds: Sequence[int], slot: int) -> int:
    return bisect.bisect_right(bounds, slot) - 1


#: Up to this many buckets are added up by the database (a CASE over the bounds); more,
#: such as a year's days, are worked out here from the rows.
_BUCKETS_IN_SQL = 32


def bucketed(
    connection: Connection | Session, table: sa.FromClause, key: Any, bounds: Sequence[int]
) -> dict[tuple[int, Any], int]:
    """``posts`` of ``table`` per (bucket, key), bucket i being slots [bounds[i], bounds[i+1]).

    ``table`` is a roll-up table, or rows of its shape (``slot``, the key, ``posts``): a
    campaign's placements counted per slot (:mod:`monitor.services.digest_rows`).
    """
    slot = table.c.slot
    in_range = sa.and_(slot >= bounds[0], slot < bounds[-1])
    if len(bounds) - 1 <= _BUCKETS_IN_SQL:
        last = len(bounds) - 2
        if last == 0:
            query = sa.select(sa.literal(0), key, sa.func.sum(table.c.posts)).group_by(key)
        else:
            arms = [(slot < b, i) for i, b in enumerate(bounds[1:-1])]
            bucket = sa.case(*arms, else_=last).label("bucket")
            # Grouped by the column's name: the CASE's bound values would not match.
            query = sa.select(bucket, key, sa.func.sum(table.c.posts)).group_by(
                sa.literal_column("bucket"), key
            )
        rows = connection.execute(query.select_from(table).where(in_range))
        return {(int(b), k): int(n) for b, k, n in rows if n}
    counts: dict[tuple[int, Any], int] = defaultdict(int)
    for slot_, value, posts in connection.execute(
        sa.select(slot, key, table.c.posts).where(in_range)
    ):
        counts[(_bucket_of(bounds, slot_), value)] += int(posts)
    return dict(counts)


def post_counts(
    connection: Connection | Session, bounds: Sequence[int]
) -> dict[tuple[int, str], int]:
    """Posts per (bucket, platform), bucket i being slots [bounds[i], bounds[i + 1])."""
    return bucketed(connection, _POST_SLOTS, _POST_SLOTS.c.platform, bounds)


def posts_by_slot(connection: Connection | Session, start: int, end: int) -> list[tuple[int, int]]:
    """Posts per slot in [start, end), every platform's added up, in slot order: one read
    for the charts of a long range (its days and its hours)."""
    t = _POST_SLOTS
    return [
        (int(slot), int(n))
        for slot, n in connection.execute(
            sa.select(t.c.slot, sa.func.sum(t.c.posts))
            .where(t.c.slot >= start, t.c.slot < end)
            .group_by(t.c.slot)
            .order_by(t.c.slot)
        )
    ]


def tag_counts(
    connection: Connection | Session, bounds: Sequence[int]
) -> dict[tuple[int, str], int]:
    """Posts per (bucket, hashtag)."""
    return bucketed(connection, _TAG_SLOTS, _TAG_SLOTS.c.tag, bounds)


def totals(
    connection: Connection | Session, start: int | None = None, end: int | None = None
) -> dict[str, dict[str, int | None]]:
    """Per platform, the sum of each count as last seen over posts created in the range
    (all of them without one); None where no post gives the count."""
    t = _TOTALS if start is None and end is None else _POST_SLOTS
    query = sa.select(
        t.c.platform,
        *[sa.func.sum(t.c[m]) for m in METRICS],
        *[sa.func.sum(t.c[f"known_{m}"]) for m in METRICS],
    ).group_by(t.c.platform)
    if start is not None:
        query = query.where(_POST_SLOTS.c.slot >= start)
    if end is not None:
        query = query.where(_POST_SLOTS.c.slot < end)
    result: dict[str, dict[str, int | None]] = {}
    size = len(METRICS)
    for platform, *values in connection.execute(query):
        result[platform] = {
            m: int(values[i]) if values[size + i] else None for i, m in enumerate(METRICS)
        }
    return dict(sorted(result.items()))


def approved_posts(connection: Connection | Session, start: int, end: int) -> tuple[int, int]:
    """Posts created in slots [start, end), and how many of them are approved now."""
    t = _POST_SLOTS
    posts, approved = connection.execute(
        sa.select(sa.func.sum(t.c.posts), sa.func.sum(t.c.approved)).where(
            t.c.slot >= start, t.c.slot < end
        )
    ).one()
    return int(posts or 0), int(approved or 0)


def pending_posts(connection: Connection | Session) -> int:
    """Posts waiting for a decision now, from the all-time totals (a row a platform)."""
    return int(connection.execute(sa.select(sa.func.sum(_TOTALS.c.pending))).scalar() or 0)


@dataclasses.dataclass(frozen=True, slots=True)
class Authors:
    """Distinct authors of one platform in a range, and how many posted there first."""

    authors: int
    new: int


def author_counts(
    connection: Connection | Session,
    start: int,
    end: int,
    *,
    platforms: Iterable[str] | None = None,
    first: int | None = None,
) -> dict[str, Authors]:
    """Distinct authors per platform in slots [start, end), and the new ones among them
    (:func:`authors_of_ranges` for one range)."""
    if platforms is None:
        platforms = connection.execute(
            sa.select(_POST_SLOTS.c.platform)
            .where(_POST_SLOTS.c.slot >= start, _POST_SLOTS.c.slot < end)
            .distinct()
        ).scalars()
    return authors_of_ranges(connection, [(start, end, list(platforms))], first=first)[0]


def authors_of_ranges(
    connection: Connection | Session,
    ranges: Sequence[tuple[int, int, Sequence[str]]],
    *,
    first: int | None = None,
) -> list[dict[str, Authors]]:
    """Distinct authors per platform in each range of slots [start, end) (of the platforms
    named with it), and the new ones among them, in one statement.

    An author is counted by their first slot in the range: the one whose slot before is
    before the range, or who has none (new). Per range and platform, two counts of one
    index range each: the new authors (no slot before: the prev_slot index), and the
    returning ones, found from whichever side is smaller: the range itself (the slot
    index) or the history before it (the prev_slot index; for a range that starts at the
    campaign's beginning, nothing), so a year costs about what a day does. The ``+ 0``
    keeps the planner to that index; plain counts with no grouping, put together with
    UNION ALL, because a digest asks for eight ranges of three platforms.
    """
    first = first_slot(connection) if first is None else first
    parts: list[str] = []
    params: dict[str, str] = {}
    keys: list[tuple[int, str, bool]] = []
    for i, (start, end, names) in enumerate(ranges):
        lo, hi = int(start), int(end)
        before, inside = (0 if first is None else max(0, lo - first)), hi - lo
        for platform in sorted(set(names)):
            bind = f"p{len(params)}"
            params[bind] = platform
            of = f"FROM {_AUTHOR_SLOTS.name} WHERE platform = :{bind}"
            if before < inside:
                returning = f"prev_slot < {lo} AND slot + 0 >= {lo} AND slot + 0 < {hi}"
            else:
                returning = f"prev_slot + 0 < {lo} AND slot >= {lo} AND slot < {hi}"
            new = f"prev_slot IS NULL AND slot >= {lo} AND slot < {hi}"
            for is_new, where in ((False, returning), (True, new)):
                parts.append(f"SELECT {len(keys)} AS k, count(*) AS n {of} AND {where}")
                keys.append((i, platform, is_new))
    found: list[dict[str, list[int]]] = [{} for _ in ranges]
    rows: list[Any] = []
    for at in range(0, len(parts), _COMPOUND):  # SQLite's limit is 500 SELECTs in one
        rows += connection.execute(sa.text(" UNION ALL ".join(parts[at : at + _COMPOUND])), params)
    for k, n in rows:
        i, platform, is_new = keys[int(k)]
        counts = found[i].setdefault(platform, [0, 0])
        counts[0] += int(n)
        if is_new:
            counts[1] += int(n)
    return [{p: Authors(*c) for p, c in sorted(f.items()) if c[0]} for f in found]


def first_slot(connection: Connection | Session) -> int | None:
    """The slot of the oldest post held."""
    return connection.execute(sa.select(sa.func.min(_POST_SLOTS.c.slot))).scalar_one_or_none()


def distinct_authors(connection: Connection | Session, start: int, end: int) -> sa.Select[Any]:
    """The (platform, handle) of every author who posted in slots [start, end)."""
    t = _AUTHOR_SLOTS
    return sa.select(t.c.platform, t.c.author_handle).where(
        t.c.slot >= start,
        t.c.slot < end,
        sa.or_(t.c.prev_slot.is_(None), t.c.prev_slot < start),
    )


# Posts and hashtags written through the ORM (tests, the demo's sample) are folded by
# the flush that writes them; bulk writers use ``tracking`` instead.


def _orm_state(connection: Connection, target: Post, **overrides: Any) -> PostState:
    tags = tuple(
        sorted(
            connection.execute(sa.select(_TAGS.c.tag).where(_TAGS.c.post_id == target.id)).scalars()
        )
    )
    values = {
        "platform": target.platform,
        "created_at": target.created_at,
        "author_handle": target.author_handle,
        "values": tuple(getattr(target, m) for m in METRICS),
        "status": _status(target.status),
        **overrides,
    }
    return PostState(int(target.id or 0), tags=tags, **values)


@event.listens_for(Post, "after_insert")
def _post_inserted(mapper: Any, connection: Connection, target: Post) -> None:
    apply(connection, (), [_orm_state(connection, target)])


@event.listens_for(Post, "after_update")
def _post_updated(mapper: Any, connection: Connection, target: Post) -> None:
    inspected = sa.inspect(target)
    fields = ("platform", "created_at", "author_handle", "status", *METRICS)
    old: dict[str, Any] = {}
    for name in fields:
        history = inspected.attrs[name].history
        if history.deleted:
            old[name] = history.deleted[0]
    if not old:
        return
    before = {name: old.get(name, getattr(target, name)) for name in fields}
    earlier = _orm_state(
        connection,
        target,
        platform=before["platform"],
        created_at=before["created_at"],
        author_handle=before["author_handle"],
        values=tuple(before[m] for m in METRICS),
        status=_status(before["status"]),
    )
    apply(connection, [earlier], [_orm_state(connection, target)])


@event.listens_for(Post, "before_delete")
def _post_deleted(mapper: Any, connection: Connection, target: Post) -> None:
    if target.id is not None:
        apply(connection, load_states(connection, [target.id]).values(), ())
        engagement.forget_posts(connection, [target.id])


@event.listens_for(PostHashtag, "after_insert")
def _tag_inserted(mapper: Any, connection: Connection, target: PostHashtag) -> None:
    created = connection.execute(
        sa.select(_POSTS.c.created_at).where(_POSTS.c.id == target.post_id)
    ).scalar_one_or_none()
    if created is not None:
        _upsert(
            connection,
            _insert_for(connection),
            _TAG_SLOTS,
            ["slot", "tag"],
            ["posts"],
            [{"slot": slot_of(created), "tag": target.tag, "posts": 1}],
        )


@event.listens_for(PostHashtag, "after_delete")
def _tag_deleted(mapper: Any, connection: Connection, target: PostHashtag) -> None:
    created = connection.execute(
        sa.select(_POSTS.c.created_at).where(_POSTS.c.id == target.post_id)
    ).scalar_one_or_none()
    if created is not None:
        key = {"slot": slot_of(created), "tag": target.tag}
        _upsert(
            connection,
            _insert_for(connection),
            _TAG_SLOTS,
            ["slot", "tag"],
            ["posts"],
            [{**key, "posts": -1}],
        )
        connection.execute(sa.delete(_TAG_SLOTS).where(_TAG_SLOTS.c.posts <= 0))
