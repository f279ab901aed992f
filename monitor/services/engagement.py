"""The daily engagement roll-up: one row per post and local day, kept with the snapshots.

The digest's gains (last counts of a period minus the last counts before it) used
to be worked out from every snapshot of the day and each post's previous one. The
roll-up (:class:`~monitor.models.EngagementDay`) holds, per post and day in the
roll-up's zone, the day's last snapshot, the last counts before the day and the
gain between them, so one day's figures are a range read of one index.

It must never disagree with the snapshots, so every snapshot is folded in by the
same transaction that writes it: :func:`append_snapshots` for the bulk writes of
ingest and refresh, and an ORM hook for snapshots added through a ``Session``.
Snapshots may arrive out of order (the days after the one changed are re-chained)
and at the same instant (the later written wins, as the digest's higher snapshot
id does: ids only grow, so a snapshot written now has a higher id than any stored).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlmodel import Session

from monitor.models import (
    EngagementDay,
    EngagementRollup,
    EngagementSnapshot,
    Post,
    UTCDateTime,
    utcnow,
)

METRICS = ("likes", "shares", "replies", "quotes", "views")
#: Views measure reach, not interaction, and would drown the rest: they do not rank posts.
INTERACTIONS = ("likes", "shares", "replies", "quotes")

Values = tuple[int | None, ...]  # in METRICS order
NOTHING: Values = (None,) * len(METRICS)

_DAYS = EngagementDay.__table__
_ROLLUP = EngagementRollup.__table__
_SNAPS = EngagementSnapshot.__table__
_POSTS = Post.__table__
_CHUNK = 500
_INTERACTION_POSITIONS = tuple(METRICS.index(m) for m in INTERACTIONS)


def gained(last: Values, before: Values) -> Values:
    """The digest's gain: the last count minus the last one before (none: from 0),
    and None where the last snapshot does not give the metric (unknown, not zero)."""
    return tuple(
        None if value is None else value - (earlier or 0)
        for value, earlier in zip(last, before, strict=True)
    )


def interactions(gains: Values) -> int:
    """The known interaction gains added up; 0 when none is known."""
    return sum(gain for gain in (gains[i] for i in _INTERACTION_POSITIONS) if gain is not None)


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """One snapshot just written, as the roll-up needs it."""

    post_id: int
    taken_at: datetime
    values: Values


@dataclasses.dataclass(slots=True)
class _Day:
    """One post's day row while it is brought up to date (``dirty``: to be written)."""

    day: date
    taken_at: datetime
    last: Values
    before: Values = NOTHING
    stored: bool = False
    dirty: bool = True

    def row(self, post_id: int, platform: str) -> dict[str, Any]:
        gains = gained(self.last, self.before)
        return {
            "post_id": post_id,
            "day": self.day,
            "platform": platform,
            "taken_at": self.taken_at,
            **dict(zip(METRICS, self.last, strict=True)),
            **{f"prev_{m}": v for m, v in zip(METRICS, self.before, strict=True)},
            **{f"gained_{m}": v for m, v in zip(METRICS, gains, strict=True)},
            "interactions": interactions(gains),
        }


def rollup_zone(connection: Connection | Session) -> str | None:
    """The zone the roll-up cuts days in; None when there is no roll-up."""
    return connection.execute(
        sa.select(_ROLLUP.c.zone).where(_ROLLUP.c.id == 1)
    ).scalar_one_or_none()


