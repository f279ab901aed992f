"""``SourceHealth``: one rule for a source's state, and one wording wherever it is shown."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from markupsafe import Markup

from monitor.config import Settings
from monitor.models import Source
from monitor.services.health import HealthReport, SourceHealth, SourceState
from monitor.templating import make_environment

NOW = datetime(2021, 3, 18, 12, 10, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")
HOSTILE = '<script>alert("x")</script> HTTP 503'


def _source(**columns: object) -> Source:
    values: dict[str, object] = {"key": "mastodon:https://m.example", "platform": "mastodon"}
    values.update(columns)
    return Source(**values)


OK = _source(last_success_at=NOW, last_error="HTTP 500 yesterday", last_error_at=NOW)
FAILING = _source(last_success_at=NOW, failures_in_row=2, failing_since=NOW, last_error=HOSTILE)
DISABLED = _source(
    disabled_reason="X_BEARER_TOKEN is not set",
    failures_in_row=1,
    failing_since=NOW,
    last_error="X_BEARER_TOKEN is not set",
)
NEVER = _source()


@pytest.mark.parametrize(
    ("source", "state", "words"),
    [
        (OK, SourceState.OK, "OK"),
        (
            FAILING,
            SourceState.FAILING,
            f"Failing since 2021-03-18 12:10 GMT (last error: {HOSTILE})",
        ),
        (
            DISABLED,
            SourceState.DISABLED,
            "Disabled since 2021-03-18 12:10 GMT (X_BEARER_TOKEN is not set)",
        ),
        (NEVER, SourceState.NEVER_POLLED, "Never polled"),
    ],
)
def test_each_state_and_its_words(source: Source, state: SourceState, words: str) -> None:
    health = SourceHealth.of(source)
    assert health.state is state and health.describe(LONDON) == words
    assert health.describe(LONDON, upper=True) == words.replace(state.words, state.words.upper(), 1)
    # Trouble has a start; a recovered source keeps its last error but no "since".
    assert (health.since is not None) == health.alarming
    assert health.alarming == (state in (SourceState.FAILING, SourceState.DISABLED))


def test_disabled_wins_over_failing_and_only_current_sources_need_attention() -> None:
    assert SourceHealth.of(DISABLED).state is SourceState.DISABLED
    assert SourceHealth.of(FAILING).needs_attention
    assert not SourceHealth.of(FAILING, current=False).needs_attention
    assert not SourceHealth.of(NEVER).needs_attention


def test_the_json_names_the_state_as_the_enum_does() -> None:
    report = HealthReport(sources=[SourceHealth.of(NEVER), SourceHealth.of(FAILING)], digest=None)
    never, failing = report.as_json()["sources"]
    assert never["state"] == "never_polled" and never["failing_since"] is None
    assert failing["state"] == "failing" and failing["failing_since"] == NOW.isoformat()
    assert failing["last_error"] == HOSTILE and not report.ok


@pytest.mark.parametrize(
    "source", [OK, FAILING, DISABLED, NEVER], ids=["ok", "failing", "disabled", "never"]
)
@pytest.mark.parametrize("mail", [False, True], ids=["web", "mail"])
def test_the_macro_says_what_describe_says_with_the_error_escaped(
    source: Source, mail: bool, configure: Callable[..., Settings]
) -> None:
    """Pages and emails (the macro) and plain text (``describe``) cannot drift apart."""
    settings = configure(TIMEZONE="Europe/London")
    macro = make_environment(settings, mail=mail).get_template("_source_health.html").module
    health = SourceHealth.of(source)
    rendered = str(macro.source_health(health, "color:red;" if mail else ""))
    assert "<script>" not in rendered
    assert Markup(rendered).striptags() == health.describe(settings.zone)
    marked = re.search(r"<(strong|span)[^>]*>(.*?)</\1>", rendered)
    if health.ok:
        assert marked is None
    else:
        assert marked is not None and marked.group(2).startswith(health.state.words)
