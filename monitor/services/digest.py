"""The digest's figures: one computation for the email, the preview and ``/stats``.

A day is a calendar day in ``settings.zone`` (Europe/London by default), so the
day the clocks go forward has 23 hours and the day they go back has 25; every
boundary is computed as a local midnight turned into UTC, and hours are UTC
hours inside those bounds. A range of days is compared with the range of the
same length before it and with the average of the seven ranges before it.

Guarantee 4 of SPEC.md shapes the result: a metric nobody provides is ``None``
("not available"), never 0, and every figure of a source that was not watched
the whole period carries an ``incomplete`` mark that the totals repeat.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from adapters.text import normalise_tag
from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import (
    EngagementDay,
    EngagementSnapshot,
    ModerationEvent,
    PollKind,
    PollRun,
    Post,
    PostHashtag,
    PostStatus,
    Source,
    utcnow,
)
from monitor.services.audit import DECISIONS, Action
from monitor.services.engagement import (
    INTERACTIONS,
    METRICS,
    gained,
    interactions,
    local_midnight,
    rollup_zone,
)
from monitor.services.health import SourceHealth, SourceState
from monitor.services.sources import source_tags

TOP_POSTS = 5
HISTORY_DAYS = 14
AVERAGE_PERIODS = 7
MAX_RANGE_DAYS = 31

_POSTS = Post.__table__
_TAGS = PostHashtag.__table__
_SNAPS = EngagementSnapshot.__table__
_DAYS = EngagementDay.__table__
_EVENTS = ModerationEvent.__table__
_RUNS = PollRun.__table__


def parse_day(value: str) -> date:
    """A ``YYYY-MM-DD`` date from a person, or a UserError that says what was expected."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{value!r} is not a date: give it as YYYY-MM-DD") from None


def check_past_day(day: date, settings: Settings, *, allow_today: bool = False) -> date:
    """Refuse a day that has not ended yet (or not begun), in the configured zone."""
    today = datetime.now(settings.zone).date()
    if day > today or (day == today and not allow_today):
        raise UserError(
            f"{day.isoformat()} has not ended yet in {settings.timezone}:"
            f" give a day up to {(today - timedelta(days=1)).isoformat()}"
        )
    return day


