"""``campaigns``: add one, list them, show one, change one, end one, archive one, its
credentials."""

from __future__ import annotations

import dataclasses
import sys
from datetime import date
from typing import Annotated

import typer
from sqlmodel import Session

from adapters.text import normalise_tag
from monitor.cli._common import CLI_ACTOR, echo, load, open_engine, when
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import Campaign, PostStatus
from monitor.services.campaigns import (
    NewCampaign,
    add_campaign,
    archive_campaign,
    as_new,
    campaign_platforms,
    campaign_tags,
    digest_of,
    edit_campaign,
    end_campaign,
    get_campaign,
    list_campaigns,
    local_today,
    own_credential_platforms,
    split_list,
    state_on,
    sync_default,
)
from monitor.services.credentials import clear_credential, credential_states, set_credential
from monitor.services.retention import describe_periods, parse_periods, set_campaign_retention
from monitor.services.sources import list_sources, source_tags

campaigns_app = typer.Typer(
    help="Campaigns: their hashtags, platforms and dates.", no_args_is_help=True
)
SlugArgument = Annotated[str, typer.Argument(metavar="SLUG", help="The campaign's slug.")]
NameOption = Annotated[str | None, typer.Option("--name", help="The campaign's name, for people.")]
HashtagsOption = Annotated[
    str | None, typer.Option("--hashtags", metavar="T1,T2", help="Its hashtags, comma-separated.")
]
PlatformsOption = Annotated[
    str | None,
    typer.Option(
        "--platforms",
        metavar="P,...",
        help="Only these platforms (default: every platform the install enables).",
    ),
]
StartsOption = Annotated[
    str | None, typer.Option("--starts", metavar="YYYY-MM-DD", help="First day it polls.")
]
EndsOption = Annotated[
    str | None, typer.Option("--ends", metavar="YYYY-MM-DD", help="Last day it polls.")
]
DigestToOption = Annotated[
    str | None,
    typer.Option(
        "--digest-to",
        metavar="A,B",
        help="Its digest's recipients, comma-separated ('' unsets: the default campaign's"
        " are then DIGEST_TO; another's digest is not sent).",
    ),
]
DigestFromOption = Annotated[
    str | None,
    typer.Option(
        "--digest-from",
        metavar="ADDRESS",
        help="Its digest's sender ('' unsets: DIGEST_FROM).",
    ),
]
DigestTimeOption = Annotated[
    str | None,
    typer.Option(
        "--digest-time", metavar="HH:MM", help="When its digest goes ('' unsets: DIGEST_TIME)."
    ),
]


def _days_option(flag: str, state: str) -> object:
    return typer.Option(
        flag,
        metavar="N",
        help=f'Keep {state} posts N days ("install": the install\'s RETENTION_* again).',
    )


RejectedDays = Annotated[str | None, _days_option("--retention-rejected-days", "rejected")]
PendingDays = Annotated[str | None, _days_option("--retention-pending-days", "pending")]
RemovedDays = Annotated[str | None, _days_option("--retention-removed-days", "removed")]


def _periods(
    rejected: str | None, pending: str | None, removed: str | None
) -> dict[PostStatus, int | None]:
    """The periods given on the command line: a number of days, or ``install``."""
    return parse_periods(
        {PostStatus.REJECTED: rejected, PostStatus.PENDING: pending, PostStatus.REMOVED: removed}
    )


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} {value!r}: give a date as YYYY-MM-DD") from None


@campaigns_app.command("add")
def campaigns_add(
    slug: SlugArgument,
    name: Annotated[str, typer.Option("--name", help="The campaign's name, for people.")],
    hashtags: Annotated[
        str, typer.Option("--hashtags", metavar="T1,T2", help="Its hashtags, comma-separated.")
    ],
    platforms: PlatformsOption = None,
    starts: StartsOption = None,
    ends: EndsOption = None,
    digest_to: DigestToOption = None,
    digest_from: DigestFromOption = None,
    digest_time: DigestTimeOption = None,
    retention_rejected_days: RejectedDays = None,
    retention_pending_days: PendingDays = None,
    retention_removed_days: RemovedDays = None,
) -> None:
    """Add a campaign; the running scheduler starts polling it on its first day."""
    periods = _periods(retention_rejected_days, retention_pending_days, retention_removed_days)
    settings = load()
    new = NewCampaign(
        slug=slug,
        name=name,
        hashtags=hashtags.split(","),
        platforms=split_list(platforms or ""),
        starts_on=_day(starts, "--starts"),
        ends_on=_day(ends, "--ends"),
        digest_to=split_list(digest_to or ""),
        digest_from=digest_from,
        digest_time=digest_time,
    )
    with session_scope(open_engine(settings)) as session:
        campaign = add_campaign(session, settings, new, actor=CLI_ACTOR)
        if periods:
            set_campaign_retention(session, campaign, periods, actor=CLI_ACTOR)
        lines = _describe(session, settings, campaign)
    echo(f"Added campaign {campaign.slug}.")
    for line in lines:
        echo(line)


