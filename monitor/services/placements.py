"""Which campaigns a post is in, and its moderation state in each: the one owner of both.

A post is in every campaign whose hashtags it carries, on a platform the campaign
watches, made on one of the campaign's days (an archived campaign takes no new
posts); a post in none of them is the default campaign's, as every post was before
campaigns. It is stored, fetched and analysed once and decided per campaign
(:class:`~monitor.models.CampaignPost`).

``Post.status`` stays the post's state across its campaigns, which is what the
install-wide work reads (the media files, the re-check at source, retention):
approved if it is approved anywhere, else pending if it waits anywhere, else
rejected; removed when it is gone at source. :func:`settle` keeps it so, and every
status change goes through :func:`set_status`.

With one campaign (the default), a post's one placement has the post's status, so
:class:`Scope` lets the queue and gallery read ``Post.status`` alone, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from adapters.text import normalise_tag
from monitor.config import Settings, load_settings
from monitor.models import Campaign, CampaignPost, Post, PostStatus
from monitor.services.campaigns import (
    campaign_platforms,
    campaign_tags,
    get_campaign,
    list_campaigns,
    runs_on,
    sync_default,
)

_PLACEMENTS = CampaignPost.__table__
_POSTS = Post.__table__


@dataclasses.dataclass(frozen=True)
class Scope:
    """One campaign as the queue and the gallery read it.

    ``alone``: the install has this one campaign only, so ``Post.status`` is its status
    and no join is needed (the common case, and the fast one).
    """

    campaign_id: int
    alone: bool

    def has_status(self, status: PostStatus | str) -> sa.ColumnElement[bool]:
        """Posts in this campaign with ``status`` in it (a condition on ``posts``)."""
        if self.alone:
            return _POSTS.c.status == status
        return sa.exists().where(
            _PLACEMENTS.c.campaign_id == self.campaign_id,
            _PLACEMENTS.c.post_id == _POSTS.c.id,
            _PLACEMENTS.c.status == status,
        )

    def queue(self, status: PostStatus | str | None) -> SelectOfScalar[Post]:
        """The campaign's posts (in ``status`` there, if given), ready for the queue's
        keyset order (:meth:`order_keys`): joined to the placements' index when the
        install has other campaigns."""
        query = select(Post)
        if self.alone:
            return query if status is None else query.where(col(Post.status) == status)
        query = query.join(
            _PLACEMENTS,
            sa.and_(
                _PLACEMENTS.c.post_id == _POSTS.c.id,
                _PLACEMENTS.c.campaign_id == self.campaign_id,
            ),
        )
        return query if status is None else query.where(_PLACEMENTS.c.status == status)

    def order_keys(self) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
        """The (created_at, id) columns the queue orders and pages by: the placements'
        copies when joined, so the page is read in index order."""
        if self.alone:
            return _POSTS.c.created_at, _POSTS.c.id
        return _PLACEMENTS.c.created_at, _PLACEMENTS.c.post_id

    def contains(self) -> sa.ColumnElement[bool]:
        """Posts in this campaign, whatever their status in it."""
        if self.alone:
            return sa.true()
        return sa.exists().where(
            _PLACEMENTS.c.campaign_id == self.campaign_id, _PLACEMENTS.c.post_id == _POSTS.c.id
        )


#: The whole install as one scope: what the queue reads with no campaign given.
INSTALL = Scope(campaign_id=0, alone=True)


def in_scope(session: Session, scope: Scope, shown: Mapping[int, int]) -> dict[int, int]:
    """The part of ``shown`` (post id -> anything) whose posts are in the campaign."""
    if scope.alone or not shown:
        return dict(shown)
    inside = session.execute(
        sa.select(_PLACEMENTS.c.post_id).where(
            _PLACEMENTS.c.campaign_id == scope.campaign_id,
            _PLACEMENTS.c.post_id.in_(list(shown)),
        )
    ).scalars()
    kept = set(inside)
    return {post_id: value for post_id, value in shown.items() if post_id in kept}


def scope_of(session: Session, settings: Settings, slug: str | None = None) -> Scope:
    """The scope of campaign ``slug`` (None: the default campaign)."""
    return scope_for(session, get_campaign(session, settings, slug))


def scope_for(session: Session, campaign: Campaign) -> Scope:
    """The scope of ``campaign``; only reads (a public page may be on a read-only session)."""
    if campaign.id is None:  # the default campaign, not written yet: the only one there is
        return Scope(campaign_id=0, alone=True)
    count = session.execute(sa.select(sa.func.count()).select_from(Campaign.__table__)).scalar()
    return Scope(campaign_id=campaign.id, alone=count == 1)


@dataclasses.dataclass(frozen=True)
class PostFacts:
    """What placing a new post needs to know about it."""

    post_id: int
    platform: str
    tags: tuple[str, ...]
    created_at: datetime


def campaigns_for(
    campaigns: Sequence[Campaign], settings: Settings, post: PostFacts, zone: ZoneInfo
) -> list[Campaign]:
    """The campaigns ``post`` belongs in (see the module docstring)."""
    day = post.created_at.astimezone(zone).date()
    tags = set(post.tags)
    chosen = [
        campaign
        for campaign in campaigns
        if campaign.archived_at is None
        and post.platform in campaign_platforms(campaign, settings)
        and tags & {normalise_tag(tag) for tag in campaign_tags(campaign, settings)}
        and runs_on(campaign, day, zone)
    ]
    return chosen or [campaign for campaign in campaigns if campaign.is_default]


def place_new(session: Session, settings: Settings | None, posts: Iterable[PostFacts]) -> None:
    """Place newly stored posts in their campaigns, pending in each.

    Without ``settings`` (a tool or test storing posts directly) and with one campaign,
    every post is the default campaign's; with more, the settings are read from the
    environment, as the commands do.
    """
    posts = list(posts)
    if not posts:
        return
    campaigns = list(session.exec(select(Campaign)))
    if settings is None and len(campaigns) <= 1:
        default = campaigns[0] if campaigns else None
        if default is None or not default.is_default:
            return  # no default campaign row (a schema made by create_all): nothing to place
        chosen: dict[int, list[int]] = {post.post_id: [default.id or 0] for post in posts}
    else:
        if settings is None:
            settings = load_settings()
        sync_default(session, settings)
        campaigns = list_campaigns(session, settings)
        chosen = {
            post.post_id: [
                c.id or 0 for c in campaigns_for(campaigns, settings, post, settings.zone)
            ]
            for post in posts
        }
    created = {post.post_id: post.created_at for post in posts}
    rows = [
        {
            "campaign_id": campaign_id,
            "post_id": post_id,
            "status": PostStatus.PENDING,
            "created_at": created[post_id],
        }
        for post_id, campaign_ids in chosen.items()
        for campaign_id in campaign_ids
    ]
    session.execute(sa.insert(_PLACEMENTS), rows)


def status_in(session: Session, post: Post, campaign_id: int) -> PostStatus | None:
    """The post's status in one campaign; None if it is not in that campaign."""
    found = session.get(CampaignPost, (campaign_id, post.id))
    return None if found is None else PostStatus(found.status)


