"""``/login`` and ``/logout``: the only public-side routes allowed to set cookies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import User
from monitor.services import audit
from monitor.services.audit import Action
from monitor.services.users import (
    MIN_PASSWORD_LENGTH,
    change_own_password,
    enable_totp,
    new_totp_secret,
    totp_uri,
)
from monitor.web.auth import (
    LOGIN_CSRF_COOKIE,
    LOGIN_FORM_LIFETIME,
    MAX_NAME_CHARS,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    add_flash,
    attempt_login,
    end_session,
    load_session,
    login_csrf_valid,
    new_login_csrf,
    purge_expired,
    start_session,
)
from monitor.web.deps import (
    PASSWORD_PATH,
    CsrfDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    TemplatesDep,
    client_address,
)

router = APIRouter()
TOTP_PATH = "/account/totp"
DEFAULT_LANDING = "/queue"
_LOGIN_FORM_LIFETIME = int(LOGIN_FORM_LIFETIME.total_seconds())


def safe_next(target: str | None) -> str:
    """Only a path on this site: never ``//evil``, a scheme, or a backslash trick."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return DEFAULT_LANDING
    if any(ch in target for ch in "\r\n\\") or len(target) > 2000:
        return DEFAULT_LANDING
    return target


def _secure(settings: Settings) -> bool:
    return settings.public_base_url.startswith("https://")


