"""``gallery export``, ``pause`` and ``resume``: thin callers of the gallery services
(:mod:`monitor.services.static_export` writes the static site)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli._common import CampaignOption, echo, load, open_engine
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.services.campaigns import get_campaign
from monitor.services.gallery import set_gallery_paused
from monitor.services.static_export import ExportSummary, export_site

gallery_app = typer.Typer(help="The public gallery.", no_args_is_help=True)


@gallery_app.command("export")
def export(
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the static site into (created).")
    ],
    campaign: CampaignOption = None,
) -> None:
    """Write the approved gallery as a static site: HTML, JSON, pinned media, embed script."""
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        summary = export_site(session=session, settings=settings, out=out, campaign=campaign)
    _report(summary, out)


def _switch(
    pause: bool, actor: str, reason: str | None, campaign: str | None, everywhere: bool
) -> None:
    """Flip one campaign's kill switch (None: the default campaign's), or the install's."""
    if everywhere and campaign:
        raise UserError("give --campaign or --everywhere, not both")
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        acting_in = None if everywhere else get_campaign(session, settings, campaign)
        echo(
            set_gallery_paused(
                session=session, pause=pause, actor=actor, reason=reason, campaign=acting_in
            )
        )


SwitchActor = Annotated[str, typer.Option("--as", help="The moderator or admin (audited).")]
SwitchReason = Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit).")]
SwitchEverywhere = Annotated[
    bool,
    typer.Option(
        "--everywhere", help="The install's switch: every campaign's gallery (install admins)."
    ),
]


@gallery_app.command("pause")
def pause(
    as_user: SwitchActor,
    reason: SwitchReason = None,
    campaign: CampaignOption = None,
    everywhere: SwitchEverywhere = False,
) -> None:
    """The kill switch: the campaign's public surfaces (gallery, embed, feed, screen, media)
    show a neutral message and no posts; ``--everywhere``: every campaign's."""
    _switch(True, as_user, reason, campaign, everywhere)


@gallery_app.command("resume")
def resume(
    as_user: SwitchActor,
    reason: SwitchReason = None,
    campaign: CampaignOption = None,
    everywhere: SwitchEverywhere = False,
) -> None:
    """Put the campaign's public gallery back after a pause (``--everywhere``: the install's)."""
    _switch(False, as_user, reason, campaign, everywhere)


def _report(summary: ExportSummary, out: Path) -> None:
    if summary.paused:
        echo(f"The gallery is paused: wrote the neutral page and an empty feed to {out}")
    else:
        echo(
            f"Wrote {summary.posts} posts on {summary.pages} page(s) and"
            f" {summary.media_files} media files to {out}"
        )
    for name in summary.missing:
        typer.echo(f"warning: pinned file {name} is missing from MEDIA_DIR", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
