"""Keep personal data only as long as we may: retention and erasure on request.

Retention (``RETENTION_*_DAYS``) deletes posts by state and age, with their
hashtags, media rows, pinned files and engagement snapshots. The audit trail
keeps every decision (who, what, when, why) but loses the post's content: the
edit events' old and new text are blanked. Erasure removes everything held
about one author and remembers only a hash of the handle, so a later poll
brings their posts back flagged for a person to look at, never published.

Each campaign may keep posts longer or shorter than the install (its
``retention_*_days``; None: the install's setting). A post is in one or more
campaigns with a status in each, and goes only once **every** campaign holding it
would let it go: the most protective period wins, so force A's short periods never
delete what force B must keep. An approved post is never purged, in any campaign.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import (
    AuditEvent,
    Campaign,
    CampaignPost,
    ErasedAuthor,
    Post,
    PostStatus,
    utcnow,
)
from monitor.services import audit, decisions, engagement, rollup
from monitor.services.audit import Action
from monitor.services.escalation import open_escalation_post_ids
from monitor.services.ingest import SYSTEM_ACTOR, author_hash
from monitor.services.media import erase_after_commit

_BATCH = 500
#: The states a retention period applies to, as ``campaigns retention`` names them.
PERIODS = {
    PostStatus.REJECTED: "retention_rejected_days",
    PostStatus.PENDING: "retention_pending_days",
    PostStatus.REMOVED: "retention_removed_days",
}
MAX_DAYS = 36_500


@dataclasses.dataclass(frozen=True, slots=True)
class PurgeCandidate:
    post_id: int
    ref: str
    status: str


def periods_of(campaign: Campaign | None, settings: Settings) -> dict[PostStatus, int]:
    """Days a post is kept in each state: the campaign's own, else the install's."""
    install = {status: getattr(settings, field) for status, field in PERIODS.items()}
    if campaign is None:
        return install
    own = {status: getattr(campaign, field) for status, field in PERIODS.items()}
    return {status: install[status] if own[status] is None else own[status] for status in PERIODS}


def _would_go(
    status: sa.ColumnElement[str], days: Mapping[PostStatus, int], now: datetime
) -> sa.ColumnElement[bool]:
    """A post in ``status`` is past its period (``days``) at ``now``."""
    posts = Post.__table__
    events = AuditEvent.__table__
    rejected_at = (
        sa.select(sa.func.max(events.c.at))
        .where(events.c.post_id == posts.c.id, events.c.to_status == PostStatus.REJECTED)
        # The outer query's post, also from inside the placements' subquery.
        .correlate_except(events)
        .scalar_subquery()
    )
    rejected_since = sa.func.coalesce(rejected_at, posts.c.first_seen_at)
    cutoff = {state: now - timedelta(days=n) for state, n in days.items()}
    rejected, removed, pending = PostStatus.REJECTED, PostStatus.REMOVED, PostStatus.PENDING
    return sa.or_(
        sa.and_(status == rejected, rejected_since <= cutoff[rejected]),
        sa.and_(status == removed, posts.c.deleted_at <= cutoff[removed]),
        sa.and_(status == pending, posts.c.first_seen_at <= cutoff[pending]),
    )


def purge_candidates(session: Session, settings: Settings, now: datetime) -> list[PurgeCandidate]:
    """Posts every campaign holding them would let go (approved posts are never purged,
    nor is a post under an open escalation: it is evidence until the escalation is closed).

    A post in no campaign (stored by a tool) follows the install's periods and its own
    status; a post removed at source is removed in every campaign it is in.
    """
    posts = Post.__table__
    placed = CampaignPost.__table__
    in_each = sa.case((posts.c.status == PostStatus.REMOVED, posts.c.status), else_=placed.c.status)
    kept_by = [
        sa.and_(
            placed.c.campaign_id == campaign.id,
            sa.not_(_would_go(in_each, periods_of(campaign, settings), now)),
        )
        for campaign in session.exec(select(Campaign))
    ]
    placements = (
        sa.select(placed.c.post_id).where(placed.c.post_id == posts.c.id).correlate_except(placed)
    )
    kept_somewhere = placements.where(sa.or_(sa.false(), *kept_by))
    held = sa.and_(placements.exists(), sa.not_(kept_somewhere.exists()))
    alone = sa.and_(
        sa.not_(placements.exists()), _would_go(posts.c.status, periods_of(None, settings), now)
    )
    query = (
        sa.select(posts.c.id, posts.c.platform, posts.c.external_id, posts.c.status)
        .where(
            sa.or_(alone, held),
            posts.c.status != PostStatus.APPROVED,
            posts.c.id.not_in(open_escalation_post_ids()),
        )
        .order_by(posts.c.id)
    )
    return [
        PurgeCandidate(row.id, f"{row.platform}:{row.external_id}", row.status)
        for row in session.execute(query)
    ]


def candidates_by_campaign(
    session: Session, candidates: list[PurgeCandidate]
) -> dict[str, list[PurgeCandidate]]:
    """Campaign slug -> the candidates it holds (a post in two campaigns is in both; one
    in none is the default campaign's), for ``purge --dry-run``."""
    by_id = {c.post_id: c for c in candidates}
    campaigns = Campaign.__table__
    slugs = {int(row.id): str(row.slug) for row in session.execute(sa.select(campaigns))}
    defaults = session.exec(select(Campaign.slug).where(col(Campaign.is_default).is_(True)))
    default = next(iter(defaults), "default")
    found: dict[str, list[PurgeCandidate]] = {}
    placed: set[int] = set()
    ids = list(by_id)
    for start in range(0, len(ids), _BATCH):
        rows = session.execute(
            sa.select(CampaignPost.__table__.c.campaign_id, CampaignPost.__table__.c.post_id)
            .where(CampaignPost.__table__.c.post_id.in_(ids[start : start + _BATCH]))
            .order_by(CampaignPost.__table__.c.post_id)
        )
        for campaign_id, post_id in rows:
            found.setdefault(slugs.get(campaign_id, "?"), []).append(by_id[post_id])
            placed.add(post_id)
    for candidate in candidates:
        if candidate.post_id not in placed:
            found.setdefault(default, []).append(candidate)
    return found


def parse_periods(
    given: Mapping[PostStatus, str | None], *, blank_is_install: bool = False
) -> dict[PostStatus, int | None]:
    """Periods as people type them: a number of days, or ``install`` (the install's
    ``RETENTION_*`` again); a state given None is left as it is. A form sends every
    field, so there (``blank_is_install``) an empty one is the install's too."""
    periods: dict[PostStatus, int | None] = {}
    for status, value in given.items():
        if value is None:
            continue
        text = value.strip().lower()
        if text == "install" or (blank_is_install and not text):
            periods[status] = None
        elif text.isascii() and text.isdigit():
            periods[status] = int(text)
        else:
            hint = "leave it empty for the install's" if blank_is_install else "install"
            raise UserError(f"{status.value} days {value[:40]!r}: give a number of days, or {hint}")
    return periods


def set_campaign_retention(
    session: Session,
    campaign: Campaign,
    days: Mapping[PostStatus, int | None],
    *,
    actor: str,
) -> Campaign:
    """Set a campaign's own periods (None: the install's again), audited. Only the states
    in ``days`` change."""
    unknown = [status for status in days if status not in PERIODS]
    if unknown:
        raise UserError(f"no retention period for {', '.join(map(str, unknown))} posts")
    for value in days.values():
        if value is not None and not 0 <= value <= MAX_DAYS:
            raise UserError(f"a retention period is 0 to {MAX_DAYS} days, not {value}")
    before = {status.value: getattr(campaign, PERIODS[status]) for status in PERIODS}
    for status, value in days.items():
        setattr(campaign, PERIODS[status], value)
    session.add(campaign)
    session.flush()
    after = {status.value: getattr(campaign, PERIODS[status]) for status in PERIODS}
    if after != before:
        audit.record(
            session,
            actor=actor,
            action=Action.RETENTION_SET,
            reason=f"retention of campaign {campaign.slug}",
            detail={"campaign": campaign.slug, "from": before, "to": after},
            campaign_id=campaign.id,
        )
    return campaign


@dataclasses.dataclass(frozen=True, slots=True)
class Period:
    """One state's retention as a campaign's settings page shows it."""

    status: PostStatus
    #: The campaign's own days (None: it follows the install's).
    own: int | None
    #: The install's ``RETENTION_*`` days, which apply when ``own`` is None.
    install: int
    #: The setting's name, for people reading where the install's value comes from.
    setting: str


def campaign_periods(campaign: Campaign, settings: Settings) -> list[Period]:
    """Each state's period of ``campaign``: its own days beside the install's."""
    return [
        Period(status, getattr(campaign, field), getattr(settings, field), field.upper())
        for status, field in PERIODS.items()
    ]


def describe_periods(campaign: Campaign, settings: Settings) -> str:
    """The campaign's periods in one line, each marked when it is the install's."""
    own = {status: getattr(campaign, field) for status, field in PERIODS.items()}
    days = periods_of(campaign, settings)
    return ", ".join(
        f"{status.value} {days[status]} days{' (install)' if own[status] is None else ''}"
        for status in PERIODS
    )


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
