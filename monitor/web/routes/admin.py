"""Admin pages: users, ingestion rules, reject reasons, the gallery kill switch, the audit log.

Every change goes through a service that writes its own audit row; the
outcome shows once on the next page (post, redirect, get).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from monitor.errors import UserError
from monitor.models import Role, RuleKind, utcnow
from monitor.services.alerts import failed_alerts
from monitor.services.app_settings import GALLERY_PAUSED, gallery_paused, set_app_setting
from monitor.services.audit import audit_log, find_post_id
from monitor.services.latency import today_figures
from monitor.services.mail import last_digest_send
from monitor.services.moderation import reject_reasons, set_reject_reasons
from monitor.services.rules import (
    DETECTORS,
    add_rule,
    delete_rule,
    describe_rule,
    list_rules,
    set_rule_enabled,
)
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
from monitor.web.auth import add_flash, pop_flash
from monitor.web.deps import (
    MAX_ROW_ID,
    AdminUser,
    CsrfDep,
    SessionDep,
    SettingsDep,
    TemplatesDep,
    parse_row_id,
)

router = APIRouter(prefix="/admin")
_SHORT = 200
_LONG = 5000


def _done(request: Request, session: Session, message: str, target: str = "/admin") -> Response:
    add_flash(session=session, request_session=request.state.web_session, message=message)
    session.commit()
    return RedirectResponse(target, status_code=303)


def _attempt(
    request: Request, session: Session, change: Callable[[], str], target: str = "/admin"
) -> Response:
    """Run a change; a refused one is rolled back and explained, never half-applied."""
    try:
        message = change()
    except UserError as exc:
        session.rollback()
        return _done(request, session, f"Not done: {exc}.", target)
    return _done(request, session, message, target)


@router.get("", response_class=HTMLResponse)
def admin_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    """Users, rules, reject reasons and the kill switch on one page."""
    rules = list_rules(session=session)
    return templates.TemplateResponse(
        request,
        "admin/index.html",
        {
            "title": "Admin",
            "user": user,
            "users": list_users(session=session),
            "roles": list(Role),
            "rules": [(rule, describe_rule(rule)) for rule in rules],
            "rule_kinds": list(RuleKind),
            "detectors": DETECTORS,
            "reasons": reject_reasons(session),
            "paused": gallery_paused(session),
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
    request: Request,
    user: AdminUser,
    _csrf: CsrfDep,
    session: SessionDep,
    name: Annotated[str, Form(max_length=_SHORT)] = "",
    role: Annotated[str, Form(max_length=_SHORT)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Add a user with a role and an initial password."""

    def change() -> str:
        add_user(session=session, name=name.strip(), role=role, password=password, actor=user.name)
        return f"Added {name.strip()} as {role}."

    return _attempt(request, session, change)


@router.post("/users/{name}/disable")
def admin_disable_user(
    request: Request, name: str, user: AdminUser, _csrf: CsrfDep, session: SessionDep
) -> Response:
    """Disable a user and end their sessions at once."""

    def change() -> str:
        if name == user.name:
            raise UserError("you cannot disable your own account")
        disabled = disable_user(session=session, name=name[:_SHORT], actor=user.name)
        return f"Disabled {disabled.name}; their sessions have ended."

    return _attempt(request, session, change)


@router.post("/users/{name}/enable")
def admin_enable_user(
    request: Request, name: str, user: AdminUser, _csrf: CsrfDep, session: SessionDep
) -> Response:
    """Let a disabled user log in again."""

    def change() -> str:
        enabled = enable_user(session=session, name=name[:_SHORT], actor=user.name)
        return f"Enabled {enabled.name}; they can log in again."

    return _attempt(request, session, change)


