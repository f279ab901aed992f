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

import bisect
import dataclasses
import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from adapters.text import normalise_tag
from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import (
    AuditEvent,
    Campaign,
    CampaignPost,
    EngagementDay,
    EngagementSnapshot,
    GainBound,
    GainDay,
    PollKind,
    PollRun,
    Post,
    PostHashtag,
    PostSlot,
    PostStatus,
    Source,
    utcnow,
)
from monitor.services import rollup
from monitor.services.campaign_history import TagChange, tags_during
from monitor.services.campaigns import get_campaign, split_list
from monitor.services.digest_rows import CampaignRows, Decided, InstallRows
from monitor.services.engagement import (
    INTERACTIONS,
    METRICS,
    gained,
    interactions,
    local_midnight,
    rollup_zone,
)
from monitor.services.health import PeriodRuns, SourceHealth, SourceState
from monitor.services.placements import scope_for
from monitor.services.reach import DEFINITION as reach_definition
from monitor.services.reach import Reach, compact, compute_reach
from monitor.services.reach import describe as describe_reach
from monitor.services.sources import source_tags

TOP_POSTS = 5
HISTORY_DAYS = 14
AVERAGE_PERIODS = 7
#: No post can be older than this: a range starting before it is a typing error.
EARLIEST_DAY = date(2000, 1, 1)

