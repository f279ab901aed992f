"""What every command shares: settings, the engine, and how errors are printed."""

from __future__ import annotations

from datetime import datetime

import typer
from sqlalchemy.engine import Engine

from monitor.config import Settings, load_settings
from monitor.db import create_db_engine, require_current_schema
from monitor.logs import configure_logging


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


def echo(line: str = "") -> None:
    typer.echo(line)


def when(value: datetime | None, settings: Settings) -> str:
    """A time in the configured zone for people, or '-' when there is none."""
    if value is None:
        return "-"
    return value.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M %Z")
