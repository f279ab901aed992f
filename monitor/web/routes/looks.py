"""Admin pages for the public side's look and curation: layout, colours (checked against
WCAG 2.2 AA), logo, help message, pinned and featured posts, and the event screen's
delay. Each change is an app setting (audited) and redraws every open wall.

The look and the curation are those of the campaign the login works on (its admins and
install admins change them); the screen delay is the install's (one for every screen)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import HTMLResponse, Response

from monitor.errors import UserError
from monitor.models import Role
from monitor.services.app_settings import set_app_setting
from monitor.services.gallery import load_posts
from monitor.services.live import MAX_SCREEN_DELAY_SECONDS, SCREEN_DELAY, screen_delay
from monitor.services.looks import (
    LAYOUTS,
    MAX_HELP_CHARS,
    curate,
    featured_ids,
    has_own_look,
    load_look,
    pinned_ids,
    save_look,
)
from monitor.services.media import PinError, pinned_name, store_image
from monitor.services.sessions import pop_flash
from monitor.web.deps import AdminChange, CampaignAdminChange, CampaignAdminPage
from monitor.web.routes.admin import attempt_change

router = APIRouter(prefix="/admin")
PAGE = "/admin/looks"
#: A logo is a small picture; anything bigger is refused before it is decoded.
MAX_LOGO_BYTES = 2 * 1024 * 1024
_SHORT = 200


def _media_url(name: str) -> str:
    return "/media/" + name


@router.get("/looks", response_class=HTMLResponse)
def looks_page(staff: CampaignAdminPage) -> Response:
    """The campaign's gallery look, its pinned and featured posts, and the screen delay."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    campaign = staff.campaign
    shown_in = None if staff.scope.alone else staff.scope.campaign_id
    return staff.templates.TemplateResponse(
        request,
        "admin/looks.html",
        {
            "title": "Gallery look and event screen",
            "user": user,
            "campaign": campaign,
            "own_look": has_own_look(session, campaign),
            "install_admin": user.role == Role.ADMIN,
            "look": load_look(session, campaign),
            "layouts": LAYOUTS,
            "max_help": MAX_HELP_CHARS,
            "pinned": load_posts(
                session, pinned_ids(session, campaign), media_url=_media_url, campaign_id=shown_in
            ),
            "featured": load_posts(
                session, featured_ids(session, campaign), media_url=_media_url, campaign_id=shown_in
            ),
            "delay": int(screen_delay(session, settings.screen_delay_seconds).total_seconds()),
            "max_delay": MAX_SCREEN_DELAY_SECONDS,
            "messages": pop_flash(session=session, request_session=request.state.web_session),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/looks")
async def save_looks(
    staff: CampaignAdminChange,
    layout: Annotated[str, Form(max_length=_SHORT)] = "grid",
    background: Annotated[str, Form(max_length=_SHORT)] = "",
    text: Annotated[str, Form(max_length=_SHORT)] = "",
    accent: Annotated[str, Form(max_length=_SHORT)] = "",
    help_message: Annotated[str, Form(max_length=2000)] = "",
    help_url: Annotated[str, Form(max_length=2000)] = "",
    logo_alt: Annotated[str, Form(max_length=2000)] = "",
    remove_logo: Annotated[str, Form(max_length=_SHORT)] = "",
    logo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Save the look, or refuse it with the reason (contrast, a bad link, a bad logo)."""
    upload = await logo.read(MAX_LOGO_BYTES + 1) if logo is not None and logo.filename else b""
    session, settings = staff.session, staff.settings

    def change() -> str:
        stored = None
        if upload:
            if len(upload) > MAX_LOGO_BYTES:
                raise UserError("the logo must be under 2 MB")
            try:
                image = store_image(upload, settings.media_dir)
            except PinError as exc:
                raise UserError(f"the logo could not be used: {exc}") from None
            stored = pinned_name(image.digest, image.widths[0])
        return save_look(
            session,
            campaign=staff.campaign,
            actor=staff.user.name,
            layout=layout,
            background=background,
            text=text,
            accent=accent,
            help_message=help_message,
            help_url=help_url,
            logo=stored,
            logo_alt=logo_alt,
            remove_logo=remove_logo == "yes",
        )

    return attempt_change(staff, change, PAGE)


@router.post("/curation")
def save_curation(
    staff: CampaignAdminChange,
    ref: Annotated[str, Form(max_length=1000)] = "",
    action: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """Pin, unpin, feature or unfeature one approved post by its public id."""
    return attempt_change(
        staff,
        lambda: curate(
            staff.session, actor=staff.user.name, ref=ref, action=action, campaign=staff.campaign
        ),
        PAGE,
    )


@router.post("/screen-delay")
def save_screen_delay(
    staff: AdminChange,
    seconds: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """The time between an approval and the post appearing on the event screen."""

    def change() -> str:
        value = seconds.strip()
        if not value.isdigit() or int(value) > MAX_SCREEN_DELAY_SECONDS:
            raise UserError(
                f"give the delay in whole seconds, from 0 to {MAX_SCREEN_DELAY_SECONDS}"
            )
        set_app_setting(staff.session, SCREEN_DELAY, int(value), actor=staff.user.name)
        return f"The event screen now waits {int(value)} seconds after an approval."

    return attempt_change(staff, change, PAGE)