_POSTS = Post.__table__
_TAGS = PostHashtag.__table__
_SNAPS = EngagementSnapshot.__table__
_DAYS = EngagementDay.__table__
_EVENTS = AuditEvent.__table__
_RUNS = PollRun.__table__
_GAIN_DAYS = GainDay.__table__
_BOUNDS = GainBound.__table__
_PLACED = CampaignPost.__table__
#: Posts read a batch while walking the bounds for a range's top posts.
_WALK = 50


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
            raise UserError(
                f"the range ends ({last_day.isoformat()}) before it starts"
                f" ({first_day.isoformat()}): give the earlier day first"
            )
        if first_day < EARLIEST_DAY:
            raise UserError(
                f"{first_day.isoformat()} is before any post could have been written:"
                f" give a day from {EARLIEST_DAY.isoformat()}"
            )
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
        """The period of the same length ``periods`` lengths earlier (negative) or later
        (comparisons may reach before :data:`EARLIEST_DAY`: they simply find nothing)."""
        step = timedelta(days=self.days * periods)
        first, last = self.first_day + step, self.last_day + step
        end = local_midnight(last + timedelta(days=1), zone)
        return Period(first, last, local_midnight(first, zone), end)


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
    #: 95 in 100 decisions were made within this time of the post's arrival.
    p95_decision_time: timedelta | None
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
    #: Potential reach and contributors, with their coverage (see monitor.services.reach).
    reach: Reach
    #: The campaign's name (None: the install's only campaign, which needs no naming).
    campaign: str | None = None
    #: Hashtags added to or removed from the campaign during the period.
    tag_changes: tuple[TagChange, ...] = ()

    @property
    def tag_notes(self) -> list[str]:
        """Each change of the campaign's hashtags in the period, and what its figures cover."""
        zone = ZoneInfo(self.timezone)
        notes = []
        for change in self.tag_changes:
            local = change.at.astimezone(zone)
            at = f"{local:%H:%M}" if self.period.days == 1 else f"{local:%Y-%m-%d %H:%M}"
            notes.append(
                f"#{change.tag} was added to this campaign at {at}; its figures cover from then"
                if change.added
                else f"#{change.tag} was removed from this campaign at {at};"
                " its figures cover until then"
            )
        return notes

    @property
    def incomplete(self) -> bool:
        """True when any source missed part of the period, or none was ever set up."""
        return not self.coverage or any(not source.complete for source in self.coverage)

    @property
    def unwatched_sources(self) -> list[SourceCoverage]:
        return [source for source in self.coverage if not source.complete]

    @property
    def headline(self) -> str:
        """The subject's numbers: potential reach, contributors, posts, interactions
        gained, decisions, and any warning."""
        interactions = _sum_known(self.gains[m] for m in INTERACTIONS)
        parts = [
            f"potential reach {describe_reach(self.reach)}",
            f"{self.reach.authors:,} contributor{'s' if self.reach.authors != 1 else ''}",
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
    campaign: Campaign | None = None,
) -> Digest:
    """All figures of ``campaign`` (None: the default one) for ``first_day`` (to
    ``last_day``), as of ``now``.

    Its posts are its placements (the install's only campaign: every post, from the
    roll-up; see :mod:`monitor.services.digest_rows`); its hashtags, those it had at
    some moment of the period; its coverage, the sources that watched them on its
    platforms then.
    """
    zone = settings.zone
    now = now or utcnow()
    period = Period.of(first_day, last_day or first_day, zone)
    boundaries = [period.shifted(-k, zone).start for k in range(AVERAGE_PERIODS, 0, -1)]
    boundaries += [period.start, period.end]
    campaign = campaign or get_campaign(session, settings, None)
    scope = scope_for(session, campaign)
    rows = InstallRows() if scope.alone else CampaignRows(scope.campaign_id)
    history = tags_during(session, settings, campaign, period.start, period.end)

    coverage = _coverage(
        session,
        period,
        now,
        zone,
        watching=None
        if scope.alone
        else _Watching(
            frozenset(normalise_tag(tag) for tag in history.tags),
            frozenset(split_list(campaign.platforms)),
        ),
    )
    incomplete_platforms = {c.platform for c in coverage if not c.complete}

    # The chart's days: the 14 to the period's last, or every day of a longer range. For
    # a one-day period they also hold the day (bucket 13) and the seven before (6..12).
    shown = max(HISTORY_DAYS, period.days)
    days = [period.last_day - timedelta(days=k) for k in range(shown - 1, -1, -1)]
    offset = HISTORY_DAYS - 1 - AVERAGE_PERIODS
    day_bounds = _slot_bounds([local_midnight(day, zone) for day in days] + [period.end])
    per_day: dict[int, int] = defaultdict(int)
    per_slot: list[tuple[int, int]] = []
    if period.days == 1:
        daily_counts, writers = _post_counts(
            session, rows, day_bounds, authors=range(offset, shown)
        )
        counts = {(b - offset, p): v for (b, p), v in daily_counts.items() if b >= offset}
        period_writers = writers.get(shown - 1, {})
        for (bucket, _), (posts, _) in daily_counts.items():
            per_day[bucket] += posts
    else:
        counts, writers = _post_counts(session, rows, _slot_bounds(boundaries))
        period_writers = writers.get(AVERAGE_PERIODS, {})
        # A long range's charts (days, hours) come from one read of its slots.
        per_slot = rows.posts_by_slot(session, day_bounds[0], day_bounds[-1])
        for slot, posts in per_slot:
            per_day[bisect.bisect_right(day_bounds, slot) - 1] += posts
    daily = [Bucket(day.isoformat(), per_day[i]) for i, day in enumerate(days)]
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
    tag_names = {normalise_tag(tag): tag for tag in history.tags}
    per_tag = rows.tag_counts(session, _slot_bounds(boundaries))
    hashtags = {
        tag_names[key]: _figure(
            {b: n for (b, t), n in per_tag.items() if t == key},
            incomplete=_tag_incomplete(key, coverage),
        )
        for key in tag_names
    }
    gains_by_platform, top_gains = _gains(session, period, settings.timezone, rows.campaign_id)
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
        totals=_campaign_totals(session, rows),
        top_posts=_top_posts(session, top_gains),
        moderation=_moderation(session, rows, period, now),
        coverage=coverage,
        hourly=_hourly(session, rows, period, zone, per_slot),
        daily=daily,
        reach=compute_reach(session, period.start, period.end, authors=period_writers, rows=rows),
        campaign=None if scope.alone else campaign.name,
        tag_changes=history.changes,
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


def _slot_bounds(boundaries: list[datetime]) -> list[int]:
    return [rollup.slot_bound(moment) for moment in boundaries]


