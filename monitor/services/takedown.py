"""Takedown requests from the public: no account, no cookie, on the record, first in line.

A request flags the post, puts it in the queue's *Takedown requests* tab (which
every staff page links to with a live count, whatever the post's status) and
writes an audit event. In a safeguarding category (:data:`SAFEGUARDING_CATEGORIES`)
it also holds the post off every public route at once, pending review, unless
the ``TAKEDOWN_HIDES`` policy (an admin switch over the setting) is off. The
safeguarding contacts are alerted after the commit (:mod:`monitor.services.alerts`).

Abuse is bounded by rate limits: per client address, per network (an IPv6 /64
or an IPv4 /24, so one host cannot rotate through its own addresses) and for
the whole form (a flood from many addresses). Addresses are stored only as
keyed hashes. The form carries a signed, time-limited token (:mod:`monitor.signing`)
instead of a session cookie. A moderator resolves each request (keep published, or take
down), on the record.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import (
    AlertKind,
    AuditEvent,
    Campaign,
    Post,
    PostStatus,
    TakedownCategory,
    TakedownOutcome,
    TakedownRequest,
    utcnow,
)
from monitor.services import audit
from monitor.services.alerts import protective_change
from monitor.services.app_settings import get_app_setting, set_app_setting
from monitor.services.audit import Action
from monitor.services.campaigns import require_post_moderator
from monitor.services.placements import Scope, status_in
from monitor.services.public import is_public
from monitor.signing import BadToken, Use, sign, unsign

TOKEN_TTL_SECONDS = 2 * 3600
_TOKEN_TTL = timedelta(seconds=TOKEN_TTL_SECONDS)
#: Requests one client address may send in :data:`RATE_WINDOW`.
MAX_REQUESTS_PER_WINDOW = 5
#: Requests one network (IPv6 /64, IPv4 /24) may send in :data:`RATE_WINDOW`.
MAX_NETWORK_REQUESTS_PER_WINDOW = 15
#: Requests the whole form takes in :data:`RATE_WINDOW`, from everyone together.
MAX_ALL_REQUESTS_PER_WINDOW = 300
RATE_WINDOW = timedelta(hours=1)
MAX_DETAILS_CHARS = 2000
MAX_CONTACT_CHARS = 320
PUBLIC_ACTOR = "public"
#: What the form offers and a moderator reads, for each category.
CATEGORIES = {
    TakedownCategory.SHOWS_ME_OR_MY_CHILD: "It shows me or my child",
    TakedownCategory.PERSONAL_INFORMATION: "It shares personal information",
    TakedownCategory.ABUSIVE_OR_MISLEADING: "It is abusive, offensive or misleading",
    TakedownCategory.MY_CONTENT: "It uses my photo or words without my permission",
    TakedownCategory.OTHER: "Another reason",
}
#: Categories where the person asking may be at risk: the post is held off public routes.
SAFEGUARDING_CATEGORIES = frozenset(
    {
        TakedownCategory.SHOWS_ME_OR_MY_CHILD,
        TakedownCategory.PERSONAL_INFORMATION,
        TakedownCategory.MY_CONTENT,
    }
)
#: The admin policy switch over ``TAKEDOWN_HIDES`` (an app setting, audited).
TAKEDOWN_HIDES_SETTING = "takedown_hides"
OUTCOMES = {TakedownOutcome.KEPT: "kept published", TakedownOutcome.TAKEN_DOWN: "taken down"}
#: Audit actions that bump a post's version only to protect it (a takedown, an
#: escalation): a reject made on the version before still goes through.
PROTECTIVE_ACTIONS = (Action.TAKEDOWN_REQUESTED, Action.ESCALATED)
_REASON_PREFIX = "takedown request: "
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class TakedownRefused(UserError):
    """The request cannot be accepted as sent; the message says what to do."""


class TooManyRequests(TakedownRefused):
    """This client address sent too many requests recently."""


def issue_token(secret: str, post_id: int, *, now: float | None = None) -> str:
    """The form's anti-forgery token: this post's id, signed with the time it was issued."""
    return sign(Use.TAKEDOWN_FORM, str(post_id), secret=secret, now=now)


def check_token(secret: str, token: str, post_id: int, *, now: float | None = None) -> None:
    """Accept a token we issued for this post within :data:`TOKEN_TTL_SECONDS`."""
    try:
        signed_for = unsign(Use.TAKEDOWN_FORM, token, secret=secret, max_age=_TOKEN_TTL, now=now)
    except BadToken as exc:
        if exc.expired:
            raise TakedownRefused("the form has expired; open the request form again") from None
        signed_for = None
    if signed_for != str(post_id):
        raise TakedownRefused("the form is not valid; open the request form again")


def client_key(secret: str, address: str) -> str:
    """A keyed hash of the client address: rate limits work, the address is not stored."""
    return hmac.new(secret.encode(), f"client\0{address}".encode(), hashlib.sha256).hexdigest()


def network_key(secret: str, address: str) -> str:
    """A keyed hash of the address's network: an IPv6 /64 (what one host or household
    gets) or an IPv4 /24; anything unparsable counts as its own network."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return client_key(secret, f"net\0{address}")
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    prefix = 64 if parsed.version == 6 else 24
    network = ipaddress.ip_network(f"{parsed}/{prefix}", strict=False)
    return client_key(secret, f"net\0{network}")


