"""``digest preview`` and ``digest send``: the daily email, by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli._common import CampaignOption, echo, load, open_engine
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.services.campaigns import digest_of, get_campaign
from monitor.services.digest import compute_digest, parse_day, resolve_range
from monitor.services.mail import (
    ALREADY_SENT,
    build_digest_message,
    digest_subject,
    preview_digest_html,
    render_digest_text,
    send_digest,
)
from monitor.services.report import SUFFIXES, build_report, write_report

digest_app = typer.Typer(help="The daily digest email.", no_args_is_help=True)

DateOption = Annotated[
    str, typer.Option("--date", help="The Europe/London (TIMEZONE) day, as YYYY-MM-DD.")
]
PreviewDateOption = Annotated[
    str | None,
    typer.Option(
        "--date",
        help="The Europe/London (TIMEZONE) day, as YYYY-MM-DD (the first of a range with"
        " --to), or 'today' (so far) or 'campaign' (so far); default: yesterday.",
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", help="The last day of a range, as YYYY-MM-DD (any length)."),
]
#: What ``--out`` writes, by the file's suffix.
PREVIEW_SUFFIXES = (".html", ".eml")


def _yesterday(settings: Settings) -> date:
    return datetime.now(settings.zone).date() - timedelta(days=1)


@digest_app.command("preview")
def preview(
    date: PreviewDateOption = None,
    to: ToOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the digest to this file: .html (a page, chart included) or .eml"
            " (the whole email).",
        ),
    ] = None,
    campaign: CampaignOption = None,
) -> None:
    """Render a campaign's digest for a day or range without sending: the text to stdout,
    or --out FILE."""
    settings = load()
    if out is not None and out.suffix.lower() not in PREVIEW_SUFFIXES:
        raise UserError(f"--out {out}: name a .html or .eml file")
    engine = open_engine(settings)
    with session_scope(engine) as session:
        first = date if date is not None else _yesterday(settings).isoformat()
        chosen = resolve_range(session, settings, first, to)
        which = get_campaign(session, settings, campaign)
        plan = digest_of(which, settings)
        digest = compute_digest(
            session, settings, chosen.first_day, chosen.last_day, campaign=which
        )
    if out is None:
        echo(f"Subject: {digest_subject(digest)}")
        if chosen.note:
            echo(f"Showing {chosen.note}.")
        echo()
        echo(render_digest_text(digest, settings))
        return
    if out.suffix.lower() == ".html":
        content = preview_digest_html(digest, settings).encode("utf-8")
    else:
        message = build_digest_message(
            digest, settings, sender=plan.sender, recipients=plan.recipients
        )
        content = bytes(message)
    try:
        out.write_bytes(content)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    echo(f"Wrote the digest for {digest.period.label} to {out}")


@digest_app.command("send")
def send(
    date: DateOption,
    force: Annotated[
        bool, typer.Option("--force", help="Send again even if this day was already sent.")
    ] = False,
    campaign: CampaignOption = None,
) -> None:
    """Send a campaign's digest of one day to its recipients (the default campaign's:
    DIGEST_TO); a day already sent is skipped unless --force."""
    settings = load()
    day = parse_day(date)
    engine = open_engine(settings)
    outcome = send_digest(engine=engine, settings=settings, day=day, force=force, campaign=campaign)
    if outcome.status == ALREADY_SENT:
        echo(f"The digest for {day.isoformat()} was already sent; use --force to send it again.")
        return
    echo(f"Sent the digest for {day.isoformat()} to {', '.join(outcome.recipients)}.")
    if outcome.detail:
        echo(f"Warning: {outcome.detail}")


def report(
    first: Annotated[
        str,
        typer.Option(
            "--from", help="The first day, YYYY-MM-DD, or 'campaign' (the campaign so far)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="The file to write: .pdf, .csv or .xlsx (by suffix).")
    ],
    last: Annotated[str | None, typer.Option("--to", help="The last day, YYYY-MM-DD.")] = None,
    campaign: CampaignOption = None,
) -> None:
    """A campaign's report for a period, for a board: PDF, CSV or a workbook."""
    settings = load()
    if out.suffix.lower() not in SUFFIXES:
        raise UserError(f"--out {out}: name a .pdf, .csv or .xlsx file")
    engine = open_engine(settings)
    with session_scope(engine) as session:
        chosen = resolve_range(session, settings, first, last)
        built = build_report(
            session,
            settings,
            chosen.first_day,
            chosen.last_day,
            campaign=get_campaign(session, settings, campaign),
        )
    write_report(built, settings, out)
    echo(f"Wrote the campaign report for {built.digest.period.label} to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(digest_app, name="digest")
    app.command("report")(report)