def _post_counts(
    session: Session,
    rows: InstallRows,
    bounds: list[int],
    *,
    authors: Iterable[int] | None = None,
) -> tuple[dict[tuple[int, str], tuple[int, int]], dict[int, dict[str, rollup.Authors]]]:
    """(posts, distinct authors) per (bucket, platform) of slot ``bounds``, by creation time,
    from the roll-up; authors only for the buckets named (all by default), 0 in the others.
    Also each named bucket's authors per platform, new ones included (reach shows them)."""
    posts = rows.post_counts(session, bounds)
    named = list(range(len(bounds) - 1) if authors is None else authors)
    ranges = [(bounds[i], bounds[i + 1], [p for (b, p) in posts if b == i]) for i in named]
    writers = dict(zip(named, rows.authors_of_ranges(session, ranges), strict=True))
    counts = {
        (b, p): (n, writers[b][p].authors if p in writers.get(b, {}) else 0)
        for (b, p), n in posts.items()
    }
    return counts, writers


def _hour_starts(period: Period) -> list[datetime]:
    return [period.start + timedelta(hours=h) for h in range(period.hours + 1)]


def _hourly(
    session: Session,
    rows: InstallRows,
    period: Period,
    zone: ZoneInfo,
    per_slot: list[tuple[int, int]],
) -> list[Bucket]:
    """Posts per local hour; on a one-day period the repeated autumn hour is shown twice.
    A longer one's come from its posts per slot (``per_slot``, which covers it)."""
    if period.days > 1:
        return _hourly_merged(per_slot, period, zone)
    starts = _hour_starts(period)
    by_bucket = rows.post_counts(session, _slot_bounds(starts))
    counts: dict[int, int] = defaultdict(int)
    for (i, _), n in by_bucket.items():
        counts[i] += n
    local = [start.astimezone(zone) for start in starts[:-1]]
    labels = [f"{moment:%H}:00" for moment in local]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [
        Bucket(f"{label} {moment:%Z}" if label in repeated else label, counts.get(i, 0))
        for i, (label, moment) in enumerate(zip(labels, local, strict=True))
    ]


_HOUR_LABELS = tuple(f"{hour:02d}:00" for hour in range(24))


