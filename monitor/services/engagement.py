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
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Session

from monitor.models import (
    EngagementDay,
    EngagementRollup,
    EngagementSnapshot,
    GainBound,
    GainDay,
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
_GAINS = GainDay.__table__
_ROLLUP = EngagementRollup.__table__
_SNAPS = EngagementSnapshot.__table__
_POSTS = Post.__table__
_BOUNDS = GainBound.__table__
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
    flips: bool = False
    #: What the stored row contributed to :class:`GainDay` (None: not stored yet).
    old_gains: Values | None = None

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
            "flips": self.flips,
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
        sums = _GainSums()
        for post_id in chunk:
            post_days = days.setdefault(post_id, {})
            _merge(post_days, by_post[post_id], zone)
            for row in post_days.values():
                if row.dirty:
                    platform = platforms[post_id]
                    if row.old_gains is not None:
                        sums.add(row.day, platform, row.old_gains, -1)
                    sums.add(row.day, platform, gained(row.last, row.before), +1)
                    values = row.row(post_id, platform)
                    if row.stored:
                        updates.append({_UPDATE_NAMES.get(k, k): v for k, v in values.items()})
                    else:
                        inserts.append(values)
        if inserts:
            connection.execute(sa.insert(_DAYS), inserts)
        if updates:
            connection.execute(_UPDATE, updates)
        sums.write(connection)
        _write_bounds(connection, {p: list(days[p].values()) for p in chunk if days.get(p)})


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
    with_sums = _has_sums(connection)
    if _has_bounds(connection):
        connection.execute(sa.delete(_BOUNDS))
    connection.execute(sa.delete(_DAYS))
    connection.execute(sa.delete(_ROLLUP))
    if with_sums:
        connection.execute(sa.delete(_GAINS))
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
    connection.execute(_chained(staging, with_flips=with_sums))
    staging.drop(connection)
    if with_sums:
        names = [*METRICS, *[f"known_{m}" for m in METRICS], "posts"]
        gains = [_DAYS.c[f"gained_{m}"] for m in METRICS]
        sums = sa.select(
            _DAYS.c.day,
            _DAYS.c.platform,
            *[sa.func.coalesce(sa.func.sum(c), 0) for c in gains],
            *[sa.func.count(c) for c in gains],
            sa.func.count(),
        ).group_by(_DAYS.c.day, _DAYS.c.platform)
        connection.execute(sa.insert(_GAINS).from_select(["day", "platform", *names], sums))
    rebuild_bounds(connection)


def rebuild_bounds(connection: Connection) -> None:
    """Recompute every post's :class:`~monitor.models.GainBound` from its day rows."""
    if not _has_bounds(connection):
        return
    connection.execute(sa.delete(_BOUNDS))
    names = ["post_id", "rank", "first_day", "last_day"]
    connection.execute(sa.insert(_BOUNDS).from_select(names, _bounds_select()))


def _has_sums(connection: Connection) -> bool:
    """Whether the schema has the day sums and flips (migration 0014): the 0008 back-fill
    runs this code against the tables as they were then."""
    return sa.inspect(connection).has_table(_GAINS.name)


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


def _chained(staging: sa.Table, *, with_flips: bool) -> sa.Insert:
    """Every staged day with the post's day before it, and the gain between them."""
    by_post, by_day = staging.c.post_id, staging.c.day
    prev = [
        sa.func.lag(staging.c[m], type_=sa.BigInteger)
        .over(partition_by=by_post, order_by=by_day)
        .label(f"prev_{m}")
        for m in METRICS
    ]
    number = sa.func.row_number().over(partition_by=by_post, order_by=by_day).label("n")
    rows = sa.select(staging, *prev, number).subquery()
    flips = sa.case(
        (
            sa.and_(
                rows.c.n > 1,
                sa.or_(*[rows.c[m].is_(None) != rows.c[f"prev_{m}"].is_(None) for m in METRICS]),
            ),
            sa.true(),
        ),
        else_=sa.false(),
    )
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
        *([flips] if with_flips else []),
    ).join(_POSTS, _POSTS.c.id == rows.c.post_id)
    names = ["post_id", "day", "platform", "taken_at", *METRICS]
    names += [f"prev_{m}" for m in METRICS] + [f"gained_{m}" for m in METRICS] + ["interactions"]
    names += ["flips"] if with_flips else []
    # No Python-side defaults: before 0014 the table has no ``flips`` to default.
    return sa.insert(_DAYS).from_select(names, query, include_defaults=False)


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
    columns.append(_DAYS.c.flips)
    days: dict[int, dict[date, _Day]] = {}
    for post_id, day, taken_at, *values, flips in connection.execute(
        sa.select(*columns).where(_DAYS.c.post_id.in_(post_ids))
    ):
        days.setdefault(post_id, {})[day] = _Day(
            day,
            taken_at,
            tuple(values[: len(METRICS)]),
            tuple(values[len(METRICS) :]),
            stored=True,
            dirty=False,
            flips=bool(flips),
            old_gains=gained(tuple(values[: len(METRICS)]), tuple(values[len(METRICS) :])),
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
    for index, day in enumerate(sorted(days)):
        row = days[day]
        if row.before != before:
            row.before = before
            row.dirty = True
        flips = index > 0 and _flips(row.last, before)
        if row.flips != flips:
            row.flips = flips
            row.dirty = True
        before = row.last


def _flips(last: Values, before: Values) -> bool:
    """A count given one day and not the day before, or the other way round."""
    return any((a is None) != (b is None) for a, b in zip(last, before, strict=True))


class _GainSums:
    """Changes to :class:`GainDay`, added up per (day, platform) before they are written."""

    def __init__(self) -> None:
        self.rows: dict[tuple[date, str], list[int]] = {}

    def add(self, day: date, platform: str, gains: Values, sign: int) -> None:
        row = self.rows.setdefault((day, platform), [0] * (2 * len(METRICS) + 1))
        row[-1] += sign
        for i, value in enumerate(gains):
            if value is not None:
                row[i] += sign * int(value)
                row[len(METRICS) + i] += sign

    def write(self, connection: Connection) -> None:
        names = [*METRICS, *[f"known_{m}" for m in METRICS], "posts"]
        rows = [
            {"day": day, "platform": platform, **dict(zip(names, values, strict=True))}
            for (day, platform), values in self.rows.items()
            if any(values)
        ]
        if not rows:
            return
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        statement = insert(_GAINS)
        statement = statement.on_conflict_do_update(
            index_elements=[_GAINS.c.day, _GAINS.c.platform],
            set_={name: _GAINS.c[name] + statement.excluded[name] for name in names},
        )
        connection.execute(statement, rows)
        connection.execute(sa.delete(_GAINS).where(_GAINS.c.posts <= 0))


def bound(rows: Iterable[tuple[Values, Values]]) -> int:
    """:class:`~monitor.models.GainBound`'s bound of one post from its day rows' (last,
    before) counts: no gain over a range can exceed it, the range's gain being a last
    count less a count before (or 0)."""
    pairs = list(rows)
    total = 0
    for i in _INTERACTION_POSITIONS:
        held = [0, *(int(value) for pair in pairs for v in pair if (value := v[i]) is not None)]
        total += max(held) - min(held)
    return total


def _write_bounds(connection: Connection, days: dict[int, list[_Day]]) -> None:
    """Replace these posts' bounds with the ones of their day rows now."""
    if not days:
        return
    rows = [
        {
            "post_id": post_id,
            "rank": -bound([(d.last, d.before) for d in post_days]),
            "first_day": min(d.day for d in post_days),
            "last_day": max(d.day for d in post_days),
        }
        for post_id, post_days in days.items()
    ]
    connection.execute(sa.delete(_BOUNDS).where(_BOUNDS.c.post_id.in_(list(days))))
    connection.execute(sa.insert(_BOUNDS), rows)


def _bounds_select() -> sa.Select[Any]:
    """:func:`bound` of every post with day rows, in SQL (the back-fill)."""
    terms = []
    for m in INTERACTIONS:
        values = (_DAYS.c[m], _DAYS.c[f"prev_{m}"])
        high = _larger(sa.literal(0), *[sa.func.coalesce(sa.func.max(v), 0) for v in values])
        low = _smaller(sa.literal(0), *[sa.func.coalesce(sa.func.min(v), 0) for v in values])
        terms.append(high - low)
    ceiling = sum(terms[1:], start=terms[0])
    return sa.select(
        _DAYS.c.post_id, -ceiling, sa.func.min(_DAYS.c.day), sa.func.max(_DAYS.c.day)
    ).group_by(_DAYS.c.post_id)


def _larger(*values: Any) -> Any:
    first, *rest = values
    for value in rest:
        first = sa.case((value > first, value), else_=first)
    return first


def _smaller(*values: Any) -> Any:
    first, *rest = values
    for value in rest:
        first = sa.case((value < first, value), else_=first)
    return first


def _has_bounds(connection: Connection) -> bool:
    """Whether the schema has the bounds (migration 0018); older back-fills run this code
    against the tables as they were then."""
    return sa.inspect(connection).has_table(_BOUNDS.name)


def forget_posts(connection: Connection, post_ids: Sequence[int]) -> None:
    """Take posts about to be deleted out of :class:`GainDay` (their day rows go with them)."""
    if not post_ids or rollup_zone(connection) is None:
        return
    sums = _GainSums()
    gains = [_DAYS.c[f"gained_{m}"] for m in METRICS]
    for start in range(0, len(post_ids), _CHUNK):
        chunk = list(post_ids[start : start + _CHUNK])
        for day, platform, *values in connection.execute(
            sa.select(_DAYS.c.day, _DAYS.c.platform, *gains).where(_DAYS.c.post_id.in_(chunk))
        ):
            sums.add(day, platform, tuple(values), -1)
    sums.write(connection)


def _chunks(items: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
