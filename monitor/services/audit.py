"""Reading the audit trail: a post's history, and the admin log page by keyset."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlmodel import Session, select

from monitor.models import ModerationEvent

AUDIT_PAGE_SIZE = 100
#: A post's card shows at most this many of its latest events (the log page has them all).
HISTORY_PER_POST = 20


def post_histories(session: Session, post_ids: Sequence[int]) -> dict[int, list[ModerationEvent]]:
    """Each post's events, oldest first (the latest ``HISTORY_PER_POST`` of them)."""
    histories: dict[int, list[ModerationEvent]] = {post_id: [] for post_id in post_ids}
    if not post_ids:
        return histories
    # Ordered as the post_id index is, so the database walks it instead of the whole table.
    query = (
        select(ModerationEvent)
        .where(ModerationEvent.post_id.in_(list(post_ids)))  # type: ignore[union-attr]
        .order_by(ModerationEvent.post_id, ModerationEvent.id)
    )
    for event in session.exec(query):
        histories[event.post_id or 0].append(event)
    return {post_id: events[-HISTORY_PER_POST:] for post_id, events in histories.items()}


@dataclasses.dataclass(slots=True)
class AuditPage:
    events: list[ModerationEvent]
    #: Pass as ``before`` to read the next (older) page; None on the last page.
    next_before: int | None


def audit_log(
    session: Session,
    *,
    before: int | None = None,
    actor: str = "",
    action: str = "",
    post_id: int | None = None,
    limit: int = AUDIT_PAGE_SIZE,
) -> AuditPage:
    """Newest events first, optionally for one actor, action or post."""
    query = select(ModerationEvent).order_by(ModerationEvent.id.desc())  # type: ignore[union-attr]
    if before is not None:
        query = query.where(ModerationEvent.id < before)  # type: ignore[operator]
    if actor:
        query = query.where(ModerationEvent.actor == actor)
    if action:
        query = query.where(ModerationEvent.action == action)
    if post_id is not None:
        query = query.where(ModerationEvent.post_id == post_id)
    events = list(session.exec(query.limit(limit + 1)))
    more = len(events) > limit
    events = events[:limit]
    return AuditPage(events=events, next_before=events[-1].id if more and events else None)
