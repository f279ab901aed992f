"""What the public may see right now, and what changed since the last look.

The live wall, the embed and the event screen follow the database, not calls
made inside this process: a ``serve`` replica, the CLI or the scheduler may be
the one that approved, paused or held a post. So each web process reads a
cheap fingerprint (:func:`fingerprint`) a few times a second, and on a change
(or every few seconds anyway, for a transaction that committed out of id
order) takes a :func:`snapshot` of the public set and :func:`diff` s it with the
last one. One reader per process serves every open wall.

The event screen shows a post only ``screen_delay`` after it became public
(:func:`screen_view`), so a mistake undone within the delay never reaches the
room; removals reach it at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.models import (
    AppSetting,
    AuditEvent,
    CampaignPost,
    Post,
    PostHashtag,
    PostStatus,
    TakedownRequest,
)
from monitor.services.app_settings import (
    GALLERY_PAUSED,
    gallery_paused,
    get_app_setting,
    paused_campaigns,
)
from monitor.services.audit import Action
from monitor.services.public import publicly_visible

#: The app setting an admin sets on the admin page; ``SCREEN_DELAY_SECONDS`` is its default.
SCREEN_DELAY = "screen_delay_seconds"
MAX_SCREEN_DELAY_SECONDS = 86_400
#: Events after which a post may have become public: its time is the post's "public since".
_PUBLISHING_ACTIONS = (Action.APPROVE.value, Action.UNDO.value, Action.TAKEDOWN_RESOLVED.value)
#: A post already public when a process first looks has been public "for ever".
LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class PublicPost:
    """One post as the public sees it: enough to tell a change and to delay the screen."""

    id: int
    ref: str
    version: int
    #: When it became public (its latest approving event), for the screen delay and latency.
    since: datetime
    platform: str
    hashtags: frozenset[str]
    #: The campaigns whose gallery shows it (empty: a post in no campaign, the default's).
    campaigns: frozenset[int] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    #: The install's kill switch: every wall is blank.
    paused: bool
    posts: Mapping[int, PublicPost]
    #: The screen delay in force when the snapshot was taken.
    screen_delay: timedelta
    #: When app settings (looks, pins, delay) last changed: a change redraws every wall.
    settings_stamp: datetime | None
    #: Campaigns whose own kill switch is on: their walls are blank, and a post approved
    #: only in them is not in ``posts``.
    paused_campaigns: frozenset[int] = frozenset()

    def paused_for(self, campaign_id: int) -> bool:
        """Is the wall of ``campaign_id`` blank now?"""
        return self.paused or campaign_id in self.paused_campaigns


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One thing a wall must do: ``approved``/``removed`` a post, or redraw (``paused``,
    ``resumed``, ``restyled``: the look or the pinned posts changed)."""

    kind: str
    post: PublicPost | None = None
    #: A redraw of these campaigns' walls only (empty: every wall).
    campaigns: frozenset[int] = frozenset()


def fingerprint(session: Session) -> tuple[Any, ...]:
    """Two indexed maxima that move with nearly every public change (the audit trail and
    the app settings); a periodic full snapshot catches the rest."""
    events, settings = AuditEvent.__table__, AppSetting.__table__
    row = session.execute(
        sa.select(
            sa.select(sa.func.max(events.c.id)).scalar_subquery(),
            sa.select(sa.func.max(settings.c.updated_at)).scalar_subquery(),
        )
    ).one()
    return tuple(row)


def screen_delay(session: Session, default_seconds: int) -> timedelta:
    """The delay an admin stored, else ``SCREEN_DELAY_SECONDS``."""
    value = get_app_setting(session, SCREEN_DELAY, None)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value:
        value = default_seconds
    return timedelta(seconds=min(value, MAX_SCREEN_DELAY_SECONDS))


def snapshot(
    session: Session,
    *,
    previous: Snapshot | None,
    default_delay_seconds: int,
    now: datetime,
) -> Snapshot:
    """The public set now; ``since`` is looked up only for posts new since ``previous``."""
    settings = AppSetting.__table__
    # The kill switches redraw walls their own way (see diff), not as a change of looks.
    stamp = session.execute(
        sa.select(sa.func.max(settings.c.updated_at)).where(
            settings.c.key.not_like(f"{GALLERY_PAUSED}%")
        )
    ).scalar()
    delay = screen_delay(session, default_delay_seconds)
    paused = paused_campaigns(session)
    if gallery_paused(session):
        return Snapshot(True, {}, delay, stamp, paused)
    posts = Post.__table__
    rows = session.execute(
        sa.select(posts.c.id, posts.c.platform, posts.c.external_id, posts.c.version).where(
            publicly_visible(posts)
        )
    ).all()
    known = previous.posts if previous is not None else {}
    # A campaign paused or resumed changes which walls every post is on: look at them all.
    repaused = previous is not None and previous.paused_campaigns != paused
    kept = {
        row.id: old
        for row in rows
        if (old := known.get(row.id)) is not None and old.version == row.version
    }
    fresh = [row.id for row in rows if row.id not in kept]
    first_look = previous is None
    since = {} if first_look else _public_since(session, fresh)
    tags = _hashtags(session, fresh)
    campaigns = _approved_campaigns(session, [row.id for row in rows] if repaused else fresh)
    found: dict[int, PublicPost] = {}
    for row in rows:
        old = kept.get(row.id)
        if old is not None and not repaused:
            found[row.id] = old
            continue
        approved = campaigns.get(row.id, frozenset())
        shown = approved - paused
        if approved and not shown:
            continue  # approved only where the gallery is paused: on no wall now
        if old is not None:
            found[row.id] = dataclasses.replace(old, campaigns=shown)
            continue
        when = LONG_AGO if first_look else since.get(row.id, now)
        found[row.id] = PublicPost(
            id=row.id,
            ref=f"{row.platform}:{row.external_id}",
            version=row.version,
            since=min(when, now),
            platform=row.platform,
            hashtags=tags.get(row.id, frozenset()),
            campaigns=shown,
        )
    return Snapshot(False, found, delay, stamp, paused)