def _hourly_merged(per_slot: list[tuple[int, int]], period: Period, zone: ZoneInfo) -> list[Bucket]:
    """A range's posts per local hour of the day, its days added up.

    The hours are the period's, from its start (hour h is [start + h, start + h + 1)),
    as on one day; a year being 8,760 of them, a slot's hour is counted from the first
    slot and their local hours worked out a day at a time (:func:`_local_hours`).
    """
    per_hour = 3600 // int(rollup.SLOT.total_seconds())
    first = rollup.slot_bound(period.start)
    counts: dict[int, int] = defaultdict(int)
    for slot, n in per_slot:
        if first <= slot < first + per_hour * period.hours:
            counts[(slot - first) // per_hour] += n
    merged: dict[str, int] = defaultdict(int)
    for i, hour in enumerate(_local_hours(period, zone)):
        merged[_HOUR_LABELS[hour]] += counts.get(i, 0)
    return [Bucket(label, merged[label]) for label in sorted(merged)]


def _local_hours(period: Period, zone: ZoneInfo) -> list[int]:
    """The local hour each of the period's hours starts in.

    A day of 24 hours from its local midnight runs 00 to 23; only a day the clocks change
    is worked out hour by hour (and the whole period, in a zone whose days are not whole
    hours long).
    """
    hour = timedelta(hours=1)
    days = [period.first_day + timedelta(days=k) for k in range(period.days + 1)]
    midnights = [local_midnight(day, zone) for day in days]
    if any((b - a) % hour for a, b in itertools.pairwise(midnights)):
        return [(period.start + h * hour).astimezone(zone).hour for h in range(period.hours)]
    hours: list[int] = []
    for start, end in itertools.pairwise(midnights):
        length = (end - start) // hour
        if length == 24:
            hours.extend(range(24))
        else:
            hours.extend((start + h * hour).astimezone(zone).hour for h in range(length))
    return hours


def _gains_query(period: Period, campaign_id: int | None = None) -> sa.Select[Any]:
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
    joined = (
        ids.join(last, last.c.id == ids.c.last_id)
        .outerjoin(before, before.c.id == ids.c.before_id)
        .join(_POSTS, _POSTS.c.id == ids.c.post_id)
    )
    status, joined = _status_in(joined, ids.c.post_id, campaign_id)
    return sa.select(ids.c.post_id, _POSTS.c.platform, status, *gained).select_from(joined)


def _status_in(joined: Any, post_id: Any, campaign_id: int | None) -> tuple[Any, Any]:
    """The post's status column, and the join that gives it: the post's own, or (for one
    campaign) its status there, the join keeping only the campaign's posts."""
    if campaign_id is None:
        return _POSTS.c.status, joined
    placed = joined.join(
        _PLACED, sa.and_(_PLACED.c.post_id == post_id, _PLACED.c.campaign_id == campaign_id)
    )
    return _PLACED.c.status, placed


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
    session: Session, period: Period, timezone: str, campaign_id: int | None = None
) -> tuple[dict[str, dict[str, int | None]], list[_Gain]]:
    """Per platform and metric, the sum of the known gains (None when nobody gave it),
    and the posts that gained most interactions (of one campaign's posts, if given).

    Read from the daily roll-up when it cuts days in this zone; otherwise (the zone
    was changed and the roll-up not rebuilt yet) from the snapshots, slowly but alike.
    Every post's gains are summed from the day sums; one campaign's from its posts' day
    rows, added up by :func:`_rank` as the snapshots' are.
    """
    if rollup_zone(session) != timezone:
        return _rank(session.execute(_gains_query(period, campaign_id)))
    if campaign_id is not None:
        if period.days > 1:
            return _rank(_range_gains(session, period, campaign_id=campaign_id))
        status, joined = _status_in(
            _DAYS.join(_POSTS, _POSTS.c.id == _DAYS.c.post_id), _DAYS.c.post_id, campaign_id
        )
        gained_that_day = [_DAYS.c[f"gained_{m}"] for m in METRICS]
        return _rank(
            session.execute(
                sa.select(_DAYS.c.post_id, _DAYS.c.platform, status, *gained_that_day)
                .select_from(joined)
                .where(_DAYS.c.day == period.first_day)
            )
        )
    if period.days > 1:
        return _range(session, period)
    day = _DAYS.c.day == period.first_day
    gains = [_DAYS.c[f"gained_{m}"] for m in METRICS]
    by_platform = _day_sums(session, period.first_day, period.first_day)
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


def _range(
    session: Session, period: Period
) -> tuple[dict[str, dict[str, int | None]], list[_Gain]]:
    """A range's gains: the day sums added up, and the top posts by their bounds.

    Day by day, a post's gains add up to its gain over the range (each day starts from
    the day before's last counts), except across a day where a count appears or
    disappears (``flips``): those few posts are worked out from their rows instead.
    """
    in_range = sa.and_(_DAYS.c.day >= period.first_day, _DAYS.c.day <= period.last_day)
    flipped = set(
        session.execute(
            sa.select(_DAYS.c.post_id)
            .where(_DAYS.c.flips.is_(True), _DAYS.c.day > period.first_day)
            .where(_DAYS.c.day <= period.last_day)
        ).scalars()
    )
    sums = _day_sum_rows(session, period.first_day, period.last_day)
    exact = list(_range_gains(session, period, sorted(flipped))) if flipped else []
    if flipped:
        gains = [_DAYS.c[f"gained_{m}"] for m in METRICS]
        for start in range(0, len(flipped), 500):
            chunk = sorted(flipped)[start : start + 500]
            for platform, *values in session.execute(
                sa.select(_DAYS.c.platform, *gains).where(in_range, _DAYS.c.post_id.in_(chunk))
            ):
                _add(sums[platform], values, -1)
        for _, platform, _, *values in exact:
            _add(sums[platform], values, +1)
    return _as_figures(sums), _top_in_range(session, period)


