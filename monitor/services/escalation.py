"""Escalation to the safeguarding lead: a disclosure, or a child at risk.

Escalating (moderators and admins) takes the post off every public route for
good (``Post.escalated`` never goes back, whatever is decided later), bumps its
version so an approval in flight is refused as stale, alerts the safeguarding
contacts after the commit, and keeps the post and its evidence out of retention
purges until the escalation is closed. A safeguarding lead or an admin closes
it with an outcome. Every step is an audit row.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import AlertKind, CampaignPost, Escalation, Post, Role, utcnow
from monitor.services import audit
from monitor.services.alerts import protective_change
from monitor.services.audit import Action
from monitor.services.campaigns import roles_for_post
from monitor.services.placements import Scope
from monitor.services.users import get_active_user

MAX_TEXT_CHARS = 2000
ESCALATORS = (Role.MODERATOR, Role.ADMIN)
#: Who sees escalations and closes them.
LEADS = (Role.SAFEGUARDING, Role.ADMIN)


@dataclasses.dataclass(frozen=True, slots=True)
class EscalationView:
    escalation: Escalation
    post: Post | None


def _text(value: str | None, what: str) -> str:
    text = " ".join((value or "").split())
    if not text:
        raise UserError(f"give {what}")
    if len(text) > MAX_TEXT_CHARS:
        raise UserError(f"keep {what} under {MAX_TEXT_CHARS} characters")
    return text


def _require_role(
    session: Session, actor: str, roles: tuple[str, ...], doing: str, post: Post | None = None
) -> None:
    """``actor`` has one of ``roles``: in a campaign ``post`` is in, or install-wide."""
    user = get_active_user(session=session, name=actor)
    held = roles_for_post(session, user, post.id or 0) if post is not None else {user.role}
    if not held & set(roles):
        who = f"a {' and '.join(sorted(held))}" if held - {Role.NONE} else "not a member"
        where = " in this post's campaigns" if post is not None else ""
        raise UserError(f"{actor} is {who}{where}: only {' and '.join(roles)} users {doing}")


def open_escalation_post_ids() -> sa.Select[int | None]:
    """Posts with an open escalation: retention leaves them alone."""
    return sa.select(col(Escalation.post_id)).where(
        col(Escalation.closed_at).is_(None),
        col(Escalation.post_id).is_not(None),
    )


def escalate(
    *, session: Session, settings: Settings, post: Post, actor: str, reason: str | None
) -> Escalation:
    """Escalate one post (audited); refused when it already has an open escalation."""
    reason = _text(reason, "a reason for the safeguarding lead")
    _require_role(session, actor, ESCALATORS, "escalate", post)
    # Under the row lock: an approval in flight either commits first (and the post then
    # leaves the public routes here) or waits and finds its version stale.
    session.refresh(post, with_for_update=True)
    already = session.exec(
        select(Escalation).where(
            Escalation.post_id == post.id,
            col(Escalation.closed_at).is_(None),
        )
    ).first()
    if already is not None:
        raise UserError(f"post {post.platform}:{post.external_id} is already escalated")
    return _open(session, settings, post, actor, reason)


def escalate_automatically(
    *, session: Session, settings: Settings, post: Post, actor: str, reason: str
) -> Escalation | None:
    """Escalate a post an automatic check found (a known-image bank match): no person's
    role to check, the post already locked by the caller; None if already escalated."""
    already = session.exec(
        select(Escalation).where(
            Escalation.post_id == post.id,
            Escalation.closed_at.is_(None),  # type: ignore[union-attr]
        )
    ).first()
    if already is not None:
        return None
    return _open(session, settings, post, actor, _text(reason, "a reason"))


def _open(session: Session, settings: Settings, post: Post, actor: str, reason: str) -> Escalation:
    """Open the escalation, take the post off the public routes for good, and alert."""
    now = utcnow()
    escalation = Escalation(post_id=post.id, opened_at=now, opened_by=actor, reason=reason)
    session.add(escalation)
    session.flush()
    post.escalated = True
    protective_change(
        session,
        settings,
        post=post,
        at=now,
        actor=actor,
        action=Action.ESCALATED,
        reason=reason,
        detail={"escalation_id": escalation.id},
        alert_kind=AlertKind.ESCALATION,
        headline=f"Escalated to the safeguarding lead by {actor}: {reason}",
    )
    return escalation


def close_escalation(
    *, session: Session, escalation_id: int, actor: str, outcome: str | None
) -> Escalation:
    """Close an escalation with its outcome (safeguarding leads and admins); the post
    stays off the public routes, and retention applies to it again."""
    outcome = _text(outcome, "the outcome")
    escalation = session.get(Escalation, escalation_id, with_for_update=True)
    if escalation is None:
        raise UserError(f"no escalation {escalation_id}")
    # A lead of a campaign the post is in (its leads see it: list_escalations).
    post = session.get(Post, escalation.post_id) if escalation.post_id is not None else None
    _require_role(session, actor, LEADS, "close escalations", post)
    if escalation.closed_at is not None:
        raise UserError(f"escalation {escalation_id} was already closed by {escalation.closed_by}")
    now = utcnow()
    escalation.closed_at, escalation.closed_by, escalation.outcome = now, actor, outcome
    session.add(escalation)
    audit.record(
        session,
        post_id=escalation.post_id,
        at=now,
        actor=actor,
        action=Action.ESCALATION_CLOSED,
        reason=outcome,
        detail={"escalation_id": escalation.id},
    )
    return escalation


def list_escalations(
    session: Session, *, open_only: bool, limit: int = 200, scope: Scope | None = None
) -> list[EscalationView]:
    """Escalations of the posts in ``scope``'s campaign (None: every one), newest first,
    with their posts (a post may have been erased)."""
    query = select(Escalation).where(_in(scope))
    if open_only:
        query = query.where(col(Escalation.closed_at).is_(None))
    escalations = list(session.exec(query.order_by(col(Escalation.opened_at).desc()).limit(limit)))
    ids = [e.post_id for e in escalations if e.post_id is not None]
    posts = {post.id: post for post in session.exec(select(Post).where(col(Post.id).in_(ids)))}
    return [EscalationView(e, posts.get(e.post_id)) for e in escalations]


def open_escalation_count(session: Session, scope: Scope | None = None) -> int:
    """Open escalations of the posts in ``scope``'s campaign (None: every one)."""
    query = (
        sa.select(sa.func.count())
        .select_from(Escalation)
        .where(col(Escalation.closed_at).is_(None), _in(scope))
    )
    return int(session.execute(query).scalar_one())


def _in(scope: Scope | None) -> sa.ColumnElement[bool]:
    """Escalations of the posts in ``scope``'s campaign: each is its leads' to see (a post
    in two campaigns is both teams'); with one campaign, every one."""
    if scope is None or scope.alone:
        return sa.true()
    placed = CampaignPost.__table__
    return col(Escalation.post_id).in_(
        sa.select(placed.c.post_id).where(placed.c.campaign_id == scope.campaign_id)
    )