def _approved_campaigns(session: Session, ids: list[int]) -> dict[int, frozenset[int]]:
    """For each post, the campaigns it is approved in (a decision bumps the post's version,
    so a post whose campaigns changed is among the fresh ones)."""
    found: dict[int, set[int]] = {}
    placed = CampaignPost.__table__
    for start in range(0, len(ids), 500):
        rows = session.execute(
            sa.select(placed.c.post_id, placed.c.campaign_id).where(
                placed.c.post_id.in_(ids[start : start + 500]),
                placed.c.status == PostStatus.APPROVED,
            )
        )
        for post_id, campaign_id in rows:
            found.setdefault(post_id, set()).add(campaign_id)
    return {post_id: frozenset(campaigns) for post_id, campaigns in found.items()}


def _public_since(session: Session, ids: list[int]) -> dict[int, datetime]:
    if not ids:
        return {}
    events = AuditEvent.__table__
    query = (
        sa.select(events.c.post_id, sa.func.max(events.c.at))
        .where(events.c.post_id.in_(ids), events.c.action.in_(_PUBLISHING_ACTIONS))
        .group_by(events.c.post_id)
    )
    return {post_id: _aware(at) for post_id, at in session.execute(query)}


def _hashtags(session: Session, ids: list[int]) -> dict[int, frozenset[str]]:
    if not ids:
        return {}
    tags = PostHashtag.__table__
    found: dict[int, set[str]] = {}
    for post_id, tag in session.execute(
        sa.select(tags.c.post_id, tags.c.tag).where(tags.c.post_id.in_(ids))
    ):
        found.setdefault(post_id, set()).add(tag)
    return {post_id: frozenset(values) for post_id, values in found.items()}


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def diff(old: Snapshot | None, new: Snapshot) -> list[Change]:
    """What turns the wall showing ``old`` into ``new``: a campaign's pause or resume
    first (a redraw of its walls), then removals, then approvals oldest first (a wall
    puts each new post on top, so the newest ends up first)."""
    if old is None:
        return []
    if new.paused and not old.paused:
        return [Change("paused")]
    if old.paused and not new.paused:
        return [Change("resumed")]
    changes = []
    if newly := new.paused_campaigns - old.paused_campaigns:
        changes.append(Change("paused", campaigns=newly))
    if back := old.paused_campaigns - new.paused_campaigns:
        changes.append(Change("resumed", campaigns=back))
    changes.extend(diff_posts(old.posts, new.posts))
    if old.settings_stamp != new.settings_stamp:
        changes.append(Change("restyled"))
    return changes


def diff_posts(old: Mapping[int, PublicPost], new: Mapping[int, PublicPost]) -> list[Change]:
    """Removals (gone, or changed: an edit re-approved is a new card) then approvals."""
    changes = [
        Change("removed", post)
        for post_id, post in old.items()
        if (now := new.get(post_id)) is None or now.version != post.version
    ]
    added = [
        post
        for post_id, post in new.items()
        if (before := old.get(post_id)) is None or before.version != post.version
    ]
    added.sort(key=lambda post: (post.since, post.id))
    changes.extend(Change("approved", post) for post in added)
    return changes


def screen_view(
    posts: Mapping[int, PublicPost], *, delay: timedelta, now: datetime
) -> tuple[dict[int, PublicPost], datetime | None]:
    """The posts the event screen may show now, and when the next held one is due."""
    shown: dict[int, PublicPost] = {}
    next_due: datetime | None = None
    for post_id, post in posts.items():
        due = post.since + delay
        if due <= now:
            shown[post_id] = post
        elif next_due is None or due < next_due:
            next_due = due
    return shown, next_due


def open_takedown_times(session: Session, ids: Iterable[int]) -> dict[int, datetime]:
    """When the open takedown request that holds each post arrived (the latest one)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    requests, posts = TakedownRequest.__table__, Post.__table__
    query = (
        sa.select(requests.c.post_id, sa.func.max(requests.c.at))
        .join(posts, posts.c.id == requests.c.post_id)
        .where(
            requests.c.post_id.in_(wanted),
            requests.c.resolved_at.is_(None),
            posts.c.takedown_hold.is_(True),
        )
        .group_by(requests.c.post_id)
    )
    return {post_id: _aware(at) for post_id, at in session.execute(query)}
