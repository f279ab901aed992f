"""Takedown requests from the public: no account, no cookie, on the record.

A request hides nothing by itself (a stranger must not be able to unpublish
anyone's post); it flags the post, which puts it at the top of the moderators'
queue, and writes an audit event. The form carries a signed, time-limited
token (:mod:`monitor.signing`) instead of a session cookie, and each client address may
send only a few requests an hour (stored as a keyed hash, not the address).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from monitor.errors import UserError
from monitor.models import ModerationEvent, Post, PostStatus, TakedownRequest, utcnow
from monitor.signing import BadToken, Use, sign, unsign

TOKEN_TTL_SECONDS = 2 * 3600
_TOKEN_TTL = timedelta(seconds=TOKEN_TTL_SECONDS)
#: Requests one client address may send in :data:`RATE_WINDOW`.
MAX_REQUESTS_PER_WINDOW = 5
RATE_WINDOW = timedelta(hours=1)
MAX_DETAILS_CHARS = 2000
MAX_CONTACT_CHARS = 320
PUBLIC_ACTOR = "public"
CATEGORIES = {
    "shows_me_or_my_child": "It shows me or my child",
    "personal_information": "It shares personal information",
    "abusive_or_misleading": "It is abusive, offensive or misleading",
    "my_content": "It uses my photo or words without my permission",
    "other": "Another reason",
}
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


def reportable_post(session: Session, post_id: int) -> Post | None:
    """The post if the public can see it (approved); anything else is not found."""
    post = session.get(Post, post_id)
    return post if post is not None and post.status == PostStatus.APPROVED else None


def request_takedown(
    *,
    session: Session,
    post: Post,
    category: str,
    details: str,
    contact: str,
    client: str,
    now: datetime | None = None,
) -> TakedownRequest:
    """Store a request, flag the post and audit it; ``client`` is :func:`client_key`'s."""
    now = now or utcnow()
    if category not in CATEGORIES:
        raise TakedownRefused("choose why the post should be removed")
    details = _clean(details)
    contact = _clean(contact)
    if len(details) > MAX_DETAILS_CHARS:
        raise TakedownRefused(f"please keep the details under {MAX_DETAILS_CHARS} characters")
    if len(contact) > MAX_CONTACT_CHARS:
        raise TakedownRefused(f"please keep the contact under {MAX_CONTACT_CHARS} characters")
    recent = session.execute(
        sa.select(sa.func.count())
        .select_from(TakedownRequest)
        .where(TakedownRequest.client_key == client, TakedownRequest.at > now - RATE_WINDOW)
    ).scalar_one()
    if recent >= MAX_REQUESTS_PER_WINDOW:
        raise TooManyRequests("too many requests from your connection; please try again later")
    request = TakedownRequest(
        post_id=post.id,
        at=now,
        category=category,
        details=details or None,
        contact=contact or None,
        client_key=client,
    )
    session.add(request)
    session.flush()
    reason = f"takedown request: {CATEGORIES[category]}"
    reasons = list(post.flag_reasons or [])
    if reason not in reasons:
        reasons.append(reason)
    post.flagged = True
    post.flag_reasons = reasons
    # A moderator looking at the post without this request must review it again.
    post.version += 1
    session.add(post)
    session.add(
        ModerationEvent(
            post_id=post.id,
            at=now,
            actor=PUBLIC_ACTOR,
            action="takedown_requested",
            from_status=post.status,
            to_status=post.status,
            reason=details or CATEGORIES[category],
            detail={"request_id": request.id, "category": category, "has_contact": bool(contact)},
        )
    )
    return request


def _clean(value: str) -> str:
    return _CONTROL_RE.sub("", value or "").strip()
