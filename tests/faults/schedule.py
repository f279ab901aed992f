"""A seeded random schedule of platform faults played against the real pipeline.

One :class:`Schedule` owns a local Mastodon instance with two hashtag
timelines, the real adapter and ``poll_all`` on a real database. Its steps
interleave new posts, transport faults (429 with and without reset headers,
500/502/503, hangs and drips past the timeout, resets, truncated and invalid
JSON) and misbehaviour (a page repeated, a cursor sent backwards) with poll
cycles, and check after every cycle that:

* each source's health says what the cycle did (a failure is counted and
  described, a success resets the count), and the poll run agrees;
* no post at or below a source's stored cursor is missing, and none is
  stored twice;
* every poll summary's "new" adds up to the rows stored.

:meth:`Schedule.settle` then clears the faults and polls until every source
is healthy and idle, and :meth:`Schedule.check_truth` compares what was
stored with the server's truth.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.text import html_to_text
from monitor.config import Settings
from monitor.models import PollRun, Post, PostStatus, Source, utcnow
from monitor.services.polling import PollSummary, poll_all
from monitor.services.refresh import refresh_all
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FOREVER
from tests.faults.conftest import FaultFigures

TAGS = ("CEADAY21", "HelpingHands")
TIMELINE = "/api/v1/timelines/tag/"
STATUSES = "/api/v1/statuses"
#: Tight but safe on a busy machine: a hang or a drip costs 0.5 s per attempt.
SCHEDULE_ENV = {
    "PLATFORMS": "mastodon",
    "POLL_MAX_PAGES": "2",
    "HTTP_TIMEOUT_SECONDS": "0.5",
    "HTTP_RETRIES": "2",
    "HTTP_BACKOFF_SECONDS": "0.001",
    "HTTP_MAX_RETRY_AFTER_SECONDS": "2",
}
#: A first walk back of up to this many posts ends within POLL_MAX_PAGES pages.
FIRST_POLL_MAX_POSTS = 40
SETTLE_MAX_CYCLES = 60


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """One kind of trouble: a FakeServer fault (``options`` made when it is queued, so
    reset times are fresh) or, with ``misbehaviour``, a wrong Mastodon answer."""

    name: str
    kind: str
    options: Callable[[], dict[str, Any]]
    misbehaviour: bool = False


def _reset_in(delta: timedelta) -> dict[str, Any]:
    when = (datetime.now(UTC) + delta).isoformat()
    return {"status": 429, "headers": {"X-RateLimit-Reset": when}}


FAULT_PLANS = (
    FaultPlan("HTTP 500", "status", lambda: {"status": 500}),
    FaultPlan("HTTP 502", "status", lambda: {"status": 502}),
    FaultPlan("HTTP 503", "status", lambda: {"status": 503}),
    FaultPlan("429 without reset headers", "status", lambda: {"status": 429}),
    FaultPlan(
        "429 Retry-After: 0", "status", lambda: {"status": 429, "headers": {"Retry-After": "0"}}
    ),
    FaultPlan(
        "429 Retry-After: 3600",
        "status",
        lambda: {"status": 429, "headers": {"Retry-After": "3600"}},
    ),
    FaultPlan(
        "429 X-RateLimit-Reset in an hour",
        "status",
        lambda: _reset_in(timedelta(hours=1)),
    ),
    FaultPlan(
        "429 X-RateLimit-Reset already past", "status", lambda: _reset_in(-timedelta(minutes=1))
    ),
    FaultPlan("connection reset", "reset", dict),
    FaultPlan("truncated JSON", "truncate", dict),
    FaultPlan("invalid JSON (an HTML error page)", "garbage", dict),
    FaultPlan("hang past the timeout", "hang", lambda: {"seconds": FOREVER}),
    FaultPlan("drip slower than the timeout", "drip", lambda: {"seconds": FOREVER}),
    FaultPlan("page repeating the previous ids", "repeat", dict, misbehaviour=True),
    FaultPlan("cursor going backwards", "backwards", dict, misbehaviour=True),
)
#: Hangs and drips cost real seconds: drawn a quarter as often as the rest.
_SLOW = frozenset({"hang", "drip"})
FAULT_WEIGHTS = tuple(1 if plan.kind in _SLOW else 4 for plan in FAULT_PLANS)
#: What a refresh meets at the bulk statuses endpoint: every fast transport fault.
REFRESH_FAULTS = tuple(p for p in FAULT_PLANS if not p.misbehaviour and p.kind not in _SLOW)


@dataclasses.dataclass(frozen=True)
class _Health:
    failures_in_row: int
    failing_since: datetime | None
    last_error: str | None
    retry_at: datetime | None


class Schedule:
    """Seeded steps against one fake instance and one database; see the module docstring."""

    def __init__(
        self,
        *,
        seed: int,
        engine: Engine,
        settings: Settings,
        mastodon: FakeMastodon,
        figures: FaultFigures,
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.engine = engine
        self.settings = settings
        self.mastodon = mastodon
        self.figures = figures
        self.new_reported = 0
        self.log: list[str] = []
        #: Posts deleted at source (their uris), for the refresh's verdict.
        self.deleted: set[str] = set()

    # -- what happens at the platform ------------------------------------------------

    def add_posts(self, count: int, *, shared: bool = True) -> None:
        """``count`` posts, each on one hashtag or (if ``shared``) both."""
        choices = [(TAGS[0],), (TAGS[1],), TAGS] if shared else [(TAGS[0],), (TAGS[1],)]
        for _ in range(count):
            tags = self.rng.choice(choices)
            text = "Hands up " + " ".join(f"#{tag}" for tag in tags)
            self.mastodon.add(text, tags=tags)
        if count:
            self.log.append(f"+{count} posts")

    def arrivals(self) -> int:
        """How many posts arrive before a cycle: often none or a few, sometimes pages' worth."""
        return self.rng.choice(
            [0, 0, self.rng.randint(1, 5), self.rng.randint(10, 45), self.rng.randint(60, 100)]
        )

    def inject(self, count: int, *, misbehaviour: bool = True) -> None:
        """Queue ``count`` random faults, each on one hashtag's timeline."""
        for _ in range(count):
            plan = self.rng.choices(FAULT_PLANS, weights=FAULT_WEIGHTS)[0]
            while plan.misbehaviour and not misbehaviour:
                plan = self.rng.choices(FAULT_PLANS, weights=FAULT_WEIGHTS)[0]
            tag = self.rng.choice(TAGS)
            times = self.rng.randint(1, 3)
            after = self.rng.randint(0, 2)
            if plan.misbehaviour:
                self.mastodon.misbehave(plan.kind, tag=tag, times=times, after=after)
            else:
                self.mastodon.server.fail(
                    plan.kind, times=times, path=TIMELINE + tag, after=after, **plan.options()
                )
            self.log.append(f"{plan.name} x{times} on {tag} after {after}")

    def delete_some(self, count: int) -> None:
        """Authors delete ``count`` random posts at source."""
        for status_id in self.rng.sample(sorted(self.mastodon.statuses), count):
            self.deleted.add(self.mastodon.statuses[status_id]["uri"])
            self.mastodon.delete(status_id)
        self.log.append(f"-{count} deleted")

    def edit_some(self, count: int) -> None:
        """Authors edit ``count`` random posts at source."""
        for status_id in self.rng.sample(sorted(self.mastodon.statuses), count):
            tags = [t["name"] for t in self.mastodon.statuses[status_id]["tags"]]
            text = f"Edited {self.rng.random():.6f} " + " ".join(f"#{tag}" for tag in tags)
            self.mastodon.edit(status_id, text)
        self.log.append(f"{count} edited")

    def inject_refresh_faults(self, count: int) -> None:
        """Queue ``count`` random transport faults on the bulk statuses endpoint."""
        for _ in range(count):
            plan = self.rng.choice(REFRESH_FAULTS)
            times, after = self.rng.randint(1, 3), self.rng.randint(0, 1)
            self.mastodon.server.fail(
                plan.kind, times=times, path=STATUSES, after=after, **plan.options()
            )
            self.log.append(f"{plan.name} x{times} on refresh after {after}")

    def clear_faults(self) -> None:
        self.mastodon.server.faults.clear()
        self.mastodon.misbehaviours.clear()

    def pass_rate_limit_windows(self) -> None:
        """Time passes beyond every source's rate-limit reset (the clock, not the code)."""
        with self.engine.begin() as connection:
            table = Source.__table__
            connection.execute(
                sa.update(table)
                .where(table.c.retry_at.is_not(None))
                .values(retry_at=utcnow() - timedelta(seconds=1))
            )

    # -- poll cycles and what must hold after each ------------------------------------

    def cycle(self) -> list[PollSummary]:
        """One poll of every source, then every check that must hold after any cycle."""
        before = self._health()
        marks = (len(self.mastodon.server.struck), len(self.mastodon.struck))
        started = utcnow()
        summaries = poll_all(engine=self.engine, settings=self.settings)
        struck = self._struck_since(*marks)
        assert len(summaries) == len(TAGS), self._where(summaries)
        self.figures.cycles += 1
        self.figures.faults += sum(len(s) for s in struck.values())
        for summary in summaries:
            tag = summary.source.rsplit("|", 1)[1]
            self.figures.failed_cycles += not summary.ok
            self.new_reported += summary.new
            self._check_outcome(summary, before.get(summary.source), struck[tag], started)
            self._check_health(summary, before.get(summary.source), started)
        self._check_cursors()
        self._check_no_duplicates()
        self.log.append("poll: " + ", ".join(f"{s.ok}/{s.new} new" for s in summaries))
        return summaries

    def _struck_since(self, faults: int, misbehaviours: int) -> dict[str, list[tuple[str, bool]]]:
        """Per hashtag, the timeline faults that struck after the given marks: (kind, fatal).

        A fatal fault fails the cycle it strikes whatever the retries (a body that
        is not JSON, a rate limit longer than we wait); the others are retried and
        fail it only when they outlast every attempt.
        """
        struck: dict[str, list[tuple[str, bool]]] = {tag: [] for tag in TAGS}
        for fault in self.mastodon.server.struck[faults:]:
            if not fault.path.startswith(TIMELINE):
                continue
            fatal = fault.kind in ("truncate", "garbage") or (
                fault.kind == "status" and fault.status == 429 and _long_reset(fault.headers)
            )
            struck[fault.path.removeprefix(TIMELINE)].append((fault.kind, fatal))
        for wrong in self.mastodon.struck[misbehaviours:]:
            assert wrong.tag is not None
            struck[wrong.tag].append((wrong.kind, False))
        return struck

    def _check_outcome(
        self,
        summary: PollSummary,
        before: _Health | None,
        struck: list[tuple[str, bool]],
        started: datetime,
    ) -> None:
        """What the faults that struck (or their absence) decide about the cycle."""
        where = self._where(summary)
        waiting = before is not None and before.retry_at is not None and before.retry_at > started
        if waiting:
            assert not summary.ok and (summary.error or "").startswith("rate limited until"), where
            assert not struck, where  # no request while the platform asked us to wait
            return
        transport = [kind for kind, _ in struck if kind not in ("repeat", "backwards")]
        if not transport:
            # Nothing went wrong on the wire: a repeated or backwards page only ends the walk.
            assert summary.ok, where
        if any(fatal for _, fatal in struck):
            assert not summary.ok, where

    def _check_health(
        self, summary: PollSummary, before: _Health | None, started: datetime
    ) -> None:
        """The source row and its latest poll run tell exactly what the cycle did."""
        where = self._where(summary)
        with self.engine.connect() as connection:
            source = connection.execute(
                sa.select(Source.__table__).where(Source.__table__.c.key == summary.source)
            ).one()
            runs = PollRun.__table__
            run = connection.execute(
                sa.select(runs)
                .where(runs.c.source_id == source.id)
                .order_by(runs.c.id.desc())
                .limit(1)
            ).one_or_none()
        assert source.possible_gap is None, where
        if before is not None and before.retry_at is not None and before.retry_at > started:
            # Skipped without a request: the health of the rate-limited cycle stands.
            assert source.failures_in_row == before.failures_in_row, where
            assert source.last_error == before.last_error, where
            return
        assert run is not None and run.finished_at is not None, where
        assert (run.ok, run.error, run.new) == (summary.ok, summary.error, summary.new), where
        if summary.ok:
            assert source.failures_in_row == 0, where
            assert source.failing_since is None and source.retry_at is None, where
            assert source.last_success_at is not None and source.last_success_at >= started, where
            return
        previous = before.failures_in_row if before is not None else 0
        assert source.failures_in_row == previous + 1, where
        assert source.last_error == summary.error and summary.error, where
        assert source.last_error_at is not None and source.last_error_at >= started, where
        if before is not None and before.failing_since is not None:
            assert source.failing_since == before.failing_since, where
        else:
            assert source.failing_since is not None and source.failing_since >= started, where

    def _check_cursors(self) -> None:
        """Every post at or below a stored cursor is stored: a cursor never skips a post."""
        stored = self.stored()
        with self.engine.connect() as connection:
            table = Source.__table__
            cursors = connection.execute(sa.select(table.c.key, table.c.cursor)).all()
        for key, cursor in cursors:
            if cursor is None:
                continue
            tag = key.rsplit("|", 1)[1].lower()
            covered = {
                s["uri"]
                for s in self.mastodon.statuses.values()
                if int(s["id"]) <= int(cursor) and any(t["name"] == tag for t in s["tags"])
            }
            missing = covered - set(stored)
            assert not missing, f"{len(missing)} post(s) behind the cursor of {key}: {self.log}"

    def _check_no_duplicates(self) -> None:
        stored = self.stored()
        assert len(stored) == len(set(stored)), self.log
        assert self.new_reported == len(stored), self.log

    def _health(self) -> dict[str, _Health]:
        with self.engine.connect() as connection:
            table = Source.__table__
            rows = connection.execute(sa.select(table)).all()
        return {
            row.key: _Health(row.failures_in_row, row.failing_since, row.last_error, row.retry_at)
            for row in rows
        }

    def _where(self, what: object) -> str:
        return f"seed {self.seed}: {what}; steps: {self.log}"

    def refresh_cycle(self) -> bool:
        """One refresh; a failed one changes nothing it should not. True if it succeeded."""
        marks = len(self.mastodon.server.struck)
        [summary] = refresh_all(engine=self.engine, settings=self.settings)
        struck = [f for f in self.mastodon.server.struck[marks:] if f.path == STATUSES]
        where = self._where(summary)
        self.figures.cycles += 1
        self.figures.faults += len(struck)
        self.figures.failed_cycles += not summary.ok
        if not struck:
            assert summary.ok, where
        if any(f.kind in ("truncate", "garbage") or _long_reset(f.headers) for f in struck):
            assert not summary.ok and summary.error, where
        live = {s["uri"] for s in self.mastodon.statuses.values()}
        with self.engine.connect() as connection:
            table = Post.__table__
            removed = set(
                connection.execute(
                    sa.select(table.c.external_id).where(table.c.status == PostStatus.REMOVED.value)
                ).scalars()
            )
        assert not removed & live, where  # a failed refresh never removes a live post
        self._check_no_duplicates()
        self.log.append(f"refresh: {summary.ok}/{summary.removed} removed")
        return summary.ok

    def settle_refresh(self) -> None:
        """Clear the faults and refresh until a refresh succeeds."""
        self.clear_faults()
        for _ in range(SETTLE_MAX_CYCLES):
            if self.refresh_cycle():
                return
        raise AssertionError(self._where("the refresh never succeeded"))

    def check_refreshed_truth(self) -> None:
        """Every live post stored once with its current text; every deleted one removed."""
        statuses = {s["uri"]: s for s in self.mastodon.statuses.values()}
        with self.engine.connect() as connection:
            table = Post.__table__
            rows = connection.execute(
                sa.select(table.c.external_id, table.c.status, table.c.text)
            ).all()
        stored = [row.external_id for row in rows]
        self.figures.schedules += 1
        self.figures.posts += len(statuses)
        self.figures.lost += len(set(statuses) - set(stored))
        self.figures.duplicated += len(stored) - len(set(stored))
        assert len(stored) == len(set(stored)), self.log
        assert set(statuses) <= set(stored), self._where("live posts missing")
        assert set(stored) <= set(statuses) | self.deleted, self._where("posts never served")
        for row in rows:
            status = statuses.get(row.external_id)
            if status is None:
                assert row.status == PostStatus.REMOVED, self._where(row)
            else:
                assert row.status != PostStatus.REMOVED, self._where(row)
                assert row.text == html_to_text(status["content"]), self._where(row)

    # -- the end: faults gone, the truth compared -------------------------------------

    def settle(self) -> None:
        """Clear the faults and poll until every source is healthy and has nothing new."""
        self.clear_faults()
        for _ in range(SETTLE_MAX_CYCLES):
            self.pass_rate_limit_windows()
            summaries = self.cycle()
            if all(s.ok for s in summaries) and not any(s.new for s in summaries):
                return
        raise AssertionError(self._where("the sources never settled"))

    def stored(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.select(Post.__table__.c.external_id)).scalars())

    def truth(self) -> set[str]:
        """Every post the server holds on the watched hashtags."""
        watched = {tag.lower() for tag in TAGS}
        return {
            s["uri"]
            for s in self.mastodon.statuses.values()
            if watched & {t["name"] for t in s["tags"]}
        }

    def check_truth(self) -> None:
        """None lost, none twice: the figures are counted before the verdict."""
        truth = self.truth()
        with self.engine.connect() as connection:
            table = Post.__table__
            rows, distinct = connection.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(table.c.external_id)))
            ).one()
        stored = set(self.stored())
        self.figures.schedules += 1
        self.figures.posts += len(truth)
        self.figures.lost += len(truth - stored)
        self.figures.duplicated += rows - distinct
        assert rows == distinct == len(truth), self._where(f"{rows} rows, {distinct} distinct")
        assert stored == truth, self._where("stored posts differ from the server's")


def _long_reset(headers: dict[str, str]) -> bool:
    """A 429 whose reset is further off than we wait (so the cycle gives up at once)."""
    if headers.get("Retry-After") == "3600":
        return True
    reset = headers.get("X-RateLimit-Reset")
    return reset is not None and datetime.fromisoformat(reset) > datetime.now(UTC)
