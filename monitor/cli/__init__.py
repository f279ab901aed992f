"""The ``hashtag-monitor`` command (typer). Commands are thin: logic lives in services.

User errors (bad input, configuration, an unreachable database) print one line
on stderr and exit 2, with no traceback.
"""

from __future__ import annotations

import sys

import typer
from sqlalchemy.exc import OperationalError

from monitor.cli import data, demo, digest, gallery, ingestion, people, server
from monitor.db import describe_db_error
from monitor.errors import MonitorError

app = typer.Typer(
    name="hashtag-monitor",
    help="Watch campaign hashtags, moderate every post, publish only the approved.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (server, ingestion, data, people, digest, gallery, demo):
    module.register(app)


def main() -> None:
    """Console entry point: run the app, turning known errors into one stderr line."""
    try:
        app()
    except MonitorError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OperationalError as exc:
        typer.echo(f"error: database unreachable: {describe_db_error(exc)}", err=True)
        sys.exit(2)
