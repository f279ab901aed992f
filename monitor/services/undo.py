"""Undo: a moderator takes back their own last decision, for a few minutes.

A mistaken approval on campaign day must be reversible at once, by the person who
made it, without an admin: an approval undone leaves every public route in the
same transaction. Only the decision is undone (the post goes back to the status
it had), and only while nothing else happened to the post since: another
decision, an undo, or a change at source each end the chance. The undo is an
audit row of its own; the decision it reverses stays on the record.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from monitor.errors import UserError
from monitor.models import AuditEvent, Post, PostStatus, utcnow
from monitor.services import placements
from monitor.services.audit import DECISIONS, Action
from monitor.services.moderation import DecisionResult, change_status, describe_for_people

#: How long after a decision its maker may still undo it.
UNDO_WINDOW = timedelta(minutes=5)
#: Events after a decision that make undoing it wrong: the post moved on.
_ENDS_UNDO = (*DECISIONS, Action.UNDO, Action.EDITED_AT_SOURCE, Action.DELETED_AT_SOURCE)


@dataclasses.dataclass(frozen=True, slots=True)
class Undoable:
    """A decision its maker can still take back, as the queue offers it."""

    event_id: int
    post_id: int
    action: Action
    at: datetime
    post_label: str


def last_undoable(session: Session, actor: str, now: datetime | None = None) -> Undoable | None:
    """``actor``'s latest decision if it can still be undone, else None."""
    now = now or utcnow()
    event = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.actor == actor,
            col(AuditEvent.action).in_(DECISIONS),
            AuditEvent.at >= now - UNDO_WINDOW,
        )
        # By time first: the planner then walks the (small) recent end of the ``at`` index
        # instead of every audit row from the newest id down.
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    if event is None or event.post_id is None:
        return None
    post = session.get(Post, event.post_id)
    if post is None or not _still_as_decided(session, event, post):
        return None
    return Undoable(
        event.id or 0, post.id or 0, Action(event.action), event.at, describe_for_people(post)
    )


def _status_now(session: Session, event: AuditEvent, post: Post) -> PostStatus | None:
    """The post's status where ``event`` decided it: its campaign, or the post's own."""
    if event.campaign_id is None:
        return post.status
    return placements.status_in(session, post, event.campaign_id)


def _still_as_decided(session: Session, event: AuditEvent, post: Post) -> bool:
    if _status_now(session, event, post) != event.to_status or event.from_status is None:
        return False
    later = session.exec(
        select(AuditEvent.id)
        .where(
            AuditEvent.post_id == post.id,
            col(AuditEvent.id) > (event.id or 0),
            col(AuditEvent.action).in_(_ENDS_UNDO),
        )
        .limit(1)
    ).first()
    return later is None


def undo_decision(
    *, session: Session, actor: str, event_id: int, campaign_id: int | None = None
) -> DecisionResult:
    """Reverse decision ``event_id`` if it is ``actor``'s, made in campaign ``campaign_id``
    (None: any), and still undoable; audited."""
    event = session.get(AuditEvent, event_id)
    if event is None or event.actor != actor or event.action not in DECISIONS:
        raise UserError("there is no decision of yours to undo")
    if campaign_id is not None and event.campaign_id not in (None, campaign_id):
        raise UserError("there is no decision of yours to undo")
    post = session.get(Post, event.post_id) if event.post_id is not None else None
    if post is None:
        raise UserError("the post of that decision is gone")
    session.refresh(post, with_for_update=True)  # a concurrent decision waits, then sees ours
    if utcnow() - event.at > UNDO_WINDOW:
        minutes = int(UNDO_WINDOW.total_seconds() // 60)
        raise UserError(f"a decision can be undone for {minutes} minutes only")
    if not _still_as_decided(session, event, post):
        raise UserError(
            f"{describe_for_people(post)} changed after your decision; review it again instead"
        )
    restored = event.from_status or PostStatus.PENDING
    return change_status(
        session,
        post,
        restored,
        actor=actor,
        action=Action.UNDO,
        reason=f"undid {event.action}",
        detail={"undid_event": event.id},
        campaign_id=event.campaign_id,
        from_status=event.to_status,
    )
