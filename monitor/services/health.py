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
import itertools
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlmodel import Session

from monitor.config import Settings
from monitor.models import DigestSend
from monitor.services.sources import is_current, list_sources
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


class RunFacts(Protocol):
    """The columns of a ``poll_runs`` row that a period's health is rebuilt from."""

    started_at: datetime
    ok: bool
    error: str | None
    gap: str | None


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
    #: Still part of the configuration (see :func:`is_current`); True when not asked.
    current: bool = True

    @classmethod
    def of(cls, source: SourceFacts, *, current: bool = True) -> SourceHealth:
        """The health a source's row records, the one rule for every place that shows it."""
        state = _state(source.disabled_reason, source.failures_in_row, source.last_success_at)
        since = source.failing_since if state in ALARMING else None
        facts = {name: getattr(source, name) for name in _COPIED}
        return cls(state=state, since=since, current=current, **facts)

    @classmethod
    def during(cls, source: SourceFacts, runs: Sequence[RunFacts], end: datetime) -> SourceHealth:
        """The health a source had when a past period ended, from that period's poll runs
        (oldest first): its row only knows how it is doing now, and a past day's digest
        must not show today's trouble, nor hide that day's."""
        failing = list(itertools.takewhile(lambda run: not run.ok, reversed(runs)))
        successes = [run.started_at for run in runs if run.ok]
        errors = [run for run in runs if not run.ok]
        # Disabled (a missing credential, say) since before the period ended.
        disabled = source.disabled_reason and (
            source.failing_since is None or source.failing_since < end
        )
        disabled_reason = source.disabled_reason if disabled else None
        last_success = successes[-1] if successes else None
        state = _state(disabled_reason, len(failing), last_success)
        since = (
            (failing[-1].started_at if failing else source.failing_since)
            if state in ALARMING
            else None
        )
        return cls(
            key=source.key,
            platform=source.platform,
            state=state,
            since=since,
            failures_in_row=len(failing),
            last_poll_at=runs[-1].started_at if runs else None,
            last_success_at=last_success,
            last_error=errors[-1].error if errors else None,
            last_error_at=errors[-1].started_at if errors else None,
            disabled_reason=disabled_reason,
            possible_gap=runs[-1].gap if runs else None,
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
        }


#: The fields a SourceHealth takes from the row as they are.
_COPIED = tuple(
    field.name
    for field in dataclasses.fields(SourceHealth)
    if field.name not in {"state", "since", "current"}
)


@dataclasses.dataclass(frozen=True, slots=True)
class HealthReport:
    """Every source's health and the last digest attempt."""

    sources: list[SourceHealth]
    digest: DigestSend | None

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
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def health_report(session: Session, settings: Settings) -> HealthReport:
    """The health of every source known to the database, and the last digest attempt."""
    # Imported here: mail renders the digest, and the digest builds on this module.
    from monitor.services.mail import last_digest_send

    sources = [
        SourceHealth.of(source, current=is_current(source, settings))
        for source in list_sources(session)
    ]
    return HealthReport(sources=sources, digest=last_digest_send(session))
