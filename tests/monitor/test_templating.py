"""One template environment factory: the web, the email and the export render alike."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from jinja2 import Environment

from monitor.config import Settings
from monitor.templating import make_environment
from monitor.web.app import create_app

SUMMER = datetime(2026, 7, 1, 11, 30, tzinfo=UTC)
WINTER = datetime(2026, 12, 1, 11, 30, tzinfo=UTC)


def _environments(settings: Settings) -> dict[str, Environment]:
    web: Environment = create_app(settings).state.templates.env
    return {
        "web": web,
        "export": make_environment(settings),
        "mail": make_environment(settings, mail=True),
    }


@pytest.mark.parametrize("demo", ["true", "false"])
def test_every_environment_has_the_same_globals_and_filters(
    configure: Callable[..., Settings], demo: str
) -> None:
    settings = configure(DEMO_MODE=demo, TIMEZONE="Europe/London")

    for name, environment in _environments(settings).items():
        assert environment.globals["demo_mode"] is (demo == "true"), name
        show = environment.from_string("{{ at | local_time }}|{{ none | local_time }}")
        assert show.render(at=SUMMER, none=None) == "2026-07-01 12:30 BST|-", name
        assert show.render(at=WINTER, none=None) == "2026-12-01 11:30 GMT|-", name


def test_times_follow_the_configured_zone_and_layout(configure: Callable[..., Settings]) -> None:
    environment = make_environment(configure(TIMEZONE="America/New_York"))

    show = environment.from_string(
        '{{ at | local_time("%d %b %H:%M %Z") }} {{ none | local_time("%H", "never") }}'
    )

    assert show.render(at=SUMMER, none=None) == "01 Jul 07:30 EDT never"


def test_only_the_mail_environment_keeps_text_as_typed(configure: Callable[..., Settings]) -> None:
    settings = configure()
    text = "{{ value }}"

    assert make_environment(settings, mail=True).from_string(text).render(value="<b>") == "<b>"
    page = make_environment(settings).get_template("error.html")
    assert "&lt;b&gt;" in page.render(title="t", status=400, detail="<b>")
