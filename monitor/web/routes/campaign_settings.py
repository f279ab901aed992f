"""A campaign's settings page (``/admin/campaign``): its own protection lists, its reject
reasons and its retention, for its admins and install admins.

The campaign is the one the login works on (``CampaignAdminPage``), never one a form
names. Every change goes through the service that already holds a campaign admin to
their campaign (``within``, :func:`monitor.services.rules.reach_of`): a forged rule or
bank id of a shared list or of another campaign is refused there, in words that do not
say whether another campaign has it. Only install admins share a list or make a shared
one the campaign's own; the page offers them that, the services refuse anyone else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import HTMLResponse, Response

from monitor.models import PostStatus, Role
from monitor.services.known_images import (
    IMPORTED,
    MAX_BANK_FILE_BYTES,
    list_banks,
    never_again_policy,
)
from monitor.services.moderation import has_own_reasons, reject_reasons, use_install_reasons
from monitor.services.retention import (
    campaign_periods,
    describe_periods,
    parse_periods,
    set_campaign_retention,
)
from monitor.services.rules import (
    DETECTORS,
    MAX_PLACE_FILE_BYTES,
    describe_rule,
    place_name_counts,
    reach_of,
    visible_rules,
)
from monitor.services.sessions import pop_flash
from monitor.web.deps import MAX_ROW_ID, CampaignAdminChange, CampaignAdminPage
from monitor.web.routes.admin import (
    add_place_list_change,
    add_rule_change,
    attempt_change,
    bank_change,
    import_bank_change,
    read_upload,
    reasons_change,
    rule_change,
)

router = APIRouter(prefix="/admin/campaign")
PAGE = "/admin/campaign"
_SHORT = 200
_LONG = 5000
_DAYS = 20


@router.get("", response_class=HTMLResponse)
def campaign_settings_page(staff: CampaignAdminPage) -> Response:
    """The campaign's own rules and banks beside the shared ones (read-only), its reject
    reasons and which list is in force, and its retention periods."""
    request, session, campaign = staff.request, staff.session, staff.campaign
    rules = [
        (rule, describe_rule(rule)) for rule in visible_rules(session=session, campaign=campaign)
    ]
    banks = list_banks(session, campaign)
    install_admin = staff.user.role == Role.ADMIN
    return staff.templates.TemplateResponse(
        request,
        "admin/campaign_settings.html",
        {
            "title": f"Campaign settings: {campaign.name}",
            "user": staff.user,
            "campaign": campaign,
            "campaigns": staff.campaigns,
            "install_admin": install_admin,
            "own_rules": [pair for pair in rules if pair[0].campaign_id is not None],
            "shared_rules": [pair for pair in rules if pair[0].campaign_id is None],
            "place_counts": place_name_counts(session),
            "detectors": DETECTORS,
            "own_banks": [pair for pair in banks if pair[0].campaign_id is not None],
            "shared_banks": [pair for pair in banks if pair[0].campaign_id is None],
            "imported_kind": IMPORTED,
            "never_again_policy": never_again_policy(session),
            "reasons": reject_reasons(session, campaign),
            "own_reasons": has_own_reasons(session, campaign),
            "periods": campaign_periods(campaign, staff.settings),
            "messages": pop_flash(session=session, request_session=request.state.web_session),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/rules")
def campaign_add_rule(
    staff: CampaignAdminChange,
    kind: Annotated[str, Form(max_length=_SHORT)] = "",
    pattern: Annotated[str, Form(max_length=_LONG)] = "",
    action: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """Add a rule of the campaign's own: it acts only on posts pending in this campaign."""
    return attempt_change(
        staff, add_rule_change(staff, kind, pattern, action, staff.campaign), PAGE
    )


@router.post("/rules/places")
def campaign_add_place_list(
    staff: CampaignAdminChange,
    title: Annotated[str, Form(max_length=_SHORT)] = "",
    names: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Upload a place-name list of the campaign's own."""
    data = read_upload(names, MAX_PLACE_FILE_BYTES)
    return attempt_change(staff, add_place_list_change(staff, title, data, staff.campaign), PAGE)


@router.post("/rules/{rule_id}/{operation}")
def campaign_change_rule(
    rule_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    operation: Annotated[str, Path(max_length=_SHORT)],
    staff: CampaignAdminChange,
) -> Response:
    """Turn one of the campaign's rules on or off or delete it; an install admin also
    shares it or makes a shared one the campaign's own."""
    within = reach_of(staff.user, staff.campaign)
    return attempt_change(
        staff, rule_change(staff, rule_id, operation, within=within, campaign=staff.campaign), PAGE
    )


@router.post("/hash-banks")
def campaign_import_bank(
    staff: CampaignAdminChange,
    name: Annotated[str, Form(max_length=_SHORT)] = "",
    hashes: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Import a hash bank of the campaign's own: its posts' images are matched against it."""
    data = read_upload(hashes, MAX_BANK_FILE_BYTES)
    return attempt_change(staff, import_bank_change(staff, name, data, staff.campaign), PAGE)


@router.post("/hash-banks/{bank_id}/{operation}")
def campaign_change_bank(
    bank_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    operation: Annotated[str, Path(max_length=_SHORT)],
    staff: CampaignAdminChange,
) -> Response:
    """Delete one of the campaign's banks; an install admin also shares it or makes a
    shared one the campaign's own."""
    within = reach_of(staff.user, staff.campaign)
    return attempt_change(
        staff, bank_change(staff, bank_id, operation, within=within, campaign=staff.campaign), PAGE
    )


@router.post("/reasons")
def campaign_reasons(
    staff: CampaignAdminChange,
    reasons: Annotated[str, Form(max_length=_LONG)] = "",
) -> Response:
    """Save the campaign's own reject reasons (the default campaign's are the install's)."""
    return attempt_change(staff, reasons_change(staff, reasons, staff.campaign), PAGE)


@router.post("/reasons/install")
def campaign_install_reasons(staff: CampaignAdminChange) -> Response:
    """Drop the campaign's own list: its moderators pick from the install's again."""

    def change() -> str:
        use_install_reasons(session=staff.session, campaign=staff.campaign, actor=staff.user.name)
        return f"{staff.campaign.name} now uses the install's reject reasons."

    return attempt_change(staff, change, PAGE)


@router.post("/retention")
def campaign_retention(
    staff: CampaignAdminChange,
    rejected_days: Annotated[str, Form(max_length=_DAYS)] = "",
    pending_days: Annotated[str, Form(max_length=_DAYS)] = "",
    removed_days: Annotated[str, Form(max_length=_DAYS)] = "",
) -> Response:
    """Set the campaign's three periods (an empty one: the install's), audited."""
    campaign = staff.campaign

    def change() -> str:
        given: dict[PostStatus, str | None] = {
            PostStatus.REJECTED: rejected_days,
            PostStatus.PENDING: pending_days,
            PostStatus.REMOVED: removed_days,
        }
        periods = parse_periods(given, blank_is_install=True)
        set_campaign_retention(staff.session, campaign, periods, actor=staff.user.name)
        return f"Retention of {campaign.name}: {describe_periods(campaign, staff.settings)}."

    return attempt_change(staff, change, PAGE)
