"""How long each step of a post's way takes, stored so every replica reports the same.

A stage is a short name (``approval_to_gallery``, ...). A sample is written at
most once per post version and stage: when several processes see the same step,
the first to write it wins (``INSERT ... ON CONFLICT DO NOTHING``). ``/metrics``
turns the samples into one Prometheus histogram per stage; the admin page shows
today's median and 95th percentile of each. A stage added elsewhere (the
streaming side's platform-to-stored, say) needs only :func:`record_latency`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from monitor.models import LatencySample

#: An approved post reached the open walls (the live gallery and the embed).
APPROVAL_TO_GALLERY = "approval_to_gallery"
#: An approved post appeared on the event screen (after the screen delay).
APPROVAL_TO_SCREEN = "approval_to_screen"
#: A takedown request that holds a post took it off the open walls.
TAKEDOWN_TO_GALLERY = "takedown_to_gallery"
#: What each stage measures, in words (the admin page, the metric's help).
STAGES: dict[str, str] = {
    APPROVAL_TO_GALLERY: "approval to visible on the gallery",
    APPROVAL_TO_SCREEN: "approval to visible on the event screen (delay included)",
    TAKEDOWN_TO_GALLERY: "takedown request to off the gallery",
}
#: Histogram bucket bounds, seconds: from "live" to "a poll interval" and beyond.
BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    stage: str
    post_id: int
    version: int
    at: datetime
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class StageFigures:
    """One stage's figures for the admin page (p50/p95 are None without samples)."""

    stage: str
    label: str
    count: int
    p50: float | None
    p95: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class StageHistogram:
    stage: str
    #: Cumulative counts per bound of :data:`BUCKETS`.
    cumulative: tuple[int, ...]
    count: int
    total: float


def record_latency(session: Session, samples: Iterable[Sample]) -> None:
    """Store samples (the caller commits); one already stored for that post version and
    stage is left as it was."""
    rows = [
        {
            "stage": sample.stage[:40],
            "post_id": sample.post_id,
            "version": sample.version,
            "at": sample.at,
            "seconds": max(0.0, sample.seconds),
        }
        for sample in samples
        if math.isfinite(sample.seconds)
    ]
    if not rows:
        return
    table = LatencySample.__table__
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    session.execute(insert.on_conflict_do_nothing(), rows)


def stage_label(stage: str) -> str:
    return STAGES.get(stage, stage.replace("_", " "))


def histograms(connection: sa.Connection) -> list[StageHistogram]:
    """Every stage's cumulative bucket counts and sum, in one grouped query."""
    table = LatencySample.__table__
    columns = [sa.func.sum(sa.case((table.c.seconds <= bound, 1), else_=0)) for bound in BUCKETS]
    query = sa.select(
        table.c.stage, *columns, sa.func.count(), sa.func.sum(table.c.seconds)
    ).group_by(table.c.stage)
    found = []
    for row in connection.execute(query).all():
        stage, *counts, count, total = row
        found.append(
            StageHistogram(stage, tuple(int(c or 0) for c in counts), int(count), float(total))
        )
    return sorted(found, key=lambda item: item.stage)


def today_figures(session: Session, *, zone: ZoneInfo, now: datetime) -> list[StageFigures]:
    """Today's (local day) p50 and p95 of every known stage and of any other stored one."""
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    table = LatencySample.__table__
    values: dict[str, list[float]] = {stage: [] for stage in STAGES}
    query = sa.select(table.c.stage, table.c.seconds).where(table.c.at >= start, table.c.at < end)
    for stage, seconds in session.execute(query):
        values.setdefault(stage, []).append(float(seconds))
    return [
        StageFigures(
            stage, stage_label(stage), len(found), quantile(found, 0.5), quantile(found, 0.95)
        )
        for stage, found in sorted(values.items())
    ]


def quantile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank quantile (a figure someone could find among the samples)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
