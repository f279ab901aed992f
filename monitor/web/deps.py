"""Dependencies routes share, as ``Annotated`` aliases.

Logins: ``CurrentUser`` is any active logged-in user (a page redirects to
``/login``, anything else gets 401); ``ViewerUser``, ``ModeratorUser`` and
``AdminUser`` also need at least that role (403 otherwise). A route that
changes state adds a ``CsrfDep`` parameter (``_csrf: CsrfDep``): the request
must carry the session's token in the ``csrf_token`` form field or the
``X-CSRF-Token`` header, else 403 before the route runs. Templates read the
token as ``request.state.csrf_token``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from monitor.config import Settings
from monitor.db import read_only
from monitor.errors import UserError
from monitor.models import Campaign, Role, User
from monitor.services.campaigns import campaigns_of, get_campaign, pick_campaign, role_in
from monitor.services.escalation import LEADS, open_escalation_count
from monitor.services.placements import Scope, scope_for
from monitor.services.sessions import load_session, tokens_match
from monitor.services.takedown import open_takedown_count
from monitor.services.users import role_at_least

SESSION_COOKIE = "hm_session"
LOGIN_CSRF_COOKIE = "hm_login"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        # Templates reading live figures (the staff navigation) use the request's own
        # session: a second one would wait on this one's SQLite write lock.
        request.state.db_session = session
        yield session


def _read_session(request: Request) -> Iterator[Session]:
    """A session that only reads: on SQLite it holds no write lock while a response is sent."""
    with Session(read_only(request.app.state.engine), expire_on_commit=False) as session:
        request.state.db_session = session
        yield session


def _templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
#: For routes that never write (the public gallery, health checks).
ReadSessionDep = Annotated[Session, Depends(_read_session)]
TemplatesDep = Annotated[Jinja2Templates, Depends(_templates)]


@dataclasses.dataclass(frozen=True, slots=True)
class Visitor:
    """A public page request: no login, a read-only database session, and the campaign
    whose gallery it is (``/c/<slug>/...``; the unprefixed routes: the default one)."""

    request: Request
    session: Session
    settings: Settings
    templates: Jinja2Templates
    campaign: Campaign
    scope: Scope
    #: The campaign's path prefix: "" for the default campaign, else ``/c/<slug>``.
    prefix: str

    @property
    def campaign_id(self) -> int | None:
        """The campaign a public query filters on (None: the install has only this one)."""
        return None if self.scope.alone else self.scope.campaign_id


def public_campaign(request: Request, session: Session, settings: Settings) -> Campaign:
    """The campaign a public route shows (its ``slug`` path parameter; none: the default
    campaign): 404 for an unknown one, 410 for an archived one."""
    try:
        campaign = get_campaign(session, settings, request.path_params.get("slug"))
    except UserError:
        raise HTTPException(status_code=404, detail="There is no gallery here.") from None
    if campaign.archived_at is not None:
        raise HTTPException(
            status_code=410, detail="This campaign has finished and its gallery is closed."
        )
    return campaign


def _visitor(
    request: Request, session: ReadSessionDep, settings: SettingsDep, templates: TemplatesDep
) -> Visitor:
    campaign = public_campaign(request, session, settings)
    prefix = "" if request.path_params.get("slug") is None else f"/c/{campaign.slug}"
    return Visitor(
        request, session, settings, templates, campaign, scope_for(session, campaign), prefix
    )


PublicPage = Annotated[Visitor, Depends(_visitor)]


#: The largest id a 64-bit integer column holds; larger numbers name no row at all.
MAX_ROW_ID = 2**63 - 1


def parse_row_id(value: str) -> int | None:
    """A row id from a form field or query parameter, or None when it is not one."""
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    number = int(value)
    return number if number <= MAX_ROW_ID else None


#: Bulk decisions post one field per selected post; the route refuses more than it allows.
MAX_FORM_FIELDS = 5000


def client_address(request: Request) -> str:
    """The peer address (uvicorn applies trusted proxy headers before we see it)."""
    return request.client.host if request.client else "unknown"


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


#: Where a user whose password was reset may go before choosing a new one.
PASSWORD_PATH = "/account/password"
PASSWORD_CHANGE_PATHS = frozenset({PASSWORD_PATH, "/logout", "/auth/session"})


def _current_user(request: Request, session: SessionDep, settings: SettingsDep) -> User:
    login = load_session(
        session=session,
        cookie=request.cookies.get(SESSION_COOKIE),
        secret=settings.ensure_secret_key(),
    )
    if login is None:
        if _wants_page(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            location = f"/login?next={quote(target, safe='')}"
            raise HTTPException(status_code=303, headers={"Location": location})
        raise HTTPException(status_code=401, detail="Your session has ended: log in again.")
    request.state.user = login.user
    request.state.csrf_token = login.web_session.csrf_token
    request.state.web_session = login.web_session
    if login.user.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        # A reset password is one-time: it opens the change form and nothing else.
        if _wants_page(request):
            raise HTTPException(status_code=303, headers={"Location": PASSWORD_PATH})
        raise HTTPException(status_code=403, detail="Choose a new password first.")
    return login.user


CurrentUser = Annotated[User, Depends(_current_user)]


def require_role(needed: Role) -> Callable[[User], User]:
    """A dependency that lets through users with at least ``needed``'s rights."""

    def dependency(user: CurrentUser) -> User:
        if not role_at_least(user.role, needed):
            raise HTTPException(
                status_code=403,
                detail=f"This needs the {needed.value} role; you are signed in as a {user.role}.",
            )
        return user

    return dependency


