"""Admin pages: users, ingestion rules, reject reasons, the gallery kill switch, the audit log.

Every change goes through a service that writes its own audit row; the
outcome shows once on the next page (post, redirect, get).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import Campaign, Role, RuleKind, utcnow
from monitor.services.alerts import failed_alerts
from monitor.services.app_settings import gallery_paused, paused_campaigns
from monitor.services.audit import audit_log, find_post_id
from monitor.services.campaigns import list_campaigns
from monitor.services.gallery import set_gallery_paused
from monitor.services.known_images import (
    IMPORTED,
    MAX_BANK_FILE_BYTES,
    delete_bank,
    import_bank,
    list_banks,
    never_again_policy,
    set_bank_scope,
    set_never_again_policy,
)
from monitor.services.latency import today_figures
from monitor.services.mail import last_digest_send
from monitor.services.moderation import reject_reasons, set_reject_reasons
from monitor.services.rules import (
    DETECTORS,
    MAX_PLACE_FILE_BYTES,
    add_place_list,
    add_rule,
    delete_rule,
    describe_rule,
    list_rules,
    place_name_counts,
    set_rule_enabled,
    set_rule_scope,
)
from monitor.services.sessions import add_flash, pop_flash
from monitor.services.takedown import set_takedown_hides, takedown_hides
from monitor.services.users import (
    add_user,
    disable_totp,
    disable_user,
    enable_user,
    list_users,
    reset_password,
    set_role,
    unlock_logins,
)
from monitor.web.deps import MAX_ROW_ID, AdminChange, AdminPage, Staff, parse_row_id

router = APIRouter(prefix="/admin")
_SHORT = 200
_LONG = 5000


def _done(staff: Staff, message: str, target: str = "/admin") -> Response:
    add_flash(
        session=staff.session, request_session=staff.request.state.web_session, message=message
    )
    staff.session.commit()
    return RedirectResponse(target, status_code=303)


def attempt_change(staff: Staff, change: Callable[[], str], target: str = "/admin") -> Response:
    """Run a change; a refused one is rolled back and explained, never half-applied."""
    try:
        message = change()
    except UserError as exc:
        staff.session.rollback()
        return _done(staff, f"Not done: {exc}.", target)
    return _done(staff, message, target)


@router.get("", response_class=HTMLResponse)
def admin_page(staff: AdminPage) -> Response:
    """Users, rules, reject reasons and the kill switch on one page."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    rules = list_rules(session=session)
    return staff.templates.TemplateResponse(
        request,
        "admin/index.html",
        {
            "title": "Admin",
            "user": user,
            "users": list_users(session=session),
            "roles": list(Role),
            "rules": [(rule, describe_rule(rule)) for rule in rules],
            "owners": campaign_names(session, settings),
            "rule_kinds": list(RuleKind),
            "place_counts": place_name_counts(session),
            "banks": list_banks(session),
            "imported_kind": IMPORTED,
            "never_again_policy": never_again_policy(session),
            "detectors": DETECTORS,
            "reasons": reject_reasons(session),
            "paused": gallery_paused(session),
            "paused_campaigns": _paused_campaigns(session, settings),
            "last_digest": last_digest_send(session),
            "takedown_hides": takedown_hides(session, settings),
            "alert_to": settings.safeguarding_alert_to,
            "failed_alerts": failed_alerts(session),
            "latency": today_figures(session, zone=settings.zone, now=utcnow()),
            "messages": pop_flash(session=session, request_session=request.state.web_session),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/users")
def admin_add_user(
    staff: AdminChange,
    name: Annotated[str, Form(max_length=_SHORT)] = "",
    role: Annotated[str, Form(max_length=_SHORT)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Add a user with a role and an initial password."""

    def change() -> str:
        add_user(
            session=staff.session,
            name=name.strip(),
            role=role,
            password=password,
            actor=staff.user.name,
        )
        return f"Added {name.strip()} as {role}."

    return attempt_change(staff, change)


def _on_account(
    staff: Staff,
    name: str,
    act: Callable[..., object],
    done: Callable[[Any], str],
    *,
    not_yourself: str | None = None,
) -> Response:
    """One change to another user's account by name: the service checks and audits it,
    ``done`` words its result; ``not_yourself`` refuses it on one's own account."""

    def change() -> str:
        if not_yourself is not None and name == staff.user.name:
            raise UserError(not_yourself)
        return done(act(session=staff.session, name=name[:_SHORT], actor=staff.user.name))

    return attempt_change(staff, change)


@router.post("/users/{name}/disable")
def admin_disable_user(name: str, staff: AdminChange) -> Response:
    """Disable a user and end their sessions at once."""
    return _on_account(
        staff,
        name,
        disable_user,
        lambda user: f"Disabled {user.name}; their sessions have ended.",
        not_yourself="you cannot disable your own account",
    )


@router.post("/users/{name}/enable")
def admin_enable_user(name: str, staff: AdminChange) -> Response:
    """Let a disabled user log in again."""
    return _on_account(
        staff, name, enable_user, lambda user: f"Enabled {user.name}; they can log in again."
    )


@router.post("/users/{name}/role")
def admin_set_role(
    name: str,
    staff: AdminChange,
    role: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """Change a user's role; their sessions end so the new role applies at once."""
    return _on_account(
        staff,
        name,
        functools.partial(set_role, role=role),
        lambda user: f"{user.name} is now a {user.role}; their sessions have ended.",
        not_yourself="you cannot change your own role; ask another admin",
    )


@router.post("/users/{name}/unlock")
def admin_unlock_user(name: str, staff: AdminChange) -> Response:
    """Forget an account's failed logins, lifting the delay on its next login."""
    return _on_account(
        staff,
        name,
        unlock_logins,
        lambda _forgotten: (
            f"Failed logins of {name[:_SHORT]} forgotten; they can log in without delay."
        ),
    )


@router.post("/users/{name}/totp-off")
def admin_totp_off(name: str, staff: AdminChange) -> Response:
    """Turn off a user's second factor (a lost phone); they log in with the password again."""
    return _on_account(
        staff,
        name,
        disable_totp,
        lambda user: f"Two-factor login is off for {user.name}; their sessions have ended.",
    )


@router.post("/users/{name}/reset", response_class=HTMLResponse)
def admin_reset_password(name: str, staff: AdminChange) -> Response:
    """Give a user a one-time password, shown on this page once (never stored in clear)."""
    if name == staff.user.name:
        return _done(staff, "Not done: change your own password under Account.")
    try:
        password = reset_password(session=staff.session, name=name[:_SHORT], actor=staff.user.name)
    except UserError as exc:
        staff.session.rollback()
        return _done(staff, f"Not done: {exc}.")
    staff.session.commit()
    return staff.templates.TemplateResponse(
        staff.request,
        "admin/password_reset.html",
        {
            "title": "Password reset",
            "user": staff.user,
            "account": name[:_SHORT],
            "password": password,
        },
        headers={"Cache-Control": "no-store"},
    )


def read_upload(upload: UploadFile | None, limit: int) -> bytes:
    """An uploaded file's bytes, one over ``limit`` at most: enough for the service to
    refuse a file too large without reading a huge upload whole."""
    return upload.file.read(limit + 1) if upload is not None else b""


def add_rule_change(
    staff: Staff, kind: str, pattern: str, action: str, campaign: Campaign | None = None
) -> Callable[[], str]:
    """Adding a rule: shared (``campaign`` None) or ``campaign``'s own."""

    def change() -> str:
        rule = add_rule(
            session=staff.session,
            kind=kind,
            pattern=pattern,
            action=action,
            actor=staff.user.name,
            campaign=campaign,
        )
        return f"Added rule {rule.id}: {describe_rule(rule)} ({rule.action})."

    return change


def add_place_list_change(
    staff: Staff, title: str, data: bytes, campaign: Campaign | None = None
) -> Callable[[], str]:
    """Adding a place-name list: shared (``campaign`` None) or ``campaign``'s own."""

    def change() -> str:
        rule = add_place_list(
            session=staff.session, title=title, data=data, actor=staff.user.name, campaign=campaign
        )
        count = place_name_counts(staff.session).get(rule.id or 0, 0)
        return f"Added rule {rule.id}: {describe_rule(rule)}, {count} names (flag)."

    return change


def rule_change(
    staff: Staff,
    rule_id: int,
    operation: str,
    *,
    within: Campaign | None = None,
    campaign: Campaign | None = None,
) -> Callable[[], str]:
    """One operation on a rule: on/off and delete (``within``: the campaign a campaign
    admin acts in, which the service holds them to); on a campaign's page (``campaign``)
    also ``share`` and ``own``, which the service lets only install admins do."""

    def change() -> str:
        session, actor = staff.session, staff.user.name
        if operation == "delete":
            delete_rule(session=session, rule_id=rule_id, actor=actor, within=within)
            return f"Deleted rule {rule_id}."
        if operation in ("enable", "disable"):
            set_rule_enabled(
                session=session,
                rule_id=rule_id,
                enabled=operation == "enable",
                actor=actor,
                within=within,
            )
            return f"Rule {rule_id} {operation}d."
        if campaign is None or operation not in ("share", "own"):
            raise UserError("a rule can be enabled, disabled or deleted")
        owner = None if operation == "share" else campaign
        set_rule_scope(session=session, rule_id=rule_id, campaign=owner, actor=actor, within=within)
        return f"Rule {rule_id} is now {_whose(owner)}."

    return change


def _whose(owner: Campaign | None) -> str:
    return "shared by every campaign" if owner is None else f"{owner.name}'s own"


def import_bank_change(
    staff: Staff, name: str, data: bytes, campaign: Campaign | None = None
) -> Callable[[], str]:
    """Importing a hash bank: shared (``campaign`` None) or ``campaign``'s own."""

    def change() -> str:
        bank, count = import_bank(
            session=staff.session, name=name, data=data, actor=staff.user.name, campaign=campaign
        )
        return f"Imported the hash bank “{bank.name}”: {count:,} hashes."

    return change


def bank_change(
    staff: Staff,
    bank_id: int,
    operation: str,
    *,
    within: Campaign | None = None,
    campaign: Campaign | None = None,
) -> Callable[[], str]:
    """One operation on an imported bank, as :func:`rule_change` on a rule: delete, and
    on a campaign's page ``share`` and ``own`` (install admins only, says the service)."""

    def change() -> str:
        session, actor = staff.session, staff.user.name
        if operation == "delete":
            bank = delete_bank(session=session, bank_id=bank_id, actor=actor, within=within)
            return f"Deleted the hash bank “{bank.name}”."
        if campaign is None or operation not in ("share", "own"):
            raise UserError("an imported hash bank can be deleted")
        owner = None if operation == "share" else campaign
        bank = set_bank_scope(
            session=session, bank_id=bank_id, campaign=owner, actor=actor, within=within
        )
        return f"The hash bank “{bank.name}” is now {_whose(owner)}."

    return change


def reasons_change(
    staff: Staff, reasons: str, campaign: Campaign | None = None
) -> Callable[[], str]:
    """Replacing a reasons list (one per line): the install's, or ``campaign``'s own (the
    default campaign's is the install's)."""

    def change() -> str:
        saved = set_reject_reasons(
            session=staff.session,
            reasons=reasons.splitlines(),
            actor=staff.user.name,
            campaign=campaign,
        )
        return f"Saved {len(saved)} reject reasons."

    return change


@router.post("/rules")
def admin_add_rule(
    staff: AdminChange,
    kind: Annotated[str, Form(max_length=_SHORT)] = "",
    pattern: Annotated[str, Form(max_length=_LONG)] = "",
    action: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """Add a shared rule that rejects or flags new posts."""
    return attempt_change(staff, add_rule_change(staff, kind, pattern, action))


@router.post("/rules/places")
def admin_add_place_list(
    staff: AdminChange,
    title: Annotated[str, Form(max_length=_SHORT)] = "",
    names: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Upload a list of place names (CSV, one a line): any of them in a post flags it."""
    data = read_upload(names, MAX_PLACE_FILE_BYTES)
    return attempt_change(staff, add_place_list_change(staff, title, data))


@router.post("/rules/{rule_id}/{operation}")
def admin_change_rule(
    rule_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    operation: str,
    staff: AdminChange,
) -> Response:
    """Enable, disable or delete a rule."""
    return attempt_change(staff, rule_change(staff, rule_id, operation))


@router.post("/hash-banks")
def admin_import_bank(
    staff: AdminChange,
    name: Annotated[str, Form(max_length=_SHORT)] = "",
    hashes: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Import a shared bank of PDQ hashes: a match there is escalated and never shown."""
    data = read_upload(hashes, MAX_BANK_FILE_BYTES)
    return attempt_change(staff, import_bank_change(staff, name, data))


@router.post("/hash-banks/{bank_id}/delete")
def admin_delete_bank(
    bank_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], staff: AdminChange
) -> Response:
    """Delete an imported hash bank (new images are no longer matched against it)."""
    return attempt_change(staff, bank_change(staff, bank_id, "delete"))


@router.post("/never-again-policy")
def admin_never_again_policy(
    staff: AdminChange, policy: Annotated[str, Form(max_length=_SHORT)] = ""
) -> Response:
    """What a repost of a rejected picture does: rejected at once, or flagged."""

    def change() -> str:
        set_never_again_policy(session=staff.session, policy=policy, actor=staff.user.name)
        if policy == "flag":
            return "A repost of a rejected picture is now flagged for a moderator."
        return "A repost of a rejected picture is now rejected automatically."

    return attempt_change(staff, change)


@router.post("/reasons")
def admin_reasons(
    staff: AdminChange,
    reasons: Annotated[str, Form(max_length=_LONG)] = "",
) -> Response:
    """Replace the install's list of reject reasons (one per line)."""
    return attempt_change(staff, reasons_change(staff, reasons))


@router.post("/gallery")
def admin_gallery(
    staff: AdminChange,
    state: Annotated[str, Form(max_length=_SHORT)] = "",
    reason: Annotated[str, Form(max_length=_LONG)] = "",
) -> Response:
    """The install's kill switch: pause every campaign's public gallery (a neutral
    message) or resume them (a campaign's own switch is on its queue)."""

    def change() -> str:
        if state not in ("pause", "resume"):
            raise UserError("choose pause or resume")
        return set_gallery_paused(
            session=staff.session,
            pause=state == "pause",
            actor=staff.user.name,
            reason=reason,
            campaign=None,
        )

    return attempt_change(staff, change)


@router.post("/takedown-policy")
def admin_takedown_policy(
    staff: AdminChange,
    hides: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """The policy switch over TAKEDOWN_HIDES: do safeguarding requests hide at once?"""

    def change() -> str:
        if hides not in ("true", "false"):
            raise UserError("choose whether requests hide posts")
        set_takedown_hides(session=staff.session, hides=hides == "true", actor=staff.user.name)
        if hides == "true":
            return "Safeguarding takedown requests now hide the post at once."
        return "Takedown requests now only flag posts."

    return attempt_change(staff, change)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    staff: AdminPage,
    before: Annotated[str, Query(max_length=20)] = "",
    actor: Annotated[str, Query(max_length=_SHORT)] = "",
    action: Annotated[str, Query(max_length=_SHORT)] = "",
    post: Annotated[str, Query(max_length=_SHORT)] = "",
) -> Response:
    """Every audit row, newest first, filterable by who, what (its words or its stored
    value) and post (``platform:external_id`` as the page shows it, or a row id)."""
    session = staff.session
    post = post.strip()
    post_id = find_post_id(session, post) if ":" in post else parse_row_id(post)
    page = audit_log(
        session,
        before=parse_row_id(before),
        actor=actor.strip(),
        action=action.strip(),
        post_id=post_id,
    )
    shown_post = post if post_id is not None else ""
    query = {"actor": actor.strip(), "action": action.strip(), "post": shown_post}
    return staff.templates.TemplateResponse(
        staff.request,
        "admin/audit.html",
        {
            "title": "Audit log",
            "user": staff.user,
            "page": page,
            "filters": query,
            "next_query": urlencode({k: v for k, v in query.items() if v}),
        },
        headers={"Cache-Control": "no-store"},
    )


def campaign_names(session: Session, settings: Settings) -> dict[int, str] | None:
    """Campaign id -> name, to say whose each list is; None when the install has one
    campaign (every list is then simply the install's)."""
    campaigns = list_campaigns(session, settings)
    if len(campaigns) < 2:
        return None
    return {campaign.id or 0: campaign.name for campaign in campaigns}


def _paused_campaigns(session: Session, settings: Settings) -> list[Campaign]:
    """The campaigns whose own kill switch is on (their moderators flip it on the queue)."""
    paused = paused_campaigns(session)
    return [campaign for campaign in list_campaigns(session, settings) if campaign.id in paused]