def _top_in_range(session: Session, period: Period) -> list[_Gain]:
    """The posts that gained most interactions over a range, by their bounds.

    Posts active in the range are walked from the highest bound down (the older first
    among equals), a batch at a time, each one's exact gain worked out from its day rows;
    the walk stops once the fifth best beats what any post not yet read could gain. On a
    year it reads a few batches, not every day row of the year grouped by post.
    """
    b = _BOUNDS
    active = sa.and_(b.c.first_day <= period.last_day, b.c.last_day >= period.first_day)
    top: list[_Gain] = []
    after: tuple[int, int] | None = None
    while True:
        query = sa.select(b.c.rank, b.c.post_id).where(active, b.c.rank < 0)
        if after is not None:
            query = query.where(sa.tuple_(b.c.rank, b.c.post_id) > sa.tuple_(*after))
        batch = session.execute(query.order_by(b.c.rank, b.c.post_id).limit(_WALK)).all()
        if not batch:
            break
        _, ranked = _rank(_range_gains(session, period, [post_id for _, post_id in batch]))
        top = sorted([*top, *ranked], reverse=True)[:TOP_POSTS]
        rank, post_id = batch[-1]
        after = (int(rank), int(post_id))
        # Any post left gains at most -rank, and if exactly that, it is newer.
        best_left = _Gain(-after[0], -(after[1] + 1), "", "", ())
        if len(top) == TOP_POSTS and top[-1] > best_left:
            break
    return top


def _day_sum_rows(session: Session, first: date, last: date) -> dict[str, list[int]]:
    """Per platform: the day sums of gains, then how many posts give each, then posts."""
    t = _GAIN_DAYS
    counters = [*METRICS, *[f"known_{m}" for m in METRICS], "posts"]
    sums: dict[str, list[int]] = defaultdict(lambda: [0] * len(counters))
    for platform, *values in session.execute(
        sa.select(t.c.platform, *[sa.func.sum(t.c[c]) for c in counters])
        .where(t.c.day >= first, t.c.day <= last)
        .group_by(t.c.platform)
    ):
        sums[platform] = [int(v or 0) for v in values]
    return sums


def _as_figures(sums: dict[str, list[int]]) -> dict[str, dict[str, int | None]]:
    size = len(METRICS)
    return {
        platform: {m: (values[i] if values[size + i] else None) for i, m in enumerate(METRICS)}
        for platform, values in sorted(sums.items())
        if values[-1] > 0
    }


def _day_sums(session: Session, first: date, last: date) -> dict[str, dict[str, int | None]]:
    """Per platform and metric, the gains of these days added up (None: nobody gave it)."""
    return _as_figures(_day_sum_rows(session, first, last))


def _add(row: list[int], values: Iterable[Any], sign: int) -> None:
    size = len(METRICS)
    for i, value in enumerate(values):
        if value is not None:
            row[i] += sign * int(value)
            row[size + i] += sign


def _range_gains(
    session: Session,
    period: Period,
    post_ids: list[int] | None = None,
    *,
    campaign_id: int | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Per post active in a range of days (of one campaign, if given): its last day's
    counts minus those before its first day, from the day rows (one read of the range,
    in post order)."""
    status, joined = _status_in(
        _DAYS.join(_POSTS, _POSTS.c.id == _DAYS.c.post_id), _DAYS.c.post_id, campaign_id
    )
    query = (
        sa.select(_DAYS.c.post_id, _DAYS.c.platform, status)
        .add_columns(*[_DAYS.c[m] for m in METRICS], *[_DAYS.c[f"prev_{m}"] for m in METRICS])
        .select_from(joined)
        .where(_DAYS.c.day >= period.first_day, _DAYS.c.day <= period.last_day)
        .order_by(_DAYS.c.post_id, _DAYS.c.day)
    )
    if post_ids is not None:
        query = query.where(_DAYS.c.post_id.in_(post_ids))
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


def _campaign_totals(session: Session, rows: InstallRows) -> dict[str, int | None]:
    """Totals over every post (of the campaign) as last seen (none known: not available)."""
    by_platform = rows.totals(session)
    return {m: _sum_known(sums[m] for sums in by_platform.values()) for m in METRICS}


def percentile(ordered: list[float], fraction: float) -> float:
    """The value at ``fraction`` of sorted values, interpolated (statistics.quantiles'
    inclusive method; the median for 0.5)."""
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _moderation(
    session: Session, rows: InstallRows, period: Period, now: datetime
) -> ModerationFigures:
    """The period's decisions (for the install: from the decisions roll-up, their waits'
    percentiles reading only the bucket holding each rank) and the rest of its
    moderation, from the rows' source."""
    made = rows.decided(session, *_slot_bounds([period.start, period.end]))
    other = rows.moderated(session, period.start, period.end)
    approved = made.by_status.get(PostStatus.APPROVED.value, 0)
    return ModerationFigures(
        decisions=made.total,
        approved=approved,
        rejected=made.total - approved,
        pending=other.pending,
        oldest_pending_age=None if other.oldest_pending is None else now - other.oldest_pending,
        median_decision_time=_ranked(session, made, 0.5),
        p95_decision_time=_ranked(session, made, 0.95),
        flagged=other.flagged,
        removed_at_source=other.removed_at_source,
        takedown_requests=other.takedown_requests,
    )