ViewerUser = Annotated[User, Depends(require_role(Role.VIEWER))]
ModeratorUser = Annotated[User, Depends(require_role(Role.MODERATOR))]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]


async def require_csrf(request: Request, _user: CurrentUser) -> None:
    """Refuse a state change whose CSRF token is missing or not this session's."""
    given = request.headers.get("x-csrf-token")
    content_type = request.headers.get("content-type", "")
    if given is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form(max_fields=MAX_FORM_FIELDS)).get("csrf_token")
        given = value if isinstance(value, str) else None
    if not tokens_match(getattr(request.state, "csrf_token", None), given):
        raise HTTPException(
            status_code=403,
            detail="Missing or wrong security token: reload the page and try again.",
        )


CsrfDep = Annotated[None, Depends(require_csrf)]


@dataclasses.dataclass(frozen=True, slots=True)
class Staff:
    """A staff request as a route works with it: who asked (role already checked), the
    request (for flash messages and the app), the database session, settings, templates."""

    request: Request
    user: User
    session: Session
    settings: Settings
    templates: Jinja2Templates


def _signed_in(user: User) -> User:
    return user


class _StaffDependency:
    """Resolves a :class:`Staff` whose user passes ``check``; ``change`` adds the CSRF check.

    The role is checked before the token, as separate ``AdminUser`` and ``CsrfDep``
    parameters would be, so a viewer posting an admin form is told about the role.
    """

    def __init__(self, check: Callable[[User], User], *, change: bool) -> None:
        self.check_role = check
        self.change = change

    async def __call__(
        self,
        request: Request,
        user: CurrentUser,
        session: SessionDep,
        settings: SettingsDep,
        templates: TemplatesDep,
    ) -> Staff:
        self.check_role(user)
        if self.change:
            await require_csrf(request, user)
        return Staff(request, user, session, settings, templates)


@dataclasses.dataclass(frozen=True, slots=True)
class CampaignStaff(Staff):
    """A staff request about one campaign's posts: the campaign this login works on, the
    user's role in it (already checked) and its :class:`Scope` for the queries."""

    campaign: Campaign
    role: Role
    scope: Scope
    #: Every campaign the user has a role in (the queue's campaign switcher).
    campaigns: list[Campaign]


