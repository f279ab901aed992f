"""The admin's campaigns page: every campaign with its state, and add, change, end,
archive; and a campaign's own platform credentials.

The campaigns page is for install admins: a campaign's own team is given by ``users
grant``. A campaign's credentials page is for install admins and that campaign's
admins (:func:`monitor.services.credentials.managed_campaign` decides; anyone else is
refused without learning what is set). The rules (and their refusals) are the
services'; these routes only read the form and say what happened.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path
from fastapi.responses import HTMLResponse, Response

from monitor.errors import UserError
from monitor.models import Campaign
from monitor.services.campaigns import (
    SLUG_RE,
    DigestPlan,
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
    split_list,
    state_on,
)
from monitor.services.credentials import (
    PlatformCredentials,
    clear_credential,
    credential_states,
    managed_campaign,
    set_credential,
)
from monitor.services.sessions import pop_flash
from monitor.web.deps import AccountChange, AccountPage, AdminChange, AdminPage, Staff
from monitor.web.routes.admin import attempt_change

router = APIRouter(prefix="/admin/campaigns")
TARGET = "/admin/campaigns"
Slug = Annotated[str, Path(max_length=60)]


@dataclasses.dataclass(frozen=True, slots=True)
class CampaignRow:
    campaign: Campaign
    state: str
    tags: tuple[str, ...]
    platforms: list[str]
    gallery: str
    #: Its own platform credentials (None: the default campaign, which uses the install's).
    credentials: list[PlatformCredentials] | None
    #: Its digest's recipients, sender and time as they will be used.
    digest: DigestPlan


@router.get("", response_class=HTMLResponse)
def campaigns_page(staff: AdminPage) -> Response:
    """Every campaign, its state today, and the forms to change them."""
    session, settings = staff.session, staff.settings
    today = local_today(settings)
    rows = [
        CampaignRow(
            campaign=campaign,
            state=state_on(campaign, today).value,
            tags=campaign_tags(campaign, settings),
            platforms=campaign_platforms(campaign, settings),
            gallery="/gallery" if campaign.is_default else f"/c/{campaign.slug}/gallery",
            credentials=None if campaign.is_default else credential_states(session, campaign),
            digest=digest_of(campaign, settings),
        )
        for campaign in list_campaigns(session, settings)
    ]
    return staff.templates.TemplateResponse(
        staff.request,
        "admin/campaigns.html",
        {
            "title": "Campaigns",
            "user": staff.user,
            "rows": rows,
            "timezone": settings.timezone,
            "messages": pop_flash(session=session, request_session=staff.request.state.web_session),
        },
        headers={"Cache-Control": "no-store"},
    )


def _day(value: str, label: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"the {label}: give a date as YYYY-MM-DD") from None


@router.post("")
def campaigns_add(
    staff: AdminChange,
    slug: Annotated[str, Form(max_length=60)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    hashtags: Annotated[str, Form(max_length=600)] = "",
    platforms: Annotated[str, Form(max_length=200)] = "",
    starts: Annotated[str, Form(max_length=20)] = "",
    ends: Annotated[str, Form(max_length=20)] = "",
    digest_to: Annotated[str, Form(max_length=2000)] = "",
    digest_from: Annotated[str, Form(max_length=320)] = "",
    digest_time: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Add a campaign: it polls from its first day, at the leader's next look."""

    def change() -> str:
        new = NewCampaign(
            slug=slug,
            name=name,
            hashtags=hashtags.split(","),
            platforms=split_list(platforms),
            starts_on=_day(starts, "first day"),
            ends_on=_day(ends, "last day"),
            digest_to=split_list(digest_to),
            digest_from=digest_from,
            digest_time=digest_time,
        )
        added = add_campaign(staff.session, staff.settings, new, actor=staff.user.name)
        return f"Added campaign {added.slug}."

    return attempt_change(staff, change, TARGET)