@router.post("/users/{name}/role")
def admin_set_role(
    request: Request,
    name: str,
    user: AdminUser,
    _csrf: CsrfDep,
    session: SessionDep,
    role: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """Change a user's role; their sessions end so the new role applies at once."""

    def change() -> str:
        if name == user.name:
            raise UserError("you cannot change your own role; ask another admin")
        changed = set_role(session=session, name=name[:_SHORT], role=role, actor=user.name)
        return f"{changed.name} is now a {changed.role}; their sessions have ended."

    return _attempt(request, session, change)


@router.post("/users/{name}/unlock")
def admin_unlock_user(
    request: Request, name: str, user: AdminUser, _csrf: CsrfDep, session: SessionDep
) -> Response:
    """Forget an account's failed logins, lifting the delay on its next login."""

    def change() -> str:
        unlock_logins(session=session, name=name[:_SHORT], actor=user.name)
        return f"Failed logins of {name[:_SHORT]} forgotten; they can log in without delay."

    return _attempt(request, session, change)


@router.post("/users/{name}/totp-off")
def admin_totp_off(
    request: Request, name: str, user: AdminUser, _csrf: CsrfDep, session: SessionDep
) -> Response:
    """Turn off a user's second factor (a lost phone); they log in with the password again."""

    def change() -> str:
        changed = disable_totp(session=session, name=name[:_SHORT], actor=user.name)
        return f"Two-factor login is off for {changed.name}; their sessions have ended."

    return _attempt(request, session, change)


@router.post("/users/{name}/reset", response_class=HTMLResponse)
def admin_reset_password(
    request: Request,
    name: str,
    user: AdminUser,
    _csrf: CsrfDep,
    session: SessionDep,
    templates: TemplatesDep,
) -> Response:
    """Give a user a one-time password, shown on this page once (never stored in clear)."""
    if name == user.name:
        return _done(request, session, "Not done: change your own password under Account.")
    try:
        password = reset_password(session=session, name=name[:_SHORT], actor=user.name)
    except UserError as exc:
        session.rollback()
        return _done(request, session, f"Not done: {exc}.")
    session.commit()
    return templates.TemplateResponse(
        request,
        "admin/password_reset.html",
        {"title": "Password reset", "user": user, "account": name[:_SHORT], "password": password},
        headers={"Cache-Control": "no-store"},
    )


@router.post("/rules")
def admin_add_rule(
    request: Request,
    user: AdminUser,
    _csrf: CsrfDep,
    session: SessionDep,
    kind: Annotated[str, Form(max_length=_SHORT)] = "",
    pattern: Annotated[str, Form(max_length=_LONG)] = "",
    action: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """Add a rule that rejects or flags new posts."""

    def change() -> str:
        rule = add_rule(session=session, kind=kind, pattern=pattern, action=action, actor=user.name)
        return f"Added rule {rule.id}: {describe_rule(rule)} ({rule.action})."

    return _attempt(request, session, change)


@router.post("/rules/{rule_id}/{operation}")
def admin_change_rule(
    request: Request,
    rule_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    operation: str,
    user: AdminUser,
    _csrf: CsrfDep,
    session: SessionDep,
) -> Response:
    """Enable, disable or delete a rule."""

    def change() -> str:
        if operation == "delete":
            delete_rule(session=session, rule_id=rule_id, actor=user.name)
            return f"Deleted rule {rule_id}."
        if operation not in ("enable", "disable"):
            raise UserError("a rule can be enabled, disabled or deleted")
        set_rule_enabled(
            session=session, rule_id=rule_id, enabled=operation == "enable", actor=user.name
        )
        return f"Rule {rule_id} {operation}d."

    return _attempt(request, session, change)


@router.post("/reasons")
def admin_reasons(
    request: Request,
    user: AdminUser,
    _csrf: CsrfDep,
    session: SessionDep,
    reasons: Annotated[str, Form(max_length=_LONG)] = "",
) -> Response:
    """Replace the list of reject reasons (one per line)."""

    def change() -> str:
        saved = set_reject_reasons(session=session, reasons=reasons.splitlines(), actor=user.name)
        return f"Saved {len(saved)} reject reasons."

    return _attempt(request, session, change)


@router.post("/gallery")
def admin_gallery(
    request: Request,
    user: AdminUser,
    _csrf: CsrfDep,
    session: SessionDep,
    state: Annotated[str, Form(max_length=_SHORT)] = "",
    reason: Annotated[str, Form(max_length=_LONG)] = "",
) -> Response:
    """The kill switch: pause the public gallery (a neutral message) or resume it."""

    def change() -> str:
        if state not in ("pause", "resume"):
            raise UserError("choose pause or resume")
        pause = state == "pause"
        if pause == gallery_paused(session):
            return "The gallery was already " + ("paused." if pause else "live.")
        note = " ".join(reason.split())[:500] or None
        set_app_setting(session, GALLERY_PAUSED, pause, actor=user.name, reason=note)
        return "The public gallery is paused." if pause else "The public gallery is live again."

    return _attempt(request, session, change)


@router.post("/takedown-policy")
def admin_takedown_policy(
    request: Request,
    user: AdminUser,
    _csrf: CsrfDep,
    session: SessionDep,
    hides: Annotated[str, Form(max_length=_SHORT)] = "",
) -> Response:
    """The policy switch over TAKEDOWN_HIDES: do safeguarding requests hide at once?"""

    def change() -> str:
        if hides not in ("true", "false"):
            raise UserError("choose whether requests hide posts")
        set_takedown_hides(session=session, hides=hides == "true", actor=user.name)
        if hides == "true":
            return "Safeguarding takedown requests now hide the post at once."
        return "Takedown requests now only flag posts."

    return _attempt(request, session, change)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    templates: TemplatesDep,
    before: Annotated[str, Query(max_length=20)] = "",
    actor: Annotated[str, Query(max_length=_SHORT)] = "",
    action: Annotated[str, Query(max_length=_SHORT)] = "",
    post: Annotated[str, Query(max_length=_SHORT)] = "",
) -> Response:
    """Every audit row, newest first, filterable by who, what (its words or its stored
    value) and post (``platform:external_id`` as the page shows it, or a row id)."""
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
    return templates.TemplateResponse(
        request,
        "admin/audit.html",
        {
            "title": "Audit log",
            "user": user,
            "page": page,
            "filters": query,
            "next_query": urlencode({k: v for k, v in query.items() if v}),
        },
        headers={"Cache-Control": "no-store"},
    )