class _CampaignStaffDependency:
    """Resolves a :class:`CampaignStaff` whose role in the login's current campaign is at
    least ``needed``; ``change`` adds the CSRF check.

    The campaign is the one the login chose (``/queue/campaign``), else the user's first:
    never one named by the request, so no id, cursor or form field can reach into a
    campaign the user has no role in.
    """

    def __init__(self, needed: Role | tuple[Role, ...], *, change: bool) -> None:
        #: A role: that role or a higher one; a tuple: one of those roles by name (the
        #: escalations are safeguarding leads', not the rank above a moderator's).
        self.needed = needed
        self.change = change

    def _allows(self, role: Role) -> bool:
        if isinstance(self.needed, tuple):
            return role in self.needed
        return role_at_least(role, self.needed)

    async def __call__(
        self,
        request: Request,
        user: CurrentUser,
        session: SessionDep,
        settings: SettingsDep,
        templates: TemplatesDep,
    ) -> CampaignStaff:
        mine = campaigns_of(session, settings, user)
        campaign = pick_campaign(mine, request.state.web_session.campaign_id)
        role = role_in(session, user, campaign) if campaign is not None else None
        if campaign is None or role is None or not self._allows(role):
            held = f"a {role}" if role else "not a member"
            where = f" in campaign {campaign.slug!r}" if campaign is not None else ""
            needed = self.needed if isinstance(self.needed, tuple) else (self.needed,)
            raise HTTPException(
                status_code=403,
                detail=f"This needs the {' or '.join(needed)} role; you are {held}{where}.",
            )
        if self.change:
            await require_csrf(request, user)
        scope = scope_for(session, campaign)
        # The staff navigation's counts are this campaign's (see nav_counts).
        request.state.scope, request.state.role = scope, role
        return CampaignStaff(
            request, user, session, settings, templates,
            campaign=campaign, role=role, scope=scope, campaigns=mine,
        )  # fmt: skip


#: The queue: pages for a campaign's viewers and up, changes by its moderators and up.
QueuePage = Annotated[CampaignStaff, Depends(_CampaignStaffDependency(Role.VIEWER, change=False))]
QueueChange = Annotated[
    CampaignStaff, Depends(_CampaignStaffDependency(Role.MODERATOR, change=True))
]
#: Pages (for viewers and up, admins, safeguarding leads) and state changes (CSRF-checked:
#: by moderators and up, admins, leads).
ViewerPage = Annotated[Staff, Depends(_StaffDependency(require_role(Role.VIEWER), change=False))]
AdminPage = Annotated[Staff, Depends(_StaffDependency(require_role(Role.ADMIN), change=False))]
#: A campaign's own settings (its gallery's look): its admins' (and install admins').
CampaignAdminPage = Annotated[
    CampaignStaff, Depends(_CampaignStaffDependency(Role.ADMIN, change=False))
]
CampaignAdminChange = Annotated[
    CampaignStaff, Depends(_CampaignStaffDependency(Role.ADMIN, change=True))
]
#: The escalations of a campaign's posts: its safeguarding leads' (and admins').
LeadPage = Annotated[CampaignStaff, Depends(_CampaignStaffDependency(LEADS, change=False))]
ModeratorChange = Annotated[
    Staff, Depends(_StaffDependency(require_role(Role.MODERATOR), change=True))
]
AdminChange = Annotated[Staff, Depends(_StaffDependency(require_role(Role.ADMIN), change=True))]
LeadChange = Annotated[CampaignStaff, Depends(_CampaignStaffDependency(LEADS, change=True))]
#: Pages and changes of one's own account, for anyone logged in.
AccountPage = Annotated[Staff, Depends(_StaffDependency(_signed_in, change=False))]
AccountChange = Annotated[Staff, Depends(_StaffDependency(_signed_in, change=True))]


def nav_counts(request: Request) -> dict[str, int]:
    """Open takedowns (and, for leads, open escalations) for the staff navigation: read
    live on every page, from two small indexed counts, once a request. They are those
    of the campaign the page is about (its staff dependency's scope and the user's role
    there), else the install's."""
    counted: dict[str, int] | None = getattr(request.state, "nav_counts", None)
    if counted is not None:
        return counted
    user = getattr(request.state, "user", None)
    session = getattr(request.state, "db_session", None)
    if user is None or session is None:
        return {}
    scope = getattr(request.state, "scope", None)
    counts = {"takedowns": open_takedown_count(session, scope)}
    if getattr(request.state, "role", user.role) in LEADS:
        counts["escalations"] = open_escalation_count(session, scope)
    request.state.nav_counts = counts
    return counts


def campaign_role(request: Request) -> str | None:
    """The user's role in the campaign a page is about (None: not a campaign's page), for
    the staff navigation: a campaign's admins reach its gallery look and its settings."""
    role: Role | None = getattr(request.state, "role", None)
    return None if role is None else role.value
