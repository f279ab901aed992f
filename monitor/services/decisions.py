"""The decisions roll-up: moderation decisions per 15-minute UTC slot, status and wait.

The digest counts a period's approvals and rejections and gives the median and p95
time from a post's arrival to its decision, exactly. Read from the audit trail, that is
every decision of the period joined to its post, sorted twice: a year of decisions is
hundreds of thousands of rows. Here a period is its slots' rows in
:class:`~monitor.models.DecisionSlot` (a bucket of waits per row, and the bucket's
bounds), and a percentile reads only the decisions of the bucket that holds its rank,
through the ``wait_us`` index; none when that bucket's waits are all equal.

A decision's wait is kept on its audit row (``wait_us``, microseconds, exact on both
databases) when the row is written, and taken away (the decision stays counted, without
a wait) when its post is deleted, as the audit trail's outer join to posts did.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlmodel import Session

from monitor.models import AuditEvent, DecisionSlot, Post, PostStatus
from monitor.services import rollup
from monitor.services.audit import DECISIONS

_EVENTS = AuditEvent.__table__
_POSTS = Post.__table__
_SLOTS = DecisionSlot.__table__
_CHUNK = 500
#: The statuses a decision ends in (the digest's approved and rejected).
STATUSES = (PostStatus.APPROVED.value, PostStatus.REJECTED.value)
#: The bucket of decisions without a wait (their post is gone).
NO_WAIT = -1
#: Bucket upper bounds in microseconds: under a second, then four buckets per doubling
#: up to about a year (2**25 s); the last bucket is open-ended. A bucket's waits are
#: within 19 % of each other, so the one holding a rank is a small part of the period.
BOUNDS = tuple(round(1_000_000 * 2 ** (k / 4)) for k in range(101))


def bucket_of(wait_us: int | None) -> int:
    return NO_WAIT if wait_us is None else bisect.bisect_right(BOUNDS, wait_us)


def _bucket_range(bucket: int) -> tuple[int | None, int | None]:
    """[low, high) of a bucket's waits (None: unbounded on that side)."""
    low = BOUNDS[bucket - 1] if bucket > 0 else None
    high = BOUNDS[bucket] if bucket < len(BOUNDS) else None
    return low, high


def decision_status(action: Any, to_status: Any) -> str | None:
    """The status a decision reached; None when the audit row is not a decision."""
    status = None if to_status is None else PostStatus(to_status).value
    return status if action in DECISIONS and status in STATUSES else None


def micros(delta: timedelta) -> int:
    """A duration in whole microseconds, exactly (no float on the way)."""
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# Writing.


def _write(
    connection: Connection, entries: Iterable[tuple[int, str, int | None]], sign: int
) -> None:
    """Add (sign +1) or take away (-1) decisions given as (slot, status, wait_us).

    Adding widens the bucket's bounds to the waits added; taking away leaves them (still
    bounds, possibly loose), so they never need the bucket's other waits read.
    """
    rows: dict[tuple[int, str, int], list[Any]] = {}
    for slot, status, wait in entries:
        key = (slot, status, bucket_of(wait))
        row = rows.setdefault(key, [0, wait, wait])
        row[0] += sign
        if wait is not None:
            row[1] = wait if row[1] is None else min(row[1], wait)
            row[2] = wait if row[2] is None else max(row[2], wait)
    if not rows:
        return
    values = [
        {
            "slot": slot,
            "to_status": status,
            "bucket": bucket,
            "decisions": n,
            "wait_min": low if sign > 0 else None,
            "wait_max": high if sign > 0 else None,
        }
        for (slot, status, bucket), (n, low, high) in rows.items()
    ]
    insert = rollup._insert_for(connection)(_SLOTS)
    counts: dict[str, Any] = {"decisions": _SLOTS.c.decisions + insert.excluded.decisions}
    if sign > 0:
        least, greatest = _extremes(connection)
        counts["wait_min"] = sa.func.coalesce(
            least(_SLOTS.c.wait_min, insert.excluded.wait_min), insert.excluded.wait_min
        )
        counts["wait_max"] = sa.func.coalesce(
            greatest(_SLOTS.c.wait_max, insert.excluded.wait_max), insert.excluded.wait_max
        )
    statement = insert.on_conflict_do_update(
        index_elements=[_SLOTS.c.slot, _SLOTS.c.to_status, _SLOTS.c.bucket], set_=counts
    )
    for start in range(0, len(values), _CHUNK):
        connection.execute(statement, values[start : start + _CHUNK])
    if sign < 0:
        connection.execute(sa.delete(_SLOTS).where(_SLOTS.c.decisions <= 0))