@dataclasses.dataclass(frozen=True, slots=True)
class Period:
    """One or more whole local days, with their UTC bounds (end exclusive)."""

    first_day: date
    last_day: date
    start: datetime
    end: datetime

    @classmethod
    def of(cls, first_day: date, last_day: date, zone: ZoneInfo) -> Period:
        if last_day < first_day:
            raise UserError("the range ends before it starts")
        if (last_day - first_day).days >= MAX_RANGE_DAYS:
            raise UserError(f"give a range of at most {MAX_RANGE_DAYS} days")
        end = local_midnight(last_day + timedelta(days=1), zone)
        return cls(first_day, last_day, local_midnight(first_day, zone), end)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def hours(self) -> int:
        return int((self.end - self.start).total_seconds() // 3600)

    @property
    def label(self) -> str:
        if self.days == 1:
            return self.first_day.isoformat()
        return f"{self.first_day.isoformat()} to {self.last_day.isoformat()}"

    def shifted(self, periods: int, zone: ZoneInfo) -> Period:
        """The period of the same length ``periods`` lengths earlier (negative) or later."""
        step = timedelta(days=self.days * periods)
        return Period.of(self.first_day + step, self.last_day + step, zone)


@dataclasses.dataclass(frozen=True, slots=True)
class Figure:
    """A count, the period before and the average of the seven periods before."""

    value: int
    previous: int
    average: float
    incomplete: bool = False

    @property
    def change(self) -> int:
        return self.value - self.previous

    @property
    def change_pct(self) -> float | None:
        """None when the period before had nothing (no percentage of zero)."""
        return None if self.previous == 0 else 100.0 * self.change / self.previous

    @property
    def against_average(self) -> float:
        return self.value - self.average

    @property
    def against_average_pct(self) -> float | None:
        return None if self.average == 0 else 100.0 * self.against_average / self.average


@dataclasses.dataclass(frozen=True, slots=True)
class Bucket:
    """Posts in one hour (label "09:00") or one day (label "2021-03-18")."""

    label: str
    posts: int


@dataclasses.dataclass(frozen=True, slots=True)
class SourceCoverage:
    """Whether a source was watched during the period, and its health now."""

    health: SourceHealth
    #: The campaign hashtags it watches, in matching form; empty means all of them.
    hashtags: tuple[str, ...]
    hours_polled: int
    hours_expected: int
    failed_polls: int
    gaps: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.health.key

    @property
    def platform(self) -> str:
        return self.health.platform

    @property
    def state(self) -> SourceState:
        return self.health.state

    @property
    def standing_gap(self) -> str | None:
        """A gap the last poll reported and no poll has closed yet."""
        return self.health.possible_gap

    @property
    def complete(self) -> bool:
        """Watched every elapsed hour of the period, with no gap reported."""
        return (
            self.state is not SourceState.DISABLED
            and self.hours_polled >= self.hours_expected
            and not self.gaps
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TopPost:
    """A post ranked by interactions gained; text only when it was approved."""

    rank: int
    platform: str
    status: str
    gained: int
    gains: dict[str, int | None]
    url: str | None = None
    author_handle: str | None = None
    author_name: str | None = None
    text: str | None = None

    @property
    def quoted(self) -> bool:
        return self.text is not None


@dataclasses.dataclass(frozen=True, slots=True)
class ModerationFigures:
    decisions: int
    approved: int
    rejected: int
    pending: int
    oldest_pending_age: timedelta | None
    median_decision_time: timedelta | None
    flagged: int
    removed_at_source: int
    takedown_requests: int


@dataclasses.dataclass(frozen=True, slots=True)
class Digest:
    """Every figure of one period; renderers format it and add nothing."""

    period: Period
    timezone: str
    generated_at: datetime
    posts: Figure
    authors: Figure
    platforms: dict[str, Figure]
    hashtags: dict[str, Figure]
    gains: dict[str, int | None]
    gains_by_platform: dict[str, dict[str, int | None]]
    totals: dict[str, int | None]
    top_posts: list[TopPost]
    moderation: ModerationFigures
    coverage: list[SourceCoverage]
    hourly: list[Bucket]
    daily: list[Bucket]

    @property
    def incomplete(self) -> bool:
        """True when any source missed part of the period, or none was ever set up."""
        return not self.coverage or any(not source.complete for source in self.coverage)

    @property
    def unwatched_sources(self) -> list[SourceCoverage]:
        return [source for source in self.coverage if not source.complete]

    @property
    def headline(self) -> str:
        """The subject's numbers: posts, interactions gained, decisions, and any warning."""
        interactions = _sum_known(self.gains[m] for m in INTERACTIONS)
        parts = [
            f"{self.posts.value:,} new post{'s' if self.posts.value != 1 else ''}",
            "interactions not available"
            if interactions is None
            else f"{interactions:,} interactions",
            f"{self.moderation.decisions:,} decisions",
        ]
        headline = ", ".join(parts)
        if not self.coverage:
            headline += "; INCOMPLETE: no source was watched"
        elif self.incomplete:
            headline += f"; INCOMPLETE: {len(self.unwatched_sources)} source(s) not watched"
        return headline


def compute_digest(
    session: Session,
    settings: Settings,
    first_day: date,
    last_day: date | None = None,
    *,
    now: datetime | None = None,
) -> Digest:
    """All figures for ``first_day`` (to ``last_day``), as of ``now``."""
    zone = settings.zone
    now = now or utcnow()
    period = Period.of(first_day, last_day or first_day, zone)
    boundaries = [period.shifted(-k, zone).start for k in range(AVERAGE_PERIODS, 0, -1)]
    boundaries += [period.start, period.end]

    coverage = _coverage(session, period, now, zone)
    incomplete_platforms = {c.platform for c in coverage if not c.complete}

    # The 14 daily buckets of the chart; for a one-day period they also hold the day
    # (bucket 13) and the seven before it (6..12), so one scan serves both.
    days = [period.last_day - timedelta(days=k) for k in range(HISTORY_DAYS - 1, -1, -1)]
    daily_counts = _post_counts(session, [local_midnight(day, zone) for day in days] + [period.end])
    if period.days == 1:
        offset = HISTORY_DAYS - 1 - AVERAGE_PERIODS
        counts = {(b - offset, p): v for (b, p), v in daily_counts.items() if b >= offset}
    else:
        counts = _post_counts(session, boundaries)
    daily = [
        Bucket(day.isoformat(), sum(v[0] for (b, _), v in daily_counts.items() if b == i))
        for i, day in enumerate(days)
    ]
    posts_by_bucket: dict[int, int] = defaultdict(int)
    authors_by_bucket: dict[int, int] = defaultdict(int)
    for (bucket, _), (posts, authors) in counts.items():
        posts_by_bucket[bucket] += posts
        # Authors are distinct per platform (a handle is only unique on its platform),
        # so per-platform counts add up to the distinct (platform, handle) pairs.
        authors_by_bucket[bucket] += authors
    platforms = {
        name: _figure(
            {b: v[0] for (b, p), v in counts.items() if p == name},
            incomplete=name in incomplete_platforms,
        )
        for name in sorted({p for _, p in counts} | {c.platform for c in coverage})
    }
    any_incomplete = not coverage or bool(incomplete_platforms)
    tag_names = {normalise_tag(tag): tag for tag in settings.hashtags}
    per_tag = _tags_by_bucket(session, boundaries)
    hashtags = {
        tag_names[key]: _figure(
            {b: n for (b, t), n in per_tag.items() if t == key},
            incomplete=_tag_incomplete(key, coverage),
        )
        for key in tag_names
    }
    gains_by_platform, top_gains = _gains(session, period, settings.timezone)
    return Digest(
        period=period,
        timezone=settings.timezone,
        generated_at=now,
        posts=_figure(posts_by_bucket, incomplete=any_incomplete),
        authors=_figure(authors_by_bucket, incomplete=any_incomplete),
        platforms=platforms,
        hashtags=hashtags,
        gains={
            metric: _sum_known(sums[metric] for sums in gains_by_platform.values())
            for metric in METRICS
        },
        gains_by_platform=gains_by_platform,
        totals=_campaign_totals(session),
        top_posts=_top_posts(session, top_gains),
        moderation=_moderation(session, period, now),
        coverage=coverage,
        hourly=_hourly(session, period, zone),
        daily=daily,
    )


def _figure(by_bucket: dict[int, int], *, incomplete: bool) -> Figure:
    # Buckets 0..6 are the seven periods before; 6 is the one just before; 7 is this one.
    before = [by_bucket.get(i, 0) for i in range(AVERAGE_PERIODS)]
    return Figure(
        value=by_bucket.get(AVERAGE_PERIODS, 0),
        previous=before[-1],
        average=sum(before) / AVERAGE_PERIODS,
        incomplete=incomplete,
    )


def _sum_known(values: Any) -> int | None:
    """The sum of the values that exist; None when none does (not available, not 0)."""
    known = [int(v) for v in values if v is not None]
    return sum(known) if known else None


def _buckets(boundaries: list[datetime]) -> list[tuple[int, datetime, datetime]]:
    """(index, start, end) of each [b_i, b_i+1).

    Each bucket is counted by its own range query on the created_at index: on a
    million posts that is about three times faster than one query grouping by a
    CASE over all the boundaries, which must sort every row it reads.
    """
    return [(i, boundaries[i], boundaries[i + 1]) for i in range(len(boundaries) - 1)]


def _in(column: Any, start: datetime, end: datetime) -> Any:
    return sa.and_(column >= start, column < end)


def _post_counts(
    session: Session, boundaries: list[datetime]
) -> dict[tuple[int, str], tuple[int, int]]:
    """(posts, distinct authors) per (bucket, platform), by creation time."""
    counts: dict[tuple[int, str], tuple[int, int]] = {}
    for i, start, end in _buckets(boundaries):
        query = (
            sa.select(
                _POSTS.c.platform,
                sa.func.count(),
                sa.func.count(sa.distinct(_POSTS.c.author_handle)),
            )
            .where(_in(_POSTS.c.created_at, start, end))
            .group_by(_POSTS.c.platform)
        )
        counts |= {(i, p): (int(n), int(a)) for p, n, a in session.execute(query)}
    return counts


def _tags_by_bucket(session: Session, boundaries: list[datetime]) -> dict[tuple[int, str], int]:
    # No filter on the tag: with one, planners walk the tag index over the whole history
    # instead of the few days of posts; the caller keeps the campaign tags.
    counts: dict[tuple[int, str], int] = {}
    for i, start, end in _buckets(boundaries):
        query = (
            sa.select(_TAGS.c.tag, sa.func.count())
            .select_from(_POSTS.join(_TAGS, _TAGS.c.post_id == _POSTS.c.id))
            .where(_in(_POSTS.c.created_at, start, end))
            .group_by(_TAGS.c.tag)
        )
        counts |= {(i, tag): int(n) for tag, n in session.execute(query)}
    return counts


def _hour_starts(period: Period) -> list[datetime]:
    return [period.start + timedelta(hours=h) for h in range(period.hours + 1)]


def _hourly(session: Session, period: Period, zone: ZoneInfo) -> list[Bucket]:
    """Posts per local hour; on a one-day period the repeated autumn hour is shown twice."""
    starts = _hour_starts(period)
    counts = {
        i: session.execute(
            sa.select(sa.func.count()).where(_in(_POSTS.c.created_at, start, end))
        ).scalar_one()
        for i, start, end in _buckets(starts)
    }
    local = [start.astimezone(zone) for start in starts[:-1]]
    labels = [f"{moment:%H}:00" for moment in local]
    if period.days == 1:
        repeated = {label for label in labels if labels.count(label) > 1}
        return [
            Bucket(f"{label} {moment:%Z}" if label in repeated else label, counts.get(i, 0))
            for i, (label, moment) in enumerate(zip(labels, local, strict=True))
        ]
    merged: dict[str, int] = defaultdict(int)
    for i, label in enumerate(labels):
        merged[label] += counts.get(i, 0)
    return [Bucket(label, merged[label]) for label in sorted(merged)]


def _gains_query(period: Period) -> sa.Select[Any]:
    """Per post with a snapshot in the period: last value in it minus last value before.

    A post first seen in the period counts from zero; a metric missing in the
    last snapshot of the period stays NULL (not available) rather than 0. Both
    snapshots are found by one seek each on (post_id, taken_at): the latest
    before the period's end is the last one in it, since the post has one there.
    """
    day_posts = (
        sa.select(_SNAPS.c.post_id)
        .where(_in(_SNAPS.c.taken_at, period.start, period.end))
        .distinct()
        .subquery("day_posts")
    )

    def latest_before(moment: datetime) -> Any:
        earlier = _SNAPS.alias()
        return (
            sa.select(earlier.c.id)
            .where(earlier.c.post_id == day_posts.c.post_id, earlier.c.taken_at < moment)
            .order_by(earlier.c.taken_at.desc(), earlier.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    ids = sa.select(
        day_posts.c.post_id,
        latest_before(period.end).label("last_id"),
        latest_before(period.start).label("before_id"),
    ).subquery("ids")
    last, before = _SNAPS.alias("last"), _SNAPS.alias("before")
    gained = [
        sa.case(
            (last.c[m].is_(None), None), else_=last.c[m] - sa.func.coalesce(before.c[m], 0)
        ).label(m)
        for m in METRICS
    ]
    return sa.select(ids.c.post_id, _POSTS.c.platform, _POSTS.c.status, *gained).select_from(
        ids.join(last, last.c.id == ids.c.last_id)
        .outerjoin(before, before.c.id == ids.c.before_id)
        .join(_POSTS, _POSTS.c.id == ids.c.post_id)
    )


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class _Gain:
    """What one post gained in the period (``None``: the metric is not available).

    Ordered by interactions, then the older post first, so a heap keeps the top five.
    """

    interactions: int
    newer_first: int  # minus the post id
    platform: str = dataclasses.field(compare=False)
    status: str = dataclasses.field(compare=False)
    values: tuple[int | None, ...] = dataclasses.field(compare=False)  # in METRICS order

    @property
    def post_id(self) -> int:
        return -self.newer_first


def _gains(
    session: Session, period: Period, timezone: str
) -> tuple[dict[str, dict[str, int | None]], list[_Gain]]:
    """Per platform and metric, the sum of the known gains (None when nobody gave it),
    and the posts that gained most interactions.

    Read from the daily roll-up when it cuts days in this zone; otherwise (the zone
    was changed and the roll-up not rebuilt yet) from the snapshots, slowly but alike.
    """
    if rollup_zone(session) != timezone:
        return _rank(session.execute(_gains_query(period)))
    if period.days > 1:
        return _rank(_range_gains(session, period))
    day = _DAYS.c.day == period.first_day
    gains = [_DAYS.c[f"gained_{m}"] for m in METRICS]
    sums = session.execute(
        sa.select(_DAYS.c.platform, *[sa.func.sum(c) for c in gains])
        .where(day)
        .group_by(_DAYS.c.platform)
    )
    by_platform = {
        platform: dict(zip(METRICS, [_int(v) for v in values], strict=True))
        for platform, *values in sorted(sums, key=lambda row: row[0])
    }
    top = session.execute(
        sa.select(_DAYS.c.interactions, _DAYS.c.post_id, _DAYS.c.platform, _POSTS.c.status)
        .add_columns(*gains)
        .join(_POSTS, _POSTS.c.id == _DAYS.c.post_id)
        .where(day, _DAYS.c.interactions > 0)
        .order_by(_DAYS.c.interactions.desc(), _DAYS.c.post_id)
        .limit(TOP_POSTS)
    )
    ranked = [
        _Gain(int(n), -post_id, platform, status, tuple(_int(v) for v in values))
        for n, post_id, platform, status, *values in top
    ]
    return by_platform, ranked


def _int(value: Any) -> int | None:
    """PostgreSQL sums big integers as numeric."""
    return None if value is None else int(value)


def _range_gains(session: Session, period: Period) -> Iterator[tuple[Any, ...]]:
    """Per post active in a range of days: its last day's counts minus those before
    its first day, from the day rows (one read of the range, in post order)."""
    query = (
        sa.select(_DAYS.c.post_id, _DAYS.c.platform, _POSTS.c.status)
        .add_columns(*[_DAYS.c[m] for m in METRICS], *[_DAYS.c[f"prev_{m}"] for m in METRICS])
        .join(_POSTS, _POSTS.c.id == _DAYS.c.post_id)
        .where(_DAYS.c.day >= period.first_day, _DAYS.c.day <= period.last_day)
        .order_by(_DAYS.c.post_id, _DAYS.c.day)
    )
    size = len(METRICS)
    for post_id, group in itertools.groupby(session.execute(query), key=lambda row: row[0]):
        days = list(group)
        first, last = days[0], days[-1]
        before = tuple(first[3 + size :])
        yield (post_id, first[1], first[2], *gained(tuple(last[3 : 3 + size]), before))


def _rank(rows: Iterable[Any]) -> tuple[dict[str, dict[str, int | None]], list[_Gain]]:
    """Sums per platform and the top posts, in one pass over (post, platform, status,
    gains...) rows."""
    sums: dict[str, list[int | None]] = {}
    top: list[_Gain] = []
    for post_id, platform, status, *values in rows:
        platform_sums = sums.setdefault(platform, [None] * len(METRICS))
        for i, value in enumerate(values):
            if value is not None:
                platform_sums[i] = (platform_sums[i] or 0) + int(value)
        gain_total = interactions(tuple(values))
        if gain_total <= 0:
            continue
        gain = _Gain(gain_total, -post_id, platform, status, tuple(values))
        if len(top) < TOP_POSTS:
            heapq.heappush(top, gain)
        elif gain > top[0]:
            heapq.heapreplace(top, gain)
    by_platform = {p: dict(zip(METRICS, sums[p], strict=True)) for p in sorted(sums)}
    return by_platform, sorted(top, reverse=True)


def _top_posts(session: Session, ranked: list[_Gain]) -> list[TopPost]:
    """The top posts with their words; pending, rejected and removed ones are counted
    but never quoted."""
    approved = [gain.post_id for gain in ranked if gain.status == PostStatus.APPROVED]
    details = {
        row.id: row
        for row in session.execute(
            sa.select(
                _POSTS.c.id,
                _POSTS.c.url,
                _POSTS.c.author_handle,
                _POSTS.c.author_name,
                _POSTS.c.text,
            ).where(_POSTS.c.id.in_(approved))
        )
    }
    top: list[TopPost] = []
    for rank, gain in enumerate(ranked, start=1):
        quoted = details.get(gain.post_id)
        top.append(
            TopPost(
                rank=rank,
                platform=gain.platform,
                status=gain.status,
                gained=gain.interactions,
                gains=dict(zip(METRICS, gain.values, strict=True)),
                url=quoted.url if quoted else None,
                author_handle=quoted.author_handle if quoted else None,
                author_name=quoted.author_name if quoted else None,
                text=quoted.text if quoted else None,
            )
        )
    return top


def _campaign_totals(session: Session) -> dict[str, int | None]:
    """Totals over every post as last seen (SUM of nothing is NULL: not available)."""
    row = session.execute(sa.select(*[sa.func.sum(_POSTS.c[m]) for m in METRICS])).one()
    return {m: None if v is None else int(v) for m, v in zip(METRICS, row, strict=True)}


def _moderation(session: Session, period: Period, now: datetime) -> ModerationFigures:
    decided = (
        sa.select(_EVENTS.c.at, _EVENTS.c.to_status, _POSTS.c.first_seen_at)
        .select_from(_EVENTS.outerjoin(_POSTS, _POSTS.c.id == _EVENTS.c.post_id))
        .where(
            _in(_EVENTS.c.at, period.start, period.end),
            _EVENTS.c.to_status.in_([PostStatus.APPROVED, PostStatus.REJECTED]),
            _EVENTS.c.action.in_(DECISIONS),
        )
    )
    decisions = session.execute(decided).all()
    waits = [(at - arrived).total_seconds() for at, _, arrived in decisions if arrived is not None]
    pending = session.execute(
        sa.select(sa.func.count(), sa.func.min(_POSTS.c.first_seen_at)).where(
            _POSTS.c.status == PostStatus.PENDING
        )
    ).one()
    actions = dict(
        session.execute(
            sa.select(_EVENTS.c.action, sa.func.count())
            .where(
                _in(_EVENTS.c.at, period.start, period.end),
                _EVENTS.c.action.in_([Action.TAKEDOWN_REQUESTED, Action.DELETED_AT_SOURCE]),
            )
            .group_by(_EVENTS.c.action)
        ).all()
    )
    flagged = session.execute(
        sa.select(sa.func.count()).where(
            _in(_POSTS.c.created_at, period.start, period.end), _POSTS.c.flagged.is_(True)
        )
    ).scalar_one()
    return ModerationFigures(
        decisions=len(decisions),
        approved=sum(1 for _, status, _ in decisions if status == PostStatus.APPROVED),
        rejected=sum(1 for _, status, _ in decisions if status == PostStatus.REJECTED),
        pending=int(pending[0]),
        oldest_pending_age=None if pending[1] is None else now - pending[1],
        median_decision_time=timedelta(seconds=statistics.median(waits)) if waits else None,
        flagged=int(flagged),
        removed_at_source=int(actions.get(Action.DELETED_AT_SOURCE, 0)),
        takedown_requests=int(actions.get(Action.TAKEDOWN_REQUESTED, 0)),
    )


def _coverage(
    session: Session, period: Period, now: datetime, zone: ZoneInfo
) -> list[SourceCoverage]:
    """How well each source meant to watch the period watched it.

    A source counts for the hours it was configured: from its creation (unknown
    for old rows: then the whole period) to its retirement. A period that is over
    is judged by its own poll runs, so a past day's digest shows that day's health,
    not today's; a period still running shows each source's health now.
    """
    starts = _hour_starts(period)
    runs = session.execute(
        sa.select(_RUNS.c.source_id, _RUNS.c.started_at, _RUNS.c.ok, _RUNS.c.gap, _RUNS.c.error)
        .where(_in(_RUNS.c.started_at, period.start, period.end), _RUNS.c.kind == PollKind.POLL)
        .order_by(_RUNS.c.started_at)
    ).all()
    by_source: dict[int, list[Any]] = defaultdict(list)
    for run in runs:
        by_source[run.source_id].append(run)
    sources = session.execute(
        sa.select(Source)
        .where(
            sa.or_(col(Source.retired_at).is_(None), col(Source.retired_at) > period.start),
            sa.or_(col(Source.created_at).is_(None), col(Source.created_at) < period.end),
        )
        .order_by(col(Source.platform), col(Source.key))
    ).scalars()
    coverage = []
    for source in sources:
        own = by_source[source.id or 0]
        hours = {_hour_index(run.started_at, period) for run in own if run.ok}
        gaps = list(dict.fromkeys(run.gap for run in own if run.gap))
        coverage.append(
            SourceCoverage(
                health=SourceHealth.of(source)
                if period.end > now
                else SourceHealth.during(source, own, period.end),
                hashtags=source_tags(source.hashtags),
                hours_polled=len(hours),
                hours_expected=_hours_expected(starts, now, source),
                failed_polls=sum(1 for run in own if not run.ok),
                gaps=tuple(gaps),
            )
        )
    return coverage


def _hour_index(moment: datetime, period: Period) -> int:
    return int((moment - period.start).total_seconds() // 3600)


def _hours_expected(starts: list[datetime], now: datetime, source: Source) -> int:
    """The period's elapsed hours in which the source was configured."""
    created = source.created_at
    born = created.replace(minute=0, second=0, microsecond=0) if created else None
    return sum(
        1
        for start in starts[:-1]
        if start < now
        and (born is None or start >= born)
        and (source.retired_at is None or start < source.retired_at)
    )


def _tag_incomplete(tag: str, coverage: list[SourceCoverage]) -> bool:
    """A hashtag's figure is incomplete when a source for it (or for every tag) was not."""
    return not coverage or any(
        not source.complete and (not source.hashtags or tag in source.hashtags)
        for source in coverage
    )


class Format:
    """How figures read to people, shared by the email, the preview and ``/stats``."""

    NOT_AVAILABLE = "not available"

    @staticmethod
    def count(value: int | float | None) -> str:
        """Thousands separated; None (a metric nobody provides) reads "not available"."""
        if value is None:
            return Format.NOT_AVAILABLE
        if isinstance(value, float) and not value.is_integer():
            return f"{value:,.1f}"
        return f"{int(value):,}"

    @staticmethod
    def change(delta: float, pct: float | None) -> str:
        """ "+3 (+25%)", "-1 (-10%)", "0", or "+4 (new)" when the base was zero."""
        sign = "+" if delta > 0 else ""
        amount = f"{sign}{delta:,.0f}" if float(delta).is_integer() else f"{sign}{delta:,.1f}"
        if delta == 0:
            return "0"
        if pct is None:
            return f"{amount} (new)"
        return f"{amount} ({'+' if pct > 0 else ''}{pct:.0f}%)"

    @staticmethod
    def breakdown(gains: dict[str, int | None]) -> str:
        """ "likes +10, shares +2": the interactions a post gained, the nonzero ones."""
        return ", ".join(f"{m} {v:+,}" for m in INTERACTIONS if (v := gains.get(m)))

    @staticmethod
    def duration(value: timedelta | None) -> str:
        if value is None:
            return "-"
        minutes = int(value.total_seconds() // 60)
        days, minutes = divmod(minutes, 24 * 60)
        hours, minutes = divmod(minutes, 60)
        if days:
            return f"{days}d {hours}h"
        return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"

    @staticmethod
    def when(value: datetime | None, zone: ZoneInfo) -> str:
        if value is None:
            return "-"
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