@campaigns_app.command("edit")
def campaigns_edit(
    slug: SlugArgument,
    name: NameOption = None,
    hashtags: HashtagsOption = None,
    platforms: PlatformsOption = None,
    starts: StartsOption = None,
    ends: EndsOption = None,
    digest_to: DigestToOption = None,
    digest_from: DigestFromOption = None,
    digest_time: DigestTimeOption = None,
) -> None:
    """Change a campaign: what is given changes, the rest stays (checked as add is).

    A hashtag removed stops being polled at the next cycle; that day's digest says when.
    """
    settings = load()
    given: dict[str, object] = {
        "name": name,
        "hashtags": None if hashtags is None else hashtags.split(","),
        "platforms": None if platforms is None else split_list(platforms),
        "starts_on": _day(starts, "--starts"),
        "ends_on": _day(ends, "--ends"),
        "digest_to": None if digest_to is None else split_list(digest_to),
        "digest_from": digest_from,
        "digest_time": digest_time,
    }
    changes = {field: value for field, value in given.items() if value is not None}
    if not changes:
        raise UserError(
            "give what to change: --name, --hashtags, --platforms, --starts,"
            " --ends, --digest-to, --digest-from or --digest-time"
        )
    with session_scope(open_engine(settings)) as session:
        current = get_campaign(session, settings, slug)
        wanted = dataclasses.replace(as_new(current, settings), **changes)  # type: ignore[arg-type]
        done = edit_campaign(session, settings, slug, wanted, actor=CLI_ACTOR)
        lines = _describe(session, settings, current)
    echo(f"Changed campaign {current.slug}: {'; '.join(done)}.")
    for line in lines:
        echo(line)


@campaigns_app.command("list")
def campaigns_list() -> None:
    """Every campaign with its state, dates and hashtags."""
    settings = load()
    today = local_today(settings)
    with Session(open_engine(settings)) as session:
        for campaign in list_campaigns(session, settings):
            tags = ", ".join(f"#{tag}" for tag in campaign_tags(campaign, settings))
            echo(
                f"{campaign.slug}\t{state_on(campaign, today).value}\t{_days(campaign)}"
                f"\t{campaign.name}\t{tags}"
            )


@campaigns_app.command("show")
def campaigns_show(slug: SlugArgument) -> None:
    """One campaign: its state, dates, hashtags, platforms and sources."""
    settings = load()
    with Session(open_engine(settings)) as session:
        lines = _describe(session, settings, get_campaign(session, settings, slug))
    for line in lines:
        echo(line)


@campaigns_app.command("retention")
def campaigns_retention(
    slug: SlugArgument,
    rejected_days: Annotated[str | None, _days_option("--rejected-days", "rejected")] = None,
    pending_days: Annotated[str | None, _days_option("--pending-days", "pending")] = None,
    removed_days: Annotated[str | None, _days_option("--removed-days", "removed")] = None,
) -> None:
    """Show or set how long the campaign keeps its posts; a post in several campaigns
    goes only when every one of them would let it go."""
    settings = load()
    periods = _periods(rejected_days, pending_days, removed_days)
    with session_scope(open_engine(settings)) as session:
        sync_default(session, settings)
        campaign = get_campaign(session, settings, slug)
        if periods:
            set_campaign_retention(session, campaign, periods, actor=CLI_ACTOR)
        described = describe_periods(campaign, settings)
    echo(f"{campaign.slug}: {described}.")


@campaigns_app.command("end")
def campaigns_end(slug: SlugArgument) -> None:
    """End a campaign now: polling stops at the next cycle; its gallery stays up."""
    settings = load()
    with session_scope(open_engine(settings)) as session:
        campaign = end_campaign(session, settings, slug, actor=CLI_ACTOR)
        slug = campaign.slug
    echo(
        f"Ended campaign {slug}: its sources stop polling and retire at the next cycle;"
        f" its gallery stays up until `hashtag-monitor campaigns archive {slug}`."
    )


@campaigns_app.command("archive")
def campaigns_archive(slug: SlugArgument) -> None:
    """Archive an ended campaign: its public gallery answers 410 Gone."""
    settings = load()
    with session_scope(open_engine(settings)) as session:
        slug = archive_campaign(session, settings, slug, actor=CLI_ACTOR).slug
    echo(f"Archived campaign {slug}: its public pages now answer 410 Gone.")