@router.post("/{slug}/edit")
def campaigns_edit(
    staff: AdminChange,
    slug: Slug,
    name: Annotated[str, Form(max_length=200)] = "",
    hashtags: Annotated[str | None, Form(max_length=600)] = None,
    platforms: Annotated[str | None, Form(max_length=200)] = None,
    starts: Annotated[str, Form(max_length=20)] = "",
    ends: Annotated[str, Form(max_length=20)] = "",
    digest_to: Annotated[str, Form(max_length=2000)] = "",
    digest_from: Annotated[str, Form(max_length=320)] = "",
    digest_time: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Change a campaign to what the form holds (the default campaign's form has no
    hashtags or platforms: they are ``HASHTAGS`` and ``PLATFORMS``)."""

    def change() -> str:
        _known(slug)
        current = as_new(get_campaign(staff.session, staff.settings, slug), staff.settings)
        wanted = dataclasses.replace(
            current,
            name=name,
            hashtags=current.hashtags if hashtags is None else hashtags.split(","),
            platforms=current.platforms if platforms is None else split_list(platforms),
            starts_on=_day(starts, "first day"),
            ends_on=_day(ends, "last day"),
            digest_to=split_list(digest_to),
            digest_from=digest_from,
            digest_time=digest_time,
        )
        done = edit_campaign(staff.session, staff.settings, slug, wanted, actor=staff.user.name)
        return f"Changed campaign {slug}: {'; '.join(done)}."

    return attempt_change(staff, change, TARGET)


@router.post("/{slug}/end")
def campaigns_end(staff: AdminChange, slug: Slug) -> Response:
    """End a campaign now: its polling stops, its gallery stays up."""

    def change() -> str:
        _known(slug)
        end_campaign(staff.session, staff.settings, slug, actor=staff.user.name)
        return f"Ended campaign {slug}: it polls nothing from now on; its gallery stays up."

    return attempt_change(staff, change, TARGET)


@router.post("/{slug}/archive")
def campaigns_archive(staff: AdminChange, slug: Slug) -> Response:
    """Archive an ended campaign: its public pages answer 410 Gone."""

    def change() -> str:
        _known(slug)
        archive_campaign(staff.session, staff.settings, slug, actor=staff.user.name)
        return f"Archived campaign {slug}: its gallery is closed."

    return attempt_change(staff, change, TARGET)


def _known(slug: str) -> None:
    if not SLUG_RE.fullmatch(slug):
        raise UserError(f"no campaign {slug[:60]!r}")


def _managed(staff: Staff, slug: str) -> Campaign:
    """The campaign whose credentials ``staff`` asks about, if theirs to manage; else 403."""
    try:
        return managed_campaign(staff.session, staff.settings, staff.user, slug)
    except UserError as exc:
        raise HTTPException(status_code=403, detail=f"Not allowed: {exc}.") from None


@router.get("/{slug}/credentials", response_class=HTMLResponse)
def credentials_page(staff: AccountPage, slug: Slug) -> Response:
    """Which of the campaign's own credentials are set (never their values), and forms."""
    campaign = _managed(staff, slug)
    return staff.templates.TemplateResponse(
        staff.request,
        "admin/campaign_credentials.html",
        {
            "title": f"Credentials of {campaign.name}",
            "user": staff.user,
            "campaign": campaign,
            "platforms": credential_states(staff.session, campaign),
            "timezone": staff.settings.zone,
            "messages": pop_flash(
                session=staff.session, request_session=staff.request.state.web_session
            ),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/{slug}/credentials")
def credentials_change(
    staff: AccountChange,
    slug: Slug,
    platform: Annotated[str, Form(max_length=40)] = "",
    key: Annotated[str, Form(max_length=80)] = "",
    value: Annotated[str, Form(max_length=4000)] = "",
    clear: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Set (or, with ``clear``, forget) one of the campaign's own credentials."""
    campaign = _managed(staff, slug)
    target = f"/admin/campaigns/{campaign.slug}/credentials"

    def change() -> str:
        if clear:
            return (
                clear_credential(
                    staff.session,
                    staff.settings,
                    slug=campaign.slug,
                    platform=platform,
                    key=key,
                    actor=staff.user.name,
                )
                + "."
            )
        done = set_credential(
            staff.session,
            staff.settings,
            slug=campaign.slug,
            platform=platform,
            key=key,
            value=value,
            actor=staff.user.name,
        )
        return f"{done}; its polls use it from the next minute."

    return attempt_change(staff, change, target)
