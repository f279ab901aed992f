"""``demo``: try the whole product offline on a built-in training sample."""

from __future__ import annotations

from typing import Annotated

import typer

from monitor.cli._common import echo
from monitor.demo.adapter import DEFAULT_RELEASE_SECONDS
from monitor.demo.runner import DEFAULT_PORT, run_demo


def demo(
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free one."),
    ] = DEFAULT_PORT,
    release_seconds: Annotated[
        int,
        typer.Option(
            "--release-seconds",
            min=1,
            max=86_400,
            help="Seconds over which the sample's later posts arrive.",
        ),
    ] = DEFAULT_RELEASE_SECONDS,
) -> None:
    """Run queue, gallery, stats and digest on made-up posts in a throwaway folder.

    Prints the address and a one-time login; Ctrl-C stops it and deletes everything.
    """
    run_demo(port=port, release_seconds=release_seconds, echo=echo)


def register(app: typer.Typer) -> None:
    app.command()(demo)