@campaigns_app.command("credentials")
def campaigns_credentials(
    slug: SlugArgument,
    platform: Annotated[
        str | None, typer.Option("--platform", metavar="P", help="The platform (x, instagram...).")
    ] = None,
    set_key: Annotated[
        str | None,
        typer.Option("--set", metavar="KEY", help="Set this key (asked for, never an argument)."),
    ] = None,
    clear_key: Annotated[
        str | None, typer.Option("--clear", metavar="KEY", help="Forget this key.")
    ] = None,
    value_stdin: Annotated[
        bool, typer.Option("--value-stdin", help="Read the value of --set from standard input.")
    ] = False,
) -> None:
    """The campaign's own platform credentials: which are set (never their values), or
    set or clear one. A campaign without its own polls with the install's."""
    settings = load()
    if set_key and clear_key:
        raise UserError("give --set or --clear, not both")
    if (set_key or clear_key) and not platform:
        raise UserError("--platform: say which platform the key is for")
    if set_key and platform:
        value = _read_secret(value_stdin, set_key)
        with session_scope(open_engine(settings)) as session:
            done = set_credential(
                session,
                settings,
                slug=slug,
                platform=platform,
                key=set_key,
                value=value,
                actor=CLI_ACTOR,
            )
        echo(f"{done}; polled with it from the scheduler's next look (within a minute).")
        return
    if clear_key and platform:
        with session_scope(open_engine(settings)) as session:
            echo(
                clear_credential(
                    session, settings, slug=slug, platform=platform, key=clear_key, actor=CLI_ACTOR
                )
            )
        return
    with Session(open_engine(settings)) as session:
        campaign = get_campaign(session, settings, slug)
        states = credential_states(session, campaign)
    for state in states:
        if platform and state.platform != platform.strip().lower():
            continue
        whose = "own" if state.in_use else "the install's"
        echo(f"{state.platform}: {whose}")
        for key in state.keys:
            how = f"set {when(key.set_at, settings)} by {key.set_by}" if key.is_set else "not set"
            echo(f"  {key.key}: {how}")


def _read_secret(from_stdin: bool, key: str) -> str:
    """A credential's value from stdin, or asked for on a terminal (never echoed)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UserError(f"no terminal to ask for {key}: pipe it in with --value-stdin")
    return str(typer.prompt(key, hide_input=True))


def _days(campaign: Campaign) -> str:
    first = campaign.starts_on.isoformat() if campaign.starts_on else "-"
    last = campaign.ends_on.isoformat() if campaign.ends_on else "-"
    return f"{first} to {last}"


def _describe(session: Session, settings: Settings, campaign: Campaign) -> list[str]:
    """``campaigns show``: what a person checks before and after changing a campaign."""
    tags = campaign_tags(campaign, settings)
    named = [] if campaign.is_default else split_list(campaign.platforms)
    own = (
        set()
        if campaign.is_default
        else own_credential_platforms(session).get(campaign.id or 0, set())
    )
    polled = campaign_platforms(campaign, settings, own)
    lines = [
        f"slug: {campaign.slug}{' (the default campaign)' if campaign.is_default else ''}",
        f"name: {campaign.name}",
        f"state: {state_on(campaign, local_today(settings)).value}",
        f"days: {_days(campaign)} ({settings.timezone})",
        f"hashtags: {', '.join(f'#{tag}' for tag in tags)}",
        f"platforms: {', '.join(polled) or 'none'}",
    ]
    if missing := [name for name in named if name not in polled]:
        lines.append(
            f"not polled: {', '.join(missing)} (not enabled on this install: set its"
            " credentials, or add it to PLATFORMS)"
        )
    if own:
        lines.append(
            f"credentials: its own for {', '.join(sorted(own))}, the install's for the others"
            f" (hashtag-monitor campaigns credentials {campaign.slug})"
        )
    if campaign.is_default:
        lines.append("follows HASHTAGS and PLATFORMS from the environment")
    plan = digest_of(campaign, settings)
    lines.append(
        f"digest: {', '.join(plan.recipients) or 'not sent (no recipients)'}"
        f" at {plan.time} from {plan.sender or '- (DIGEST_FROM is not set)'}"
    )
    wanted = {normalise_tag(tag) for tag in tags}
    sources = [
        source
        for source in list_sources(session)
        if source.platform in polled
        and set(source_tags(source.hashtags)) & wanted
        # Its own account's sources where it has one, the install's where not.
        and source.campaign_id == (campaign.id if source.platform in own else None)
    ]
    lines.append(f"sources: {len(sources)} current")
    lines += [f"  {source.key} (since {when(source.created_at, settings)})" for source in sources]
    if campaign.ended_at is not None:
        lines.append(f"ended: {when(campaign.ended_at, settings)}")
    if campaign.archived_at is not None:
        lines.append(f"archived: {when(campaign.archived_at, settings)}")
    return lines


def register(app: typer.Typer) -> None:
    app.add_typer(campaigns_app, name="campaigns")