def find_reportable(
    session: Session, public_id: str, campaign_id: int | None = None
) -> Post | None:
    """The post behind a report link: its row id (the gallery's links) or its public id
    (``platform:external_id``, as in ``/gallery.json``). Only a post the public can see
    now can be reported: anything else (pending, rejected, removed, unknown, or held
    by an earlier request or escalated) is "not found", so the form never shows a
    post that is off the public routes, nor tells whether it exists."""
    public_id = public_id.strip()
    post: Post | None = None
    if public_id.isascii() and public_id.isdigit() and len(public_id) <= 18:
        post = session.get(Post, int(public_id))
    elif ":" in public_id and len(public_id) <= 600:
        platform, _, external_id = public_id.partition(":")
        post = session.exec(
            select(Post).where(Post.platform == platform, Post.external_id == external_id)
        ).first()
    if post is None or not is_public(post):
        return None
    if campaign_id is not None and status_in(session, post, campaign_id) != PostStatus.APPROVED:
        return None  # public on another campaign's gallery, not on this one
    return post


def takedown_hides(session: Session, settings: Settings) -> bool:
    """Whether a safeguarding request holds the post: the admin's switch, else the setting."""
    value = get_app_setting(session, TAKEDOWN_HIDES_SETTING)
    return value if isinstance(value, bool) else settings.takedown_hides


def set_takedown_hides(*, session: Session, hides: bool, actor: str) -> None:
    """The admin policy switch, audited like every setting."""
    set_app_setting(
        session, TAKEDOWN_HIDES_SETTING, hides, actor=actor, reason="takedown hiding policy"
    )


def _recent(session: Session, since: datetime, *conditions: sa.ColumnElement[bool]) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(TakedownRequest)
        .where(col(TakedownRequest.at) > since)
    )
    return int(session.execute(query.where(*conditions)).scalar_one())


def _check_rate(session: Session, client: str, network: str, now: datetime) -> None:
    since = now - RATE_WINDOW
    if (
        _recent(session, since, col(TakedownRequest.client_key) == client)
        >= MAX_REQUESTS_PER_WINDOW
    ):
        raise TooManyRequests("too many requests from your connection; please try again later")
    if (
        _recent(session, since, col(TakedownRequest.network_key) == network)
        >= MAX_NETWORK_REQUESTS_PER_WINDOW
    ):
        raise TooManyRequests("too many requests from your network; please try again later")
    if _recent(session, since) >= MAX_ALL_REQUESTS_PER_WINDOW:
        raise TooManyRequests("we are receiving very many requests; please try again in an hour")


