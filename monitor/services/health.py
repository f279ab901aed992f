"""Source health for ``status``: what each source's state is and whether it needs a person.

``status --check`` turns this into an exit code for cron and monitoring, so the
rule lives here: a *current* source (its platform still enabled, its hashtags
still configured) that is failing or disabled needs attention. A source left
over from an earlier configuration is shown but never raises an alarm.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session

from adapters.text import normalise_tag
from monitor.config import Settings
from monitor.models import DigestSend, Source
from monitor.services.mail import last_digest_send
from monitor.services.sources import list_sources


class SourceState(StrEnum):
    OK = "ok"
    FAILING = "failing"
    DISABLED = "disabled"
    NOT_YET_POLLED = "not_yet_polled"


ALARMING = frozenset({SourceState.FAILING, SourceState.DISABLED})


@dataclasses.dataclass(frozen=True, slots=True)
class SourceHealth:
    """One source as ``status`` shows it: its row, its state, and whether it is configured."""

    source: Source
    state: SourceState
    current: bool

    @property
    def needs_attention(self) -> bool:
        return self.current and self.state in ALARMING


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
            "sources": [_source_json(health) for health in self.sources],
        }


def _source_json(health: SourceHealth) -> dict[str, Any]:
    source = health.source
    return {
        "key": source.key,
        "platform": source.platform,
        "state": health.state.value,
        "current": health.current,
        "needs_attention": health.needs_attention,
        "last_success_at": _iso(source.last_success_at),
        "failures_in_row": source.failures_in_row,
        "failing_since": _iso(source.failing_since),
        "last_error": source.last_error,
        "last_error_at": _iso(source.last_error_at),
        "possible_gap": source.possible_gap,
        "disabled_reason": source.disabled_reason,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _state(source: Source) -> SourceState:
    if source.disabled_reason:
        return SourceState.DISABLED
    if source.failures_in_row:
        return SourceState.FAILING
    if source.last_success_at is None:
        return SourceState.NOT_YET_POLLED
    return SourceState.OK


def _is_current(source: Source, settings: Settings) -> bool:
    """Still part of the configuration: an enabled platform, watching configured tags."""
    if source.platform not in settings.enabled_platforms:
        return False
    wanted = {normalise_tag(tag) for tag in settings.hashtags}
    tags = {normalise_tag(tag) for tag in source.hashtags.split(",") if tag.strip()}
    return tags <= wanted


def health_report(session: Session, settings: Settings) -> HealthReport:
    """The health of every source known to the database, and the last digest attempt."""
    sources = [
        SourceHealth(source, _state(source), _is_current(source, settings))
        for source in list_sources(session)
    ]
    return HealthReport(sources=sources, digest=last_digest_send(session))
