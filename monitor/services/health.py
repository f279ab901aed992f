"""A source's health: the one place its state, its dates and its words for people are decided.

``status`` (text and JSON), the digest (email and ``/stats``), ``/metrics`` and
the admin Sources page all show how a source is doing. They used to derive it
each in their own way and word it four ways; now each builds a
:class:`SourceHealth` from the source's row and shows its fields, and every
template shows it through ``templates/_source_health.html``.

``status --check`` turns this into an exit code for cron and monitoring, so the
rule lives here too: a *current* source (its platform still enabled, its
hashtags still configured) that is failing or disabled needs attention. A source
left over from an earlier configuration is shown but never raises an alarm.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlmodel import Session

from monitor.config import Settings
from monitor.models import DigestSend
from monitor.services.analysis import AnalysisHealth, analysis_health
from monitor.services.campaigns import watched
from monitor.services.sources import is_current, key_owner, list_sources
from monitor.templating import local_time


class SourceState(StrEnum):
    """What a source is doing now; the value is what ``status --json`` prints."""

    OK = "ok"
    FAILING = "failing"
    DISABLED = "disabled"
    NEVER_POLLED = "never_polled"

    @property
    def words(self) -> str:
        """The state for people, in sentence case ("OK", "Failing", "Never polled")."""
        return _WORDS[self]


_WORDS = {
    SourceState.OK: "OK",
    SourceState.FAILING: "Failing",
    SourceState.DISABLED: "Disabled",
    SourceState.NEVER_POLLED: "Never polled",
}


class SourceMode(StrEnum):
    """How a source's posts arrive now; the value is what ``status --json`` prints."""

    STREAMING = "streaming"
    #: Connected, and catching up over REST or search on what the stream missed.
    CATCHING_UP = "catching_up"
    POLLING = "polling"

    @property
    def words(self) -> str:
        return {"streaming": "Streaming", "catching_up": "Catching up", "polling": "Polling"}[
            self.value
        ]

    @classmethod
    def read(cls, value: str | None) -> SourceMode:
        """The stored mode; none (a row from before streams) or unknown is polling."""
        try:
            return cls(value) if value else cls.POLLING
        except ValueError:
            return cls.POLLING


#: The states in which nothing is being collected from a source that should be.
ALARMING = frozenset({SourceState.FAILING, SourceState.DISABLED})


class SourceFacts(Protocol):
    """The health columns of a ``sources`` row, as an ORM object or a Core row has them."""

    key: str
    platform: str
    hashtags: str
    disabled_reason: str | None
    failures_in_row: int
    failing_since: datetime | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    possible_gap: str | None
    mode: str | None
    mode_note: str | None
    stream_position_at: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class PeriodRuns:
    """What one source's poll runs in a past period say (nothing: it was not polled)."""

    last_run_at: datetime | None = None
    #: The gap the period's last run reported, if it did.
    last_run_gap: str | None = None
    last_success_at: datetime | None = None
    #: Failed runs after the period's last success (all of them, without one).
    failures_since_success: int = 0
    #: The first of those failures.
    failing_since: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


def _state(
    disabled_reason: str | None, failures_in_row: int, last_success_at: datetime | None
) -> SourceState:
    if disabled_reason:
        return SourceState.DISABLED
    if failures_in_row:
        return SourceState.FAILING
    if last_success_at is None:
        return SourceState.NEVER_POLLED
    return SourceState.OK