def request_takedown(
    *,
    session: Session,
    settings: Settings,
    post: Post,
    category: str,
    details: str,
    contact: str,
    client: str,
    network: str,
    now: datetime | None = None,
) -> TakedownRequest:
    """Store a request, flag (and maybe hold) the post, queue the alert and audit it.

    ``client`` and ``network`` are :func:`client_key` and :func:`network_key`'s.
    """
    now = now or utcnow()
    try:
        kind = TakedownCategory(category)
    except ValueError:
        raise TakedownRefused("choose why the post should be removed") from None
    details = _clean(details)
    contact = _clean(contact)
    if len(details) > MAX_DETAILS_CHARS:
        raise TakedownRefused(f"please keep the details under {MAX_DETAILS_CHARS} characters")
    if len(contact) > MAX_CONTACT_CHARS:
        raise TakedownRefused(f"please keep the contact under {MAX_CONTACT_CHARS} characters")
    _check_rate(session, client, network, now)
    # Under the row lock, so a moderator's decision in flight sees this request's version.
    session.refresh(post, with_for_update=True)
    request = TakedownRequest(
        post_id=post.id,
        at=now,
        category=kind,
        details=details or None,
        contact=contact or None,
        client_key=client,
        network_key=network,
    )
    session.add(request)
    session.flush()
    hold = kind in SAFEGUARDING_CATEGORIES and takedown_hides(session, settings)
    reason = _REASON_PREFIX + CATEGORIES[kind]
    post.flagged = True
    post.flag_reasons = list(dict.fromkeys([*(post.flag_reasons or []), reason]))
    post.takedown_hold = post.takedown_hold or hold
    held = "held off the public gallery pending review" if hold else "still public"
    # An approval made without seeing this request is refused as stale; a reject is not
    # (see :func:`version_for_decision`).
    protective_change(
        session,
        settings,
        post=post,
        at=now,
        actor=PUBLIC_ACTOR,
        action=Action.TAKEDOWN_REQUESTED,
        reason=details or CATEGORIES[kind],
        detail={
            "request_id": request.id,
            "category": kind,
            "has_contact": bool(contact),
            "held": hold,
        },
        alert_kind=AlertKind.TAKEDOWN,
        headline=f"Takedown request: {CATEGORIES[kind]} (the post is {held})",
    )
    return request


def version_for_decision(session: Session, post_id: int, action: str, seen: int) -> int:
    """The version a decision should be checked against.

    A takedown request or an escalation bumps the version so that an approval made
    without seeing it is refused as stale. A rejection only makes the post safer, so
    when every change since ``seen`` was such a protective bump, it is checked
    against the current version instead and goes through.
    """
    if action != Action.REJECT:
        return seen
    return versions_for_rejects(session, {post_id: seen})[post_id]


def versions_for_rejects(session: Session, seen: Mapping[int, int]) -> dict[int, int]:
    """:func:`version_for_decision` for a bulk reject, in two queries."""
    if not seen:
        return {}
    query = sa.select(col(Post.id), col(Post.version)).where(col(Post.id).in_(list(seen)))
    current = {post_id or 0: version for post_id, version in session.execute(query)}
    stale = {pid: version for pid, version in seen.items() if current.get(pid, version) > version}
    protective: dict[int, set[int]] = {pid: set() for pid in stale}
    if stale:
        events = session.execute(
            sa.select(col(AuditEvent.post_id), col(AuditEvent.detail)).where(
                col(AuditEvent.post_id).in_(list(stale)),
                col(AuditEvent.action).in_(PROTECTIVE_ACTIONS),
            )
        )
        for post_id, detail in events:
            bumped = (detail or {}).get("version")
            if isinstance(bumped, int) and post_id is not None:
                protective[post_id].add(bumped)
    result = dict(seen)
    for post_id, version in stale.items():
        if set(range(version + 1, current[post_id] + 1)) <= protective[post_id]:
            result[post_id] = current[post_id]
    return result


def open_requests(session: Session, post_ids: list[int]) -> dict[int, list[TakedownRequest]]:
    """The unresolved requests of each post, oldest first (for the Takedown tab)."""
    found: dict[int, list[TakedownRequest]] = {post_id: [] for post_id in post_ids}
    if post_ids:
        query = (
            select(TakedownRequest)
            .where(
                col(TakedownRequest.post_id).in_(post_ids),
                col(TakedownRequest.resolved_at).is_(None),
            )
            .order_by(col(TakedownRequest.at))
        )
        for request in session.exec(query):
            found[request.post_id or 0].append(request)
    return found