def _extremes(connection: Connection) -> tuple[Any, Any]:
    """Two-argument min and max (SQLite's min/max, PostgreSQL's LEAST/GREATEST)."""
    if connection.dialect.name == "postgresql":
        return sa.func.least, sa.func.greatest
    return sa.func.min, sa.func.max


@event.listens_for(AuditEvent, "before_insert")
def _event_inserted(mapper: Any, connection: Connection, target: AuditEvent) -> None:
    """Every audit row is written through the ORM (:func:`monitor.services.audit.record`):
    a decision gets its wait and is counted in the same flush."""
    status = decision_status(target.action, target.to_status)
    if status is None:
        return
    target.wait_us = None
    if target.post_id is not None:
        first_seen = connection.execute(
            sa.select(_POSTS.c.first_seen_at).where(_POSTS.c.id == target.post_id)
        ).scalar_one_or_none()
        if first_seen is not None:
            target.wait_us = micros(_aware(target.at) - _aware(first_seen))
    _write(connection, [(rollup.slot_of(_aware(target.at)), status, target.wait_us)], +1)


@event.listens_for(Post, "before_delete")
def _post_deleted(mapper: Any, connection: Connection, target: Post) -> None:
    if target.id is not None:
        forget_posts(connection, [target.id])


def forget_posts(connection: Connection, post_ids: Sequence[int]) -> None:
    """Posts about to be deleted: their decisions stay counted, without a wait."""
    for start in range(0, len(post_ids), _CHUNK):
        chunk = list(post_ids[start : start + _CHUNK])
        rows = connection.execute(
            sa.select(_EVENTS.c.id, _EVENTS.c.at, _EVENTS.c.to_status, _EVENTS.c.wait_us).where(
                _EVENTS.c.post_id.in_(chunk), _EVENTS.c.wait_us.is_not(None)
            )
        ).all()
        if not rows:
            continue
        entries = [(rollup.slot_of(at), PostStatus(s).value, w) for _, at, s, w in rows]
        _write(connection, entries, -1)
        _write(connection, [(slot, status, None) for slot, status, _ in entries], +1)
        connection.execute(
            sa.update(_EVENTS).where(_EVENTS.c.id.in_([r[0] for r in rows])).values(wait_us=None)
        )


def wait_sql(connection: Connection, later: Any, earlier: Any) -> Any:
    """:func:`micros` of ``later - earlier`` in SQL, exact on both databases (SQLite's
    julianday is a float, off by tens of microseconds)."""
    if connection.dialect.name == "postgresql":
        return sa.cast(sa.func.extract("epoch", later - earlier) * 1_000_000, sa.BigInteger)

    # Stored as "YYYY-MM-DD HH:MM:SS.ffffff": the seconds without the fraction (strftime
    # would round it to the millisecond, and so to the next second from .9995), then it.
    def whole(column: Any) -> Any:
        return sa.cast(sa.func.strftime("%s", sa.func.substr(column, 1, 19)), sa.Integer)

    def fraction(column: Any) -> Any:
        return sa.cast(sa.func.substr(column, 21, 6), sa.Integer)

    return (whole(later) - whole(earlier)) * 1_000_000 + fraction(later) - fraction(earlier)


def _decision_sql() -> Any:
    return sa.and_(
        _EVENTS.c.action.in_([a.value for a in DECISIONS]), _EVENTS.c.to_status.in_(STATUSES)
    )