@dataclasses.dataclass(frozen=True, slots=True)
class SourceHealth:
    """One source's health now: its state, since when, why, and how it reads to people.

    A possible gap is a field rather than a state: it can stand beside any state
    (a failing source may also have missed posts), and hiding either would hide
    something a person must know.
    """

    key: str
    platform: str
    state: SourceState
    #: When the current trouble began; only while failing or disabled.
    since: datetime | None
    failures_in_row: int
    last_poll_at: datetime | None
    last_success_at: datetime | None
    #: The last error ever recorded, even when the source has recovered since.
    last_error: str | None
    last_error_at: datetime | None
    disabled_reason: str | None
    possible_gap: str | None
    #: Why the source is in that mode, for people ("no MASTODON_ACCESS_TOKEN: polling").
    mode_note: str | None = None
    #: Still part of the configuration (see :func:`is_current`); True when not asked.
    current: bool = True
    mode: SourceMode = SourceMode.POLLING
    #: How far behind the platform we may be, in seconds: for a stream, since the moment
    #: up to which it delivered everything; for polling, since the last successful poll.
    lag_seconds: float | None = None

    @classmethod
    def of(
        cls, source: SourceFacts, *, current: bool = True, now: datetime | None = None
    ) -> SourceHealth:
        """The health a source's row records, the one rule for every place that shows it."""
        state = _state(source.disabled_reason, source.failures_in_row, source.last_success_at)
        since = source.failing_since if state in ALARMING else None
        facts = {name: getattr(source, name) for name in _COPIED}
        mode = SourceMode.read(source.mode)
        caught_up = source.stream_position_at if mode is not SourceMode.POLLING else None
        caught_up = caught_up or source.last_success_at
        lag = None
        if caught_up is not None:
            lag = max(0.0, ((now or datetime.now(UTC)) - caught_up).total_seconds())
        return cls(state=state, since=since, current=current, mode=mode, lag_seconds=lag, **facts)

    @classmethod
    def during(cls, source: SourceFacts, runs: PeriodRuns, end: datetime) -> SourceHealth:
        """The health a source had when a past period ended, from that period's poll runs:
        its row only knows how it is doing now, and a past day's digest must not show
        today's trouble, nor hide that day's."""
        # Disabled (a missing credential, say) since before the period ended.
        disabled = source.disabled_reason and (
            source.failing_since is None or source.failing_since < end
        )
        disabled_reason = source.disabled_reason if disabled else None
        state = _state(disabled_reason, runs.failures_since_success, runs.last_success_at)
        since = None
        if state in ALARMING:
            since = runs.failing_since or source.failing_since
        return cls(
            key=source.key,
            platform=source.platform,
            state=state,
            since=since,
            failures_in_row=runs.failures_since_success,
            last_poll_at=runs.last_run_at,
            last_success_at=runs.last_success_at,
            last_error=runs.last_error,
            last_error_at=runs.last_error_at,
            disabled_reason=disabled_reason,
            possible_gap=runs.last_run_gap,
        )

    @property
    def ok(self) -> bool:
        """Polled and well: nothing for a person to look at."""
        return self.state is SourceState.OK

    @property
    def alarming(self) -> bool:
        """Failing or disabled: nothing is collected from it (``/metrics`` reports it down)."""
        return self.state in ALARMING

    @property
    def needs_attention(self) -> bool:
        """Alarming and still configured: what ``status --check`` exits 1 for."""
        return self.current and self.alarming

    @property
    def credentials(self) -> str:
        """Whose credentials it polls with, for people: "install" or "campaign <slug>"
        (a campaign's own, see ``monitor.services.credentials``); never a value."""
        owner = key_owner(self.key)
        return "install" if owner is None else f"campaign {owner}"

    @property
    def reason(self) -> str | None:
        """Why it is in trouble, for people: the disabling reason or the last error."""
        if self.state is SourceState.DISABLED:
            return self.disabled_reason
        if self.state is SourceState.FAILING and self.last_error:
            return f"last error: {self.last_error}"
        return None

    def describe(self, zone: ZoneInfo, *, upper: bool = False) -> str:
        """The state in words, as ``_source_health.html`` words it: "Failing since X (why)".

        ``upper`` shouts the state, for plain text where nothing else can stand out.
        """
        words = self.state.words.upper() if upper else self.state.words
        if self.since is not None:
            words += f" since {local_time(self.since, zone=zone)}"
        if self.reason:
            words += f" ({self.reason})"
        return words

    def as_json(self) -> dict[str, Any]:
        """The facts for scripts (times in UTC, ISO 8601)."""
        return {
            "key": self.key,
            "platform": self.platform,
            "credentials": self.credentials,
            "state": self.state.value,
            "current": self.current,
            "needs_attention": self.needs_attention,
            "last_success_at": _iso(self.last_success_at),
            "failures_in_row": self.failures_in_row,
            "failing_since": _iso(self.since),
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "possible_gap": self.possible_gap,
            "disabled_reason": self.disabled_reason,
            "mode": self.mode.value,
            "mode_note": self.mode_note,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
        }

    @property
    def mode_words(self) -> str:
        """The mode and its lag for people: "Streaming, 2 s behind"."""
        words = self.mode.words
        if self.lag_seconds is not None and self.state is not SourceState.DISABLED:
            words += f", {describe_lag(self.lag_seconds)} behind"
        return words


#: The fields a SourceHealth takes from the row as they are.
_COPIED = tuple(
    field.name
    for field in dataclasses.fields(SourceHealth)
    if field.name not in {"state", "since", "current", "mode", "lag_seconds"}
)


def describe_lag(seconds: float) -> str:
    """A lag as people say it: "under a second", "42 s", "5 min", "3 h"."""
    if seconds < 1:
        return "under a second"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


@dataclasses.dataclass(frozen=True, slots=True)
class HealthReport:
    """Every source's health and the last digest attempt."""

    sources: list[SourceHealth]
    digest: DigestSend | None
    #: The image analysers' health (see :mod:`monitor.services.analysis`).
    analysis: AnalysisHealth | None = None

    @property
    def ok(self) -> bool:
        """Watched and well: at least one source polled, and none current in trouble."""
        return bool(self.sources) and not any(s.needs_attention for s in self.sources)

    def as_json(self) -> dict[str, Any]:
        """The same facts as the text output, for scripts (times in UTC, ISO 8601)."""
        digest = self.digest
        return {
            "ok": self.ok,
            "digest": None
            if digest is None
            else {
                "day": digest.day.isoformat(),
                "status": digest.status,
                "at": _iso(digest.sent_at),
                "error": digest.error,
            },
            "sources": [health.as_json() for health in self.sources],
            "image_analysis": self.analysis.as_json() if self.analysis is not None else None,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def health_report(session: Session, settings: Settings) -> HealthReport:
    """The health of every source known to the database, and the last digest attempt."""
    # Imported here: mail renders the digest, and the digest builds on this module.
    from monitor.services.mail import last_digest_send

    watch = watched(session, settings)
    sources = [
        SourceHealth.of(source, current=is_current(source, watch))
        for source in list_sources(session)
    ]
    return HealthReport(
        sources=sources,
        digest=last_digest_send(session),
        analysis=analysis_health(session, settings),
    )
