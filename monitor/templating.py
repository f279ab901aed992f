"""The one place Jinja environments are made: web pages, the digest email, the static export.

Every environment gets the same globals and filters, so a template renders the
same wherever it is used: ``demo_mode`` (the training banner) and
``local_time``, the one way a time is shown to a person, in the configured
``TIMEZONE``. Times are stored in UTC; a page that printed them as stored
would be an hour off all summer.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from monitor.config import Settings
from monitor.resources import templates_dir
from monitor.services.audit import describe

#: How a time reads when a template does not ask for another layout.
TIME_FORMAT = "%Y-%m-%d %H:%M %Z"


def local_time(
    value: datetime | None, layout: str = TIME_FORMAT, missing: str = "-", *, zone: ZoneInfo
) -> str:
    """``value`` in ``zone`` laid out by ``layout`` (strftime); ``missing`` when there is none."""
    if value is None:
        return missing
    return value.astimezone(zone).strftime(layout)


def make_environment(settings: Settings, *, mail: bool = False) -> Environment:
    """An environment over ``templates/`` with the product's globals and filters.

    ``mail`` is for the digest: its plain-text part must show "<b>" as typed, so
    only ``.html`` is escaped, block tags leave no blank lines behind, and a
    missing figure is an error rather than an empty space in a sent email.
    """
    loader = FileSystemLoader(str(templates_dir()))
    if mail:
        environment = Environment(
            loader=loader,
            autoescape=select_autoescape(["html"], default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    else:
        environment = Environment(loader=loader, autoescape=select_autoescape())
    environment.globals["demo_mode"] = settings.demo_mode
    environment.filters["local_time"] = partial(local_time, zone=settings.zone)
    # An audit event in words ("gallery paused", "media revealed"), one wording everywhere.
    environment.filters["event_words"] = describe
    return environment