def _login_page(
    request: Request,
    templates: TemplatesDep,
    settings: Settings,
    *,
    next_url: str,
    error: str | None = None,
    name: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    nonce, field = new_login_csrf(settings.ensure_secret_key())
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "title": "Log in",
            "csrf_field": field,
            "next_url": next_url,
            "error": error,
            "name": name[:MAX_NAME_CHARS],
        },
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        nonce,
        max_age=_LOGIN_FORM_LIFETIME,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_secure(settings),
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    next: str | None = None,
) -> Response:
    """The login form; someone already logged in goes straight on."""
    login = load_session(
        session=session,
        cookie=request.cookies.get(SESSION_COOKIE),
        secret=settings.ensure_secret_key(),
    )
    if login is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, templates, settings, next_url=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    name: Annotated[str, Form(max_length=10_000)] = "",
    password: Annotated[str, Form(max_length=10_000)] = "",
    code: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """Check the password (slowed, then locked, after failures) and start a session."""
    secret = settings.ensure_secret_key()
    next_url = safe_next(next)
    if not login_csrf_valid(secret, request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_page(
            request,
            templates,
            settings,
            next_url=next_url,
            name=name,
            error="The form expired or was not sent from this site. Please try again.",
            status_code=403,
        )
    name = name.strip()
    address = client_address(request)
    purge_expired(session=session)
    outcome = attempt_login(
        session=session, name=name, password=password, address=address, code=code
    )
    session.commit()
    throttle, user = outcome.throttle, outcome.user
    if not throttle.allowed:
        what = "locked" if throttle.locked else "slowed down"
        refused = _login_page(
            request,
            templates,
            settings,
            next_url=next_url,
            name=name,
            error=(
                f"Too many failed logins: logins are {what}. "
                f"Try again in {throttle.retry_after} seconds."
            ),
            status_code=429,
        )
        refused.headers["Retry-After"] = str(throttle.retry_after)
        return refused
    if user is None:
        return _login_page(
            request,
            templates,
            settings,
            next_url=next_url,
            name=name,
            error=("Wrong user name, password or authentication code, or the account is disabled."),
            status_code=401,
        )
    # A new login replaces whatever session this browser had (no session fixation).
    end_session(session=session, cookie=request.cookies.get(SESSION_COOKIE), secret=secret)
    cookie = start_session(session=session, user=user, secret=secret, address=address)
    session.commit()
    if user.must_change_password:
        next_url = PASSWORD_PATH
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    request: Request,
    user: CurrentUser,
    _csrf: CsrfDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """End this session on the server and drop the cookie."""
    end_session(
        session=session,
        cookie=request.cookies.get(SESSION_COOKIE),
        secret=settings.ensure_secret_key(),
    )
    audit.record(session, actor=user.name, action=Action.LOGOUT)
    session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/auth/session")
def session_info(request: Request, user: CurrentUser) -> JSONResponse:
    """Who is logged in, and the CSRF token scripts send in ``X-CSRF-Token``."""
    return JSONResponse(
        {"user": user.name, "role": user.role, "csrf_token": request.state.csrf_token},
        headers={"Cache-Control": "no-store"},
    )


def _account_page(
    request: Request,
    templates: TemplatesDep,
    template: str,
    context: dict[str, object],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """An own-account form: never cached, since it may show a setup key."""
    return templates.TemplateResponse(
        request,
        template,
        {"messages": [], "error": None, **context},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def _account_change(
    request: Request,
    session: SessionDep,
    change: Callable[[], object],
    refused: Callable[[str], HTMLResponse],
    done: str,
) -> Response:
    """Apply a change to one's own account: refused, the form again with why; done, on
    to the queue with a message."""
    try:
        change()
    except UserError as exc:
        session.rollback()
        return refused(str(exc))
    add_flash(session=session, request_session=request.state.web_session, message=done)
    session.commit()
    return RedirectResponse(DEFAULT_LANDING, status_code=303)


def _password_page(
    request: Request, templates: TemplatesDep, user: User, *, error: str | None = None
) -> HTMLResponse:
    return _account_page(
        request,
        templates,
        "account/password.html",
        {
            "title": "Change your password",
            "user": user,
            "error": error and f"Not changed: {error}.",
            "min_length": MIN_PASSWORD_LENGTH,
        },
        status_code=400 if error else 200,
    )


@router.get(PASSWORD_PATH, response_class=HTMLResponse)
def password_form(request: Request, user: CurrentUser, templates: TemplatesDep) -> Response:
    """The form to change one's own password (the only page after an admin's reset)."""
    return _password_page(request, templates, user)


@router.post(PASSWORD_PATH, response_class=HTMLResponse)
def password_submit(
    request: Request,
    user: CurrentUser,
    _csrf: CsrfDep,
    session: SessionDep,
    templates: TemplatesDep,
    current: Annotated[str, Form(max_length=10_000)] = "",
    new: Annotated[str, Form(max_length=10_000)] = "",
    confirm: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """Change one's own password (the current one required); other sessions end."""

    def change() -> None:
        if new != confirm:
            raise UserError("the two new passwords differ")
        change_own_password(
            session=session,
            user=user,
            current=current,
            new=new,
            keep_session=request.state.web_session.token_hash,
        )

    return _account_change(
        request,
        session,
        change,
        lambda error: _password_page(request, templates, user, error=error),
        "Password changed; your other sessions have ended.",
    )


def _totp_page(
    request: Request, templates: TemplatesDep, user: User, *, error: str | None = None
) -> HTMLResponse:
    secret = new_totp_secret()
    return _account_page(
        request,
        templates,
        "account/totp.html",
        {
            "title": "Two-factor login",
            "user": user,
            "error": error and f"Not set up: {error}.",
            "secret": secret,
            "uri": totp_uri(user.name, secret),
        },
        status_code=400 if error else 200,
    )


@router.get(TOTP_PATH, response_class=HTMLResponse)
def totp_form(request: Request, user: CurrentUser, templates: TemplatesDep) -> Response:
    """Set up an authenticator app (recommended for admins); a new key on every visit."""
    return _totp_page(request, templates, user)


@router.post(TOTP_PATH, response_class=HTMLResponse)
def totp_submit(
    request: Request,
    user: CurrentUser,
    _csrf: CsrfDep,
    session: SessionDep,
    templates: TemplatesDep,
    password: Annotated[str, Form(max_length=10_000)] = "",
    secret: Annotated[str, Form(max_length=100)] = "",
    code: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Turn the second factor on once the password and a first code check out."""
    return _account_change(
        request,
        session,
        lambda: enable_totp(
            session=session,
            user=user,
            password=password,
            secret=secret,
            code=code,
            keep_session=request.state.web_session.token_hash,
        ),
        lambda error: _totp_page(request, templates, user, error=error),
        "Two-factor login is on: every login now asks for a code from your app.",
    )