def overall(statuses: Iterable[PostStatus]) -> PostStatus:
    """A post's state across its campaigns: public anywhere, else waiting anywhere."""
    found = set(statuses)
    for status in (PostStatus.REMOVED, PostStatus.APPROVED, PostStatus.PENDING):
        if status in found:
            return status
    return PostStatus.REJECTED


def set_status(
    session: Session,
    post_ids: Sequence[int],
    to: PostStatus,
    *,
    campaign_id: int | None = None,
    only_from: PostStatus | None = None,
) -> None:
    """Move the posts to ``to`` in one campaign (None: in every campaign), optionally only
    where they are ``only_from``, then :func:`settle` their overall status."""
    if not post_ids:
        return
    change = sa.update(_PLACEMENTS).where(_PLACEMENTS.c.post_id.in_(list(post_ids)))
    if campaign_id is not None:
        change = change.where(_PLACEMENTS.c.campaign_id == campaign_id)
    if only_from is not None:
        change = change.where(_PLACEMENTS.c.status == only_from)
    session.execute(change.values(status=to))
    settle(session, post_ids)


def settle(session: Session, post_ids: Sequence[int]) -> None:
    """Write each post's overall status from its placements (a post with none keeps its
    own: one stored before it had any, by a test or an old tool).

    The roll-up counts every status change once: an ORM write through its mapper hook, a
    Core write through the caller's :func:`rollup.tracking`. So a post whose row already
    holds its overall status (a Core write just made it) only has its loaded copy set to
    match, never written again; one that does not is written the way it is held: through
    its ORM copy if the session has one (a decision), else in Core.
    """
    ids = list(post_ids)
    placed: dict[int, list[PostStatus]] = {}
    rows = session.execute(
        sa.select(_PLACEMENTS.c.post_id, _PLACEMENTS.c.status).where(_PLACEMENTS.c.post_id.in_(ids))
    )
    for post_id, status in rows:
        placed.setdefault(post_id, []).append(PostStatus(status))
    # Read after the autoflush: a decision's pending ORM write is in the row (and counted).
    stored = dict(
        session.execute(sa.select(_POSTS.c.id, _POSTS.c.status).where(_POSTS.c.id.in_(ids))).all()
    )
    for post_id, statuses in placed.items():
        status = overall(statuses)
        loaded = session.identity_map.get(identity_key(Post, post_id))
        if stored.get(post_id) == status:
            if isinstance(loaded, Post):
                set_committed_value(loaded, "status", status)
        elif isinstance(loaded, Post):
            loaded.status = status
        else:
            session.execute(sa.update(_POSTS).where(_POSTS.c.id == post_id).values(status=status))


def campaign_ids_of(session: Session, post_id: int) -> list[int]:
    """The campaigns a post is in."""
    return list(
        session.exec(select(CampaignPost.campaign_id).where(col(CampaignPost.post_id) == post_id))
    )