def _ranked(session: Session, made: Decided, fraction: float) -> timedelta | None:
    """A percentile of the waits, as :func:`percentile` interpolates it: the two waits
    around the rank are found, never the whole period's."""
    around = made.percentile(session, fraction)
    if not around:
        return None
    if len(around) == 1:
        return _duration(around, 0.5)
    position = fraction * (made.timed - 1)
    return _duration(around, position - int(position))


def _duration(ordered: list[float], fraction: float) -> timedelta | None:
    """A percentile of waits in whole milliseconds (the two databases round alike)."""
    if not ordered:
        return None
    return timedelta(milliseconds=round(percentile(ordered, fraction) * 1000))


@dataclasses.dataclass(frozen=True, slots=True)
class _Watching:
    """What a campaign watched in a period: its hashtags (matching form) then, and the
    platforms it names (none: every platform)."""

    tags: frozenset[str]
    platforms: frozenset[str]

    def wants(self, source: Source) -> bool:
        """The source watched one of the tags (or every tag) on one of the platforms."""
        tags = source_tags(source.hashtags)
        on_platform = not self.platforms or source.platform in self.platforms
        return on_platform and (not tags or bool(self.tags & set(tags)))


def _coverage(
    session: Session,
    period: Period,
    now: datetime,
    zone: ZoneInfo,
    *,
    watching: _Watching | None = None,
) -> list[SourceCoverage]:
    """How well each source meant to watch the period (for a campaign: its hashtags on
    its platforms, ``watching``; None: every source) watched it.

    A source counts for the hours it was configured: from its creation (unknown
    for old rows: then the whole period) to its retirement. A period that is over
    is judged by its own poll runs, so a past day's digest shows that day's health,
    not today's; a period still running shows each source's health now.

    The runs are counted by the database, a year of five-minute polls being a
    hundred thousand rows: the hour of a run is its 15-minute slot's, counted from
    the period's first slot.
    """
    runs = sa.and_(_in(_RUNS.c.started_at, period.start, period.end), _RUNS.c.kind == PollKind.POLL)
    hour = _run_hour(session, period)
    ok, failed = _RUNS.c.ok.is_(True), _RUNS.c.ok.is_(False)
    tally = (
        sa.select(
            _RUNS.c.source_id.label("source_id"),
            sa.func.count(sa.distinct(sa.case((ok, hour)))).label("hours"),
            sa.func.count(sa.case((failed, 1))).label("failed"),
            sa.func.max(_RUNS.c.started_at).label("last_run_at"),
            sa.func.max(sa.case((ok, _RUNS.c.started_at))).label("last_success_at"),
            sa.func.max(sa.case((failed, _RUNS.c.started_at))).label("last_error_at"),
        )
        .where(runs)
        .group_by(_RUNS.c.source_id)
    )
    tallies = {row.source_id: row for row in session.execute(tally)}
    gaps: dict[int, list[str]] = defaultdict(list)
    # The few runs that reported a gap, through the gap index: the period is compared
    # through coalesce() so that SQLite does not walk the period's every run instead,
    # and they are put in order here.
    started = sa.func.coalesce(_RUNS.c.started_at, _RUNS.c.started_at)
    reported = session.execute(
        sa.select(_RUNS.c.started_at, _RUNS.c.id, _RUNS.c.source_id, _RUNS.c.gap).where(
            started >= period.start,
            started < period.end,
            _RUNS.c.kind == PollKind.POLL,
            _RUNS.c.gap > "",
        )
    ).all()
    for _, _, source_id, gap in sorted(reported):
        if gap not in gaps[source_id]:
            gaps[source_id].append(gap)
    sources = session.execute(
        sa.select(Source)
        .where(
            sa.or_(col(Source.retired_at).is_(None), col(Source.retired_at) > period.start),
            sa.or_(col(Source.created_at).is_(None), col(Source.created_at) < period.end),
        )
        .order_by(col(Source.platform), col(Source.key))
    ).scalars()
    past = period.end <= now
    records = _period_runs(session, runs, tallies) if past else {}
    coverage = []
    for source in sources:
        if watching is not None and not watching.wants(source):
            continue
        sid = source.id or 0
        counted = tallies.get(sid)
        coverage.append(
            SourceCoverage(
                health=SourceHealth.during(source, records.get(sid, PeriodRuns()), period.end)
                if past
                else SourceHealth.of(source),
                hashtags=source_tags(source.hashtags),
                hours_polled=int(counted.hours) if counted else 0,
                hours_expected=_hours_expected(period, now, source),
                failed_polls=int(counted.failed) if counted else 0,
                gaps=tuple(gaps[sid]),
            )
        )
    return coverage