def append_snapshots(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert snapshot rows and fold them into the roll-up, in the session's transaction.

    Rows are written in order, so of two for one post at one instant the later wins.
    """
    if not rows:
        return
    session.execute(sa.insert(_SNAPS), list(rows))
    fold_snapshots(
        session.connection(),
        [Snapshot(row["post_id"], row["taken_at"], _values(row)) for row in rows],
    )


@event.listens_for(EngagementSnapshot, "after_insert")
def _fold_added_snapshot(mapper: Any, connection: Connection, target: EngagementSnapshot) -> None:
    """Snapshots added through the ORM are folded in by the flush that writes them."""
    values = tuple(getattr(target, m) for m in METRICS)
    fold_snapshots(connection, [Snapshot(target.post_id, target.taken_at, values)])


def fold_snapshots(connection: Connection, snapshots: Sequence[Snapshot]) -> None:
    """Bring the roll-up rows of these snapshots' posts up to date with them."""
    name = rollup_zone(connection) if snapshots else None
    if name is None:
        return
    zone = ZoneInfo(name)
    by_post = _group(snapshots)
    for chunk in _chunks(sorted(by_post)):
        platforms, days = _load(connection, chunk)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for post_id in chunk:
            post_days = days.get(post_id, {})
            _merge(post_days, by_post[post_id], zone)
            for row in post_days.values():
                if row.dirty:
                    values = row.row(post_id, platforms[post_id])
                    if row.stored:
                        updates.append({_UPDATE_NAMES.get(k, k): v for k, v in values.items()})
                    else:
                        inserts.append(values)
        if inserts:
            connection.execute(sa.insert(_DAYS), inserts)
        if updates:
            connection.execute(_UPDATE, updates)


#: The key columns are matched on, under other names (a bind may not shadow a column set).
_UPDATE_NAMES = {"post_id": "b_post_id", "day": "b_day"}
_UPDATE = (
    sa.update(_DAYS)
    .where(_DAYS.c.post_id == sa.bindparam("b_post_id"), _DAYS.c.day == sa.bindparam("b_day"))
    .values({c.name: sa.bindparam(c.name) for c in _DAYS.c if c.name not in _UPDATE_NAMES})
)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local calendar day begins."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def rebuild(connection: Connection, zone: ZoneInfo) -> None:
    """Recompute the whole roll-up from the snapshots, cutting days in ``zone``.

    The migration's back-fill, and the way back to the fast digest after a change of
    ``TIMEZONE``. Done in SQL (millions of snapshots would take minutes through
    Python): each day's last snapshot per post into a scratch table, one range read
    of the day each, then every row with the day before it, in one statement.
    """
    connection.execute(sa.delete(_DAYS))
    connection.execute(sa.delete(_ROLLUP))
    connection.execute(sa.insert(_ROLLUP).values(id=1, zone=zone.key, built_at=utcnow()))
    first, last = connection.execute(
        sa.select(sa.func.min(_SNAPS.c.taken_at), sa.func.max(_SNAPS.c.taken_at))
    ).one()
    if first is None:
        return
    staging = sa.Table(
        "engagement_days_staging",
        sa.MetaData(),
        sa.Column("post_id", sa.Integer, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("taken_at", UTCDateTime, nullable=False),
        *[sa.Column(m, sa.BigInteger) for m in METRICS],
        prefixes=["TEMPORARY"],
    )
    staging.create(connection)
    day, last_day = first.astimezone(zone).date(), last.astimezone(zone).date()
    while day <= last_day:
        connection.execute(_last_of_day(staging, day, zone))
        day += timedelta(days=1)
    connection.execute(_chained(staging))
    staging.drop(connection)


def _last_of_day(staging: sa.Table, day: date, zone: ZoneInfo) -> sa.Insert:
    """Each post's last snapshot of ``day`` (latest time, then highest id)."""
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    order = (_SNAPS.c.taken_at.desc(), _SNAPS.c.id.desc())
    ranked = (
        sa.select(_SNAPS.c.post_id, _SNAPS.c.taken_at, *[_SNAPS.c[m] for m in METRICS])
        .add_columns(
            sa.func.row_number().over(partition_by=_SNAPS.c.post_id, order_by=order).label("rn")
        )
        .where(_SNAPS.c.taken_at >= start, _SNAPS.c.taken_at < end)
        .subquery()
    )
    lasts = sa.select(
        ranked.c.post_id,
        sa.literal(day, sa.Date),
        ranked.c.taken_at,
        *[ranked.c[m] for m in METRICS],
    ).where(ranked.c.rn == 1)
    names = ["post_id", "day", "taken_at", *METRICS]
    return sa.insert(staging).from_select(names, lasts)


def _chained(staging: sa.Table) -> sa.Insert:
    """Every staged day with the post's day before it, and the gain between them."""
    by_post, by_day = staging.c.post_id, staging.c.day
    prev = [
        sa.func.lag(staging.c[m], type_=sa.BigInteger)
        .over(partition_by=by_post, order_by=by_day)
        .label(f"prev_{m}")
        for m in METRICS
    ]
    rows = sa.select(staging, *prev).subquery()
    gains = [
        sa.case(
            (rows.c[m].is_(None), None), else_=rows.c[m] - sa.func.coalesce(rows.c[f"prev_{m}"], 0)
        )
        for m in METRICS
    ]
    total = sum(
        (sa.func.coalesce(gains[i], 0) for i in _INTERACTION_POSITIONS), start=sa.literal(0)
    )
    query = sa.select(
        rows.c.post_id,
        rows.c.day,
        _POSTS.c.platform,
        rows.c.taken_at,
        *[rows.c[m] for m in METRICS],
        *[rows.c[f"prev_{m}"] for m in METRICS],
        *gains,
        total,
    ).join(_POSTS, _POSTS.c.id == rows.c.post_id)
    names = ["post_id", "day", "platform", "taken_at", *METRICS]
    names += [f"prev_{m}" for m in METRICS] + [f"gained_{m}" for m in METRICS] + ["interactions"]
    return sa.insert(_DAYS).from_select(names, query)


def _values(row: dict[str, Any]) -> Values:
    return tuple(row.get(m) for m in METRICS)


def _group(snapshots: Iterable[Snapshot]) -> dict[int, list[Snapshot]]:
    by_post: dict[int, list[Snapshot]] = {}
    for snapshot in snapshots:
        by_post.setdefault(snapshot.post_id, []).append(snapshot)
    return by_post


def _load(
    connection: Connection, post_ids: list[int]
) -> tuple[dict[int, str], dict[int, dict[date, _Day]]]:
    """The posts' platforms and stored day rows; locks the posts so that two
    transactions adding snapshots of one post take turns (PostgreSQL)."""
    platforms = dict(
        connection.execute(
            sa.select(_POSTS.c.id, _POSTS.c.platform)
            .where(_POSTS.c.id.in_(post_ids))
            .order_by(_POSTS.c.id)
            .with_for_update()
        ).all()
    )
    columns = [_DAYS.c.post_id, _DAYS.c.day, _DAYS.c.taken_at]
    columns += [_DAYS.c[m] for m in METRICS] + [_DAYS.c[f"prev_{m}"] for m in METRICS]
    days: dict[int, dict[date, _Day]] = {}
    for post_id, day, taken_at, *values in connection.execute(
        sa.select(*columns).where(_DAYS.c.post_id.in_(post_ids))
    ):
        days.setdefault(post_id, {})[day] = _Day(
            day,
            taken_at,
            tuple(values[: len(METRICS)]),
            tuple(values[len(METRICS) :]),
            stored=True,
            dirty=False,
        )
    return platforms, days


def _merge(days: dict[date, _Day], snapshots: Iterable[Snapshot], zone: ZoneInfo) -> None:
    """Fold one post's snapshots into its day rows (in place), then re-chain each day's
    counts before it; rows whose content changed are marked dirty."""
    for snapshot in snapshots:  # in the order written
        day = snapshot.taken_at.astimezone(zone).date()
        row = days.get(day)
        if row is None:
            days[day] = _Day(day, snapshot.taken_at, snapshot.values)
        elif snapshot.taken_at >= row.taken_at:
            row.taken_at, row.last, row.dirty = snapshot.taken_at, snapshot.values, True
    before = NOTHING
    for day in sorted(days):
        row = days[day]
        if row.before != before:
            row.before = before
            row.dirty = True
        before = row.last


def _chunks(items: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
