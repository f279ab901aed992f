"""The ``hashtag-monitor`` command (typer). Commands are thin: logic lives in services.

Exit codes, for scripts and monitoring:

- 0: done;
- 1: the command ran but found a failure it reports (a source failed, ``status --check``);
- 2: it could not act: a usage error, bad input, configuration, an unreachable database.

Every error is one line on stderr, with no traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Annotated, NoReturn

import typer
from sqlalchemy.exc import OperationalError

from monitor.cli import campaigns, data, demo, digest, gallery, ingestion, people, server
from monitor.db import describe_db_error
from monitor.errors import MonitorError

EXIT_FAILURE_FOUND = 1
EXIT_CANNOT_ACT = 2

app = typer.Typer(
    name="hashtag-monitor",
    help="Watch campaign hashtags, moderate every post, publish only the approved.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (server, ingestion, data, people, campaigns, digest, gallery, demo):
    module.register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hashtag-monitor {version('hashtag-monitor')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Watch campaign hashtags, moderate every post, publish only the approved."""


def _fail(message: str, code: int = EXIT_CANNOT_ACT) -> NoReturn:
    """Print one line on stderr and exit: multi-line messages are joined."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def _usage_line(exc: typer.TyperException) -> str:
    """A parsing error as one line that points at the command's --help."""
    ctx = getattr(exc, "ctx", None)
    # Typer words a bad choice as pydantic does ("Value error, 'x' is not one of ...").
    message = exc.format_message().replace("Value error, ", "")
    if ctx is None:
        return message
    return f"{message} (see `{ctx.command_path} --help`)"


def main() -> None:
    """Console entry point: run the app, turning every known error into one stderr line."""
    try:
        code = app(prog_name="hashtag-monitor", standalone_mode=False)
    except typer.TyperException as exc:
        # A group called without a command shows its help (on stdout, as --help does).
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message())
            sys.exit(EXIT_CANNOT_ACT)
        _fail(_usage_line(exc), EXIT_CANNOT_ACT)
    except typer.Abort:
        _fail("aborted", EXIT_FAILURE_FOUND)
    except MonitorError as exc:
        _fail(str(exc))
    except OperationalError as exc:
        _fail(f"database unreachable: {describe_db_error(exc)}")
    sys.exit(code if isinstance(code, int) else 0)
