"""Keep personal data only as long as we may: retention and erasure on request.

Retention (``RETENTION_*_DAYS``) deletes posts by state and age, with their
hashtags, media rows, pinned files and engagement snapshots. The audit trail
keeps every decision (who, what, when, why) but loses the post's content: the
edit events' old and new text are blanked. Erasure removes everything held
about one author and remembers only a hash of the handle, so a later poll
brings their posts back flagged for a person to look at, never published.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from monitor.config import Settings
from monitor.models import AuditEvent, ErasedAuthor, Post, PostStatus, utcnow
from monitor.services import audit, decisions, engagement, rollup
from monitor.services.audit import Action
from monitor.services.escalation import open_escalation_post_ids
from monitor.services.ingest import SYSTEM_ACTOR, author_hash
from monitor.services.media import erase_after_commit

_BATCH = 500


@dataclasses.dataclass(frozen=True, slots=True)
class PurgeCandidate:
    post_id: int
    ref: str
    status: str


def purge_candidates(session: Session, settings: Settings, now: datetime) -> list[PurgeCandidate]:
    """Posts past their state's retention period (approved posts are never purged, nor
    is a post under an open escalation: it is evidence until the escalation is closed)."""
    posts = Post.__table__
    events = AuditEvent.__table__
    rejected_at = (
        sa.select(sa.func.max(events.c.at))
        .where(events.c.post_id == posts.c.id, events.c.to_status == PostStatus.REJECTED)
        .scalar_subquery()
    )
    rejected_since = sa.func.coalesce(rejected_at, posts.c.first_seen_at)
    cutoff = {
        PostStatus.REJECTED: now - timedelta(days=settings.retention_rejected_days),
        PostStatus.REMOVED: now - timedelta(days=settings.retention_removed_days),
        PostStatus.PENDING: now - timedelta(days=settings.retention_pending_days),
    }
    rejected, removed, pending = PostStatus.REJECTED, PostStatus.REMOVED, PostStatus.PENDING
    query = (
        sa.select(posts.c.id, posts.c.platform, posts.c.external_id, posts.c.status)
        .where(
            sa.or_(
                sa.and_(posts.c.status == rejected, rejected_since <= cutoff[rejected]),
                sa.and_(posts.c.status == removed, posts.c.deleted_at <= cutoff[removed]),
                sa.and_(posts.c.status == pending, posts.c.first_seen_at <= cutoff[pending]),
            ),
            posts.c.id.not_in(open_escalation_post_ids()),
        )
        .order_by(posts.c.id)
    )
    return [
        PurgeCandidate(row.id, f"{row.platform}:{row.external_id}", row.status)
        for row in session.execute(query)
    ]


def _delete_posts(session: Session, post_ids: list[int]) -> None:
    """Delete posts (cascading to tags, media, snapshots) and blank their events' content."""
    events = AuditEvent.__table__
    for start in range(0, len(post_ids), _BATCH):
        chunk = post_ids[start : start + _BATCH]
        session.execute(sa.update(events).where(events.c.post_id.in_(chunk)).values(detail=None))
        with rollup.tracking(session, chunk):
            engagement.forget_posts(session.connection(), chunk)
            decisions.forget_posts(session.connection(), chunk)
            session.execute(sa.delete(Post.__table__).where(Post.__table__.c.id.in_(chunk)))


def purge(*, session: Session, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Apply retention now; returns how many posts went, per state."""
    now = now or utcnow()
    candidates = purge_candidates(session, settings, now)
    counts: dict[str, int] = {}
    for candidate in candidates:
        counts[candidate.status] = counts.get(candidate.status, 0) + 1
    if candidates:
        _delete_posts(session, [c.post_id for c in candidates])
        audit.record(
            session,
            at=now,
            actor=SYSTEM_ACTOR,
            action=Action.RETENTION_PURGE,
            detail={"deleted": counts},
        )
        erase_after_commit(session, settings)
    return counts


def _handle_variants(handle: str) -> set[str]:
    handle = handle.strip()
    return {handle, handle if handle.startswith("@") else f"@{handle}"}


def _by_author(platform: str, handle: str) -> sa.ColumnElement[bool]:
    posts = Post.__table__
    variants = _handle_variants(handle)
    return sa.and_(
        posts.c.platform == platform,
        sa.func.lower(posts.c.author_handle).in_([v.lower() for v in variants]),
    )


def kept_for_escalation(*, session: Session, platform: str, handle: str) -> int:
    """Posts by this author that erasure keeps because an escalation on them is open."""
    posts = Post.__table__
    query = sa.select(sa.func.count()).where(
        _by_author(platform, handle), posts.c.id.in_(open_escalation_post_ids())
    )
    return int(session.execute(query).scalar_one())


def erase_author(
    *, session: Session, settings: Settings, platform: str, handle: str, actor: str
) -> int:
    """Erase everything held about one author on one platform; returns posts erased.

    A post under an open escalation is kept: it is safeguarding evidence (a lawful
    exception to erasure) until the escalation is closed. :func:`kept_for_escalation`
    says how many such posts an erasure left.
    """
    posts = Post.__table__
    by_author = _by_author(platform, handle)
    post_ids = list(
        session.execute(
            sa.select(posts.c.id).where(by_author, posts.c.id.not_in(open_escalation_post_ids()))
        ).scalars()
    )
    variants = _handle_variants(handle)
    _delete_posts(session, post_ids)
    now = utcnow()
    for variant in variants:
        digest = author_hash(platform, variant)
        if session.get(ErasedAuthor, (platform, digest)) is None:
            session.add(ErasedAuthor(platform=platform, handle_hash=digest, erased_at=now))
    audit.record(
        session,
        at=now,
        actor=actor,
        action=Action.AUTHOR_ERASED,
        reason="erasure request",
        detail={"platform": platform, "posts": len(post_ids)},
    )
    erase_after_commit(session, settings)
    return len(post_ids)
