"""What every command shares: settings, the engine, and how errors are printed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from adapters import available_adapters
from monitor.config import Settings, load_settings
from monitor.db import create_db_engine, require_current_schema
from monitor.errors import UserError
from monitor.logs import configure_logging

#: Who the audit log names for what an admin did at the command line.
CLI_ACTOR = "cli"

#: ``--campaign SLUG`` on the commands that act on posts: without it, the default campaign.
CampaignOption = Annotated[
    str | None,
    typer.Option(
        "--campaign", metavar="SLUG", help="The campaign (default: the default campaign)."
    ),
]


def load() -> Settings:
    """Settings with logging configured; raises SettingsError naming the bad key."""
    settings = load_settings()
    configure_logging(settings)
    return settings


def open_engine(settings: Settings, *, auto_upgrade_empty: bool = False) -> Engine:
    """An engine on a database at this version's schema (or a clear DatabaseError)."""
    engine = create_db_engine(settings.database_url)
    require_current_schema(engine, auto_upgrade_empty=auto_upgrade_empty)
    return engine


def known_platform(platform: str) -> str:
    """A platform name some adapter provides (any case), or a UserError listing them."""
    name = platform.strip().lower()
    known = available_adapters()
    if name not in known:
        raise UserError(f"--platform {platform}: unknown platform; known: {', '.join(known)}")
    return name


def enabled_platform(settings: Settings, platform: str | None) -> str | None:
    """``--platform`` checked against PLATFORMS, so a typo or a disabled one is said."""
    if platform is None:
        return None
    name = known_platform(platform)
    if name not in settings.enabled_platforms:
        enabled = ", ".join(settings.enabled_platforms) or "none"
        raise UserError(
            f"--platform {name}: not enabled (enabled: {enabled}); add it to PLATFORMS"
            " or set its credentials"
        )
    return name


def echo(line: str = "") -> None:
    typer.echo(line)


def when(value: datetime | None, settings: Settings) -> str:
    """A time in the configured zone for people, or '-' when there is none."""
    if value is None:
        return "-"
    return value.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M %Z")