def rebuild(connection: Connection) -> None:
    """Recompute every decision's wait and the roll-up from the audit trail and the posts
    (the migration's back-fill), in SQL."""
    connection.execute(sa.delete(_SLOTS))
    first_seen = (
        sa.select(wait_sql(connection, _EVENTS.c.at, _POSTS.c.first_seen_at))
        .where(_POSTS.c.id == _EVENTS.c.post_id)
        .scalar_subquery()
    )
    connection.execute(
        sa.update(_EVENTS).values(wait_us=None).where(_EVENTS.c.wait_us.is_not(None))
    )
    connection.execute(sa.update(_EVENTS).where(_decision_sql()).values(wait_us=first_seen))
    wait = _EVENTS.c.wait_us
    bucket = sa.case(
        (wait.is_(None), NO_WAIT),
        *[(wait < bound, i) for i, bound in enumerate(BOUNDS)],
        else_=len(BOUNDS),
    ).label("bucket")
    slot = rollup.slot_sql(connection, _EVENTS.c.at).label("slot")
    grouped = (
        sa.select(
            slot, _EVENTS.c.to_status, bucket, sa.func.count(), sa.func.min(wait), sa.func.max(wait)
        )
        .where(_decision_sql())
        .group_by(slot, _EVENTS.c.to_status, bucket)
    )
    names = ["slot", "to_status", "bucket", "decisions", "wait_min", "wait_max"]
    connection.execute(sa.insert(_SLOTS).from_select(names, grouped))


# Reading.


@dataclasses.dataclass(frozen=True, slots=True)
class _Bucket:
    bucket: int
    decisions: int
    wait_min: int
    wait_max: int


@dataclasses.dataclass(frozen=True, slots=True)
class Decisions:
    """A period's decisions: per status reached, and the waits' buckets in order."""

    start: int
    end: int
    by_status: dict[str, int]
    buckets: tuple[_Bucket, ...]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def timed(self) -> int:
        """Decisions with a wait (their post is still held)."""
        return sum(b.decisions for b in self.buckets)

    def percentile(self, connection: Connection | Session, fraction: float) -> list[float]:
        """The waits (seconds) either side of ``fraction``'s rank, as ``statistics.quantiles``'
        inclusive method interpolates between them: one wait when there is one decision."""
        count = self.timed
        if count == 0:
            return []
        low = int(fraction * (count - 1))
        ranks = [low] if count == 1 else [low, min(low + 1, count - 1)]
        return [self._wait_at(connection, rank) / 1_000_000 for rank in ranks]

    def _wait_at(self, connection: Connection | Session, rank: int) -> int:
        """The wait of rank ``rank`` (0: the shortest) in the period."""
        before = 0
        for b in self.buckets:
            if rank < before + b.decisions:
                if b.wait_min == b.wait_max:
                    return b.wait_min
                return self._read(connection, b.bucket, rank - before)
            before += b.decisions
        raise ValueError(f"rank {rank} of {self.timed} decisions")

    def _read(self, connection: Connection | Session, bucket: int, offset: int) -> int:
        """The ``offset``-th wait of one bucket among the period's decisions."""
        wait = _EVENTS.c.wait_us
        low, high = _bucket_range(bucket)
        query = sa.select(wait).where(
            wait.is_not(None),
            _EVENTS.c.at >= rollup.slot_start(self.start),
            _EVENTS.c.at < rollup.slot_start(self.end),
        )
        if low is not None:
            query = query.where(wait >= low)
        if high is not None:
            query = query.where(wait < high)
        return int(connection.execute(query.order_by(wait).offset(offset).limit(1)).scalar_one())


def decisions(connection: Connection | Session, start: int, end: int) -> Decisions:
    """The decisions made in slots [start, end): one grouped read of their rows."""
    t = _SLOTS
    by_status: dict[str, int] = defaultdict(int)
    buckets: dict[int, list[int]] = {}
    rows = connection.execute(
        sa.select(
            t.c.bucket,
            t.c.to_status,
            sa.func.sum(t.c.decisions),
            sa.func.min(t.c.wait_min),
            sa.func.max(t.c.wait_max),
        )
        .where(t.c.slot >= start, t.c.slot < end)
        .group_by(t.c.bucket, t.c.to_status)
    )
    for bucket, status, n, low, high in rows:
        by_status[status] += int(n)
        if bucket == NO_WAIT or not n:
            continue
        row = buckets.setdefault(int(bucket), [0, int(low), int(high)])
        row[0] += int(n)
        row[1], row[2] = min(row[1], int(low)), max(row[2], int(high))
    return Decisions(
        start,
        end,
        dict(by_status),
        tuple(_Bucket(b, *buckets[b]) for b in sorted(buckets) if buckets[b][0] > 0),
    )
