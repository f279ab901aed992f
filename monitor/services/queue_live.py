"""What changed under an open queue page since it was drawn, read from the database.

The page sends the posts it shows (id and version) and, when it shows the end of
its tab, where that end is. The answer says which of its posts someone else
decided or the platform changed (with who and what, in words), which now carry
an open takedown request, and which posts arrived after its end. The page then
marks cards in place and appends arrivals below: nothing above the moderator
moves, and nothing they typed is thrown away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.models import AuditEvent, Post, TakedownRequest
from monitor.services.audit import describe

#: Posts one answer reports on (a queue page shows fewer).
MAX_SHOWN = 200
#: Arrivals one answer appends; the rest come with the next answers or the next page.
MAX_ARRIVALS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class CardChange:
    post_id: int
    status: str
    version: int
    #: "alice approved it", "edited at source", ... (the latest event, in words).
    note: str


@dataclasses.dataclass(frozen=True, slots=True)
class QueueChanges:
    changed: list[CardChange]
    #: Shown posts with an open takedown request now.
    requested: list[int]
    #: Shown posts no longer in the database (erased, purged).
    gone: list[int]


def parse_shown(value: str) -> dict[int, int]:
    """``id:version,id:version`` as the page sends it; malformed items are skipped."""
    shown: dict[int, int] = {}
    for item in value.split(",")[:MAX_SHOWN]:
        post_id, _, version = item.strip().partition(":")
        if post_id.isdigit() and version.isdigit() and len(post_id) < 19 and len(version) < 19:
            shown[int(post_id)] = int(version)
    return shown


def queue_changes(session: Session, shown: Mapping[int, int]) -> QueueChanges:
    """Compare the page's versions with the stored ones, in three indexed queries."""
    if not shown:
        return QueueChanges([], [], [])
    posts, events, requests = Post.__table__, AuditEvent.__table__, TakedownRequest.__table__
    ids = sorted(shown)
    rows = session.execute(
        sa.select(posts.c.id, posts.c.status, posts.c.version).where(posts.c.id.in_(ids))
    ).all()
    present = {row.id: row for row in rows}
    moved = [row for row in rows if row.version != shown[row.id]]
    notes: dict[int, str] = {}
    if moved:
        latest = (
            sa.select(sa.func.max(events.c.id))
            .where(events.c.post_id.in_([row.id for row in moved]))
            .group_by(events.c.post_id)
        )
        for event in session.exec(
            select(AuditEvent).where(AuditEvent.id.in_(latest))  # type: ignore[union-attr]
        ):
            notes[event.post_id or 0] = f"{event.actor}: {describe(event)}"
    changed = [
        CardChange(row.id, row.status, row.version, notes.get(row.id, "changed")) for row in moved
    ]
    requested = sorted(
        session.execute(
            sa.select(requests.c.post_id)
            .where(requests.c.post_id.in_(ids), requests.c.resolved_at.is_(None))
            .distinct()
        ).scalars()
    )
    gone = [post_id for post_id in ids if post_id not in present]
    return QueueChanges(changed, requested, gone)