def _run_hour(session: Session, period: Period) -> Any:
    """The hour of the period a run started in, as something to count distinct.

    Counted from the period's first slot; on SQLite, when the period starts on a whole UTC
    hour (every zone but a few), its UTC hour as stored ("YYYY-MM-DD HH"), which names the
    same hours without turning each of a year's runs into seconds.
    """
    connection = session.connection()
    start = period.start.astimezone(UTC)
    if connection.dialect.name == "sqlite" and start == start.replace(
        minute=0, second=0, microsecond=0
    ):
        return sa.func.substr(_RUNS.c.started_at, 1, 13)
    per_hour = 3600 // int(rollup.SLOT.total_seconds())
    return (rollup.slot_sql(connection, _RUNS.c.started_at) - rollup.slot_bound(start)) // per_hour


def _period_runs(session: Session, runs: Any, tallies: dict[int, Any]) -> dict[int, PeriodRuns]:
    """What each source's runs in a past period say of how it stood when the period ended:
    the failures since its last success, its last error's words and its last run's gap.

    Each source's runs are found from its tally's times, by seeks on (source, time):
    a year of five-minute polls is not read again for them.
    """
    if not tallies:
        return {}
    source, started = _RUNS.c.source_id, _RUNS.c.started_at
    since_success = [
        sa.and_(source == sid, started > row.last_success_at)
        if row.last_success_at is not None
        else source == sid
        for sid, row in tallies.items()
    ]
    trailing = {
        source_id: (int(count), first)
        for source_id, count, first in session.execute(
            sa.select(source, sa.func.count(), sa.func.min(started))
            .where(runs, _RUNS.c.ok.is_(False), sa.or_(*since_success))
            .group_by(source)
        )
    }
    last_ones = [
        sa.and_(
            source == sid,
            started.in_([t for t in (row.last_run_at, row.last_error_at) if t is not None]),
        )
        for sid, row in tallies.items()
    ]
    errors: dict[int, str | None] = {}
    last_gaps: dict[int, str | None] = {}
    for source_id, started_at, ok, error, gap in session.execute(
        sa.select(source, started, _RUNS.c.ok, _RUNS.c.error, _RUNS.c.gap).where(
            runs, sa.or_(*last_ones)
        )
    ):
        row = tallies[source_id]
        if not ok and started_at == row.last_error_at:
            errors[source_id] = error
        if started_at == row.last_run_at:
            last_gaps[source_id] = gap
    return {
        source_id: PeriodRuns(
            last_run_at=row.last_run_at,
            last_run_gap=last_gaps.get(source_id),
            last_success_at=row.last_success_at,
            failures_since_success=trailing.get(source_id, (0, None))[0],
            failing_since=trailing.get(source_id, (0, None))[1],
            last_error=errors.get(source_id),
            last_error_at=row.last_error_at,
        )
        for source_id, row in tallies.items()
    }