def open_takedown_posts() -> sa.Select[int | None]:
    """Ids of posts with an unresolved request: the Takedown tab's filter."""
    return (
        sa.select(col(TakedownRequest.post_id))
        .where(col(TakedownRequest.resolved_at).is_(None))
        .distinct()
    )


def top_takedowns(
    session: Session, limit: int = 5, scope: Scope | None = None
) -> list[tuple[Post, TakedownRequest]]:
    """The posts waiting longest for a takedown review, each with its first open request:
    what every moderator of a campaign the post is in (``scope``) sees at the top."""
    first = (
        sa.select(
            col(TakedownRequest.post_id), sa.func.min(col(TakedownRequest.id)).label("first_id")
        )
        .where(col(TakedownRequest.resolved_at).is_(None))
        .group_by(col(TakedownRequest.post_id))
        .subquery()
    )
    rows = session.execute(
        sa.select(Post, TakedownRequest)
        .join(first, first.c.post_id == col(Post.id))
        .join(TakedownRequest, col(TakedownRequest.id) == first.c.first_id)
        .where(scope.contains() if scope is not None else sa.true())
        .order_by(col(TakedownRequest.at))
        .limit(limit)
    ).all()
    return [(post, request) for post, request in rows]


def open_takedown_count(session: Session, scope: Scope | None = None) -> int:
    """Posts waiting for a takedown review (of one campaign, ``scope``): the live count on
    every staff page."""
    if scope is None or scope.alone:
        query = sa.select(sa.func.count()).select_from(open_takedown_posts().subquery())
    else:
        query = (
            sa.select(sa.func.count())
            .select_from(Post.__table__)
            .where(col(Post.id).in_(open_takedown_posts()), scope.contains())
        )
    return int(session.execute(query).scalar_one())


def resolve_takedown(
    *,
    campaign: Campaign | None = None,
    session: Session,
    settings: Settings,
    post: Post,
    outcome: str,
    actor: str,
    note: str | None = None,
) -> int:
    """A moderator's review of every open request on ``post``; returns how many.

    *Keep published* lifts the hold and the takedown flags; *take down* rejects
    the post (it leaves every public route, its pinned media is erased) through
    the same :func:`~monitor.services.moderation.decide` as every rejection.
    """
    from monitor.services.moderation import decide  # decisions import this module

    try:
        verdict = TakedownOutcome(outcome)
    except ValueError:
        raise UserError("choose keep published or take down") from None
    requests = open_requests(session, [post.id or 0])[post.id or 0]
    if not requests:
        raise UserError(f"post {post.platform}:{post.external_id} has no open takedown request")
    note = " ".join((note or "").split())[:2000] or None
    categories = sorted({CATEGORIES[r.category] for r in requests})
    if verdict is TakedownOutcome.TAKEN_DOWN and post.status in (
        PostStatus.APPROVED,
        PostStatus.PENDING,
    ):
        reason = "Takedown request upheld: " + ", ".join(categories)
        decide(
            session=session,
            post=post,
            action=Action.REJECT,
            actor=actor,
            reason=f"{reason}: {note}" if note else reason,
            settings=settings,
            campaign=campaign,
            everywhere=True,  # off every campaign's gallery: safeguarding comes first
        )
    else:
        _require_reviewer(session, actor, post)
    now = utcnow()
    for request in requests:
        request.resolved_at, request.resolved_by, request.outcome = now, actor, verdict
        session.add(request)
    post.takedown_hold = False
    reasons = [r for r in post.flag_reasons or [] if not r.startswith(_REASON_PREFIX)]
    post.flag_reasons = reasons or None
    post.flagged = bool(reasons)
    session.add(post)
    audit.record(
        session,
        post=post,
        at=now,
        actor=actor,
        action=Action.TAKEDOWN_RESOLVED,
        reason=note or OUTCOMES[verdict],
        detail={"outcome": verdict, "requests": [r.id for r in requests]},
    )
    return len(requests)


def _require_reviewer(session: Session, actor: str, post: Post) -> None:
    """A moderator or admin of a campaign the post is in (any: a takedown is everyone's)."""
    require_post_moderator(session, actor, post.id or 0, "review takedowns")


def _clean(value: str) -> str:
    return _CONTROL_RE.sub("", value or "").strip()