def _hours_expected(period: Period, now: datetime, source: Source) -> int:
    """The period's elapsed hours in which the source was configured: from the hour it was
    created in (the whole period when that is unknown) to its retirement."""
    hour = timedelta(hours=1)
    first = 0
    if source.created_at is not None:
        first = max(0, (source.created_at - period.start) // hour)
    until = min(now, period.end, source.retired_at or period.end)
    last = max(0, -((period.start - until) // hour))  # hours begun before ``until``
    return max(0, last - first)


def _tag_incomplete(tag: str, coverage: list[SourceCoverage]) -> bool:
    """A hashtag's figure is incomplete when a source for it (or for every tag) was not."""
    return not coverage or any(
        not source.complete and (not source.hashtags or tag in source.hashtags)
        for source in coverage
    )


class Format:
    """How figures read to people, shared by the email, the preview and ``/stats``."""

    NOT_AVAILABLE = "not available"
    REACH_DEFINITION = reach_definition
    reach = staticmethod(describe_reach)
    compact = staticmethod(compact)

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


class Shortcut:
    """Named ranges people ask for: the words ``/stats`` and ``digest preview`` accept."""

    TODAY = "today"
    CAMPAIGN = "campaign"


@dataclasses.dataclass(frozen=True, slots=True)
class Range:
    """The days asked for, and a sentence saying how a shortcut was turned into them."""

    first_day: date
    last_day: date
    note: str | None = None


def first_day_held(session: Session, zone: ZoneInfo) -> date | None:
    """The local day of the oldest post held (None: nothing held), from the roll-up."""
    slot = session.execute(sa.select(sa.func.min(PostSlot.__table__.c.slot))).scalar_one_or_none()
    return None if slot is None else rollup.slot_start(int(slot)).astimezone(zone).date()


def resolve_range(
    session: Session,
    settings: Settings,
    first: str | None,
    last: str | None = None,
    *,
    default: str = Shortcut.TODAY,
) -> Range:
    """A day, a range or a shortcut as a person typed them, checked.

    ``today`` is today so far; ``campaign`` is the campaign so far: from the day of the
    first post held to today, there being no campaign dates to start from yet.
    """
    today = datetime.now(settings.zone).date()
    word = (first or default).strip().lower()
    if word == Shortcut.TODAY and not last:
        return Range(today, today, "today so far")
    if word == Shortcut.CAMPAIGN and not last:
        start = first_day_held(session, settings.zone)
        if start is None or start > today:
            return Range(today, today, "the campaign so far: nothing is held yet")
        return Range(
            start,
            today,
            f"the campaign so far: from the first post held ({start.isoformat()}) to today",
        )
    first_day = parse_day(first or "")
    last_day = parse_day(last) if last else first_day
    check_past_day(first_day, settings, allow_today=True)
    check_past_day(last_day, settings, allow_today=True)
    Period.of(first_day, last_day, settings.zone)  # reversed or absurd ranges fail here
    return Range(first_day, last_day, _held_note(session, settings.zone, first_day, last_day))


def _held_note(session: Session, zone: ZoneInfo, first_day: date, last_day: date) -> str | None:
    """Say so when the range reaches before the first post held (its figures start later)."""
    start = first_day_held(session, zone)
    if start is None:
        return "nothing is held yet: every figure is zero because there is no data"
    if last_day < start:
        return f"this range ends before the first post held ({start.isoformat()})"
    if first_day < start:
        return f"posts are held from {start.isoformat()}: the days before it have none"
    return None
