"""What a campaign's hashtags were during a period, and when they changed.

The digest of a day names the tags the campaign had at any moment of it (a tag removed
at 14:05 still has its figures up to then) and says when each was added or removed. A
campaign's edits are on the audit trail (:func:`monitor.services.campaigns.edit_campaign`
records the tags added and removed); the default campaign's tags are ``HASHTAGS``, whose
changes leave no event, only their sources' creation and retirement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from adapters.text import normalise_tag
from monitor.config import Settings
from monitor.models import AuditEvent, Campaign, Source
from monitor.services.audit import Action
from monitor.services.campaigns import campaign_tags
from monitor.services.sources import source_tags


@dataclasses.dataclass(frozen=True)
class TagChange:
    """A hashtag added to or removed from a campaign at a moment."""

    tag: str
    added: bool
    at: datetime


@dataclasses.dataclass(frozen=True)
class TagHistory:
    """A campaign's hashtags during a period: every tag it had at some moment of it (the
    figures show each), and the changes made within it (the digest says when)."""

    tags: tuple[str, ...]
    changes: tuple[TagChange, ...]


def tags_during(
    session: Session, settings: Settings, campaign: Campaign, start: datetime, end: datetime
) -> TagHistory:
    """The campaign's hashtags in [start, end), from its edits on the audit trail (the
    default campaign's, whose tags are ``HASHTAGS``: from its sources' retirements and
    creations, the only record a change of the environment leaves)."""
    current = campaign_tags(campaign, settings)
    if campaign.is_default:
        others = {
            normalise_tag(tag)
            for other in session.exec(select(Campaign).where(col(Campaign.is_default).is_(False)))
            for tag in campaign_tags(other, settings)
        }
        return _default_tags_during(session, campaign, current, others, start, end)
    events = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.action == Action.CAMPAIGN_EDITED.value,
            AuditEvent.campaign_id == campaign.id,
            col(AuditEvent.at) >= start,
        )
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
    ).all()
    # Walked back from now: at the period's end it had ``tags``; every edit within it
    # adds what it removed (the tag was there before) and is said.
    tags = {normalise_tag(tag): tag for tag in current}
    seen = dict(tags)
    changes: list[TagChange] = []
    for event in events:
        detail = event.detail or {}
        added, removed = detail.get("tags_added", []), detail.get("tags_removed", [])
        for tag in added:
            tags.pop(normalise_tag(tag), None)
        for tag in removed:
            tags[normalise_tag(tag)] = tag
        if event.at < end:
            seen |= tags
            changes += [TagChange(tag, True, event.at) for tag in added]
            changes += [TagChange(tag, False, event.at) for tag in removed]
        else:
            seen = dict(tags)
    return TagHistory(tuple(seen.values()), tuple(sorted(changes, key=lambda c: c.at)))


def _default_tags_during(
    session: Session,
    campaign: Campaign,
    current: Sequence[str],
    others: set[str],
    start: datetime,
    end: datetime,
) -> TagHistory:
    """A tag of a source retired in or after the period that is no longer in ``HASHTAGS``
    nor any other campaign's (``others``) was the default campaign's, and removed."""
    wanted = {normalise_tag(tag) for tag in current}
    sources = session.exec(
        select(Source).where(
            sa.or_(col(Source.retired_at).is_(None), col(Source.retired_at) >= start),
            sa.or_(col(Source.created_at).is_(None), col(Source.created_at) < end),
        )
    ).all()
    tags = {normalise_tag(tag): tag for tag in current}
    changes: dict[tuple[str, bool], datetime] = {}
    for source in sources:
        for tag in source_tags(source.hashtags):
            retired = source.retired_at
            if tag in others:
                continue
            if tag not in wanted:
                if retired is None:
                    continue  # not retired yet: the next cycle's, say nothing before it
                tags.setdefault(tag, tag)  # watched in the period, and no longer
                if retired < end:
                    changes[(tag, False)] = min(changes.get((tag, False), retired), retired)
            elif (
                source.created_at is not None
                and start <= source.created_at < end
                and campaign.created_at < start
            ):
                changes[(tag, True)] = min(changes.get((tag, True), end), source.created_at)
    # A tag added whose earlier source was still watching it was never missing.
    watched_before = {
        tag
        for source in sources
        if source.created_at is None or source.created_at < start
        for tag in source_tags(source.hashtags)
    }
    found = [
        TagChange(tag, added, at)
        for (tag, added), at in changes.items()
        if not (added and tag in watched_before)
    ]
    return TagHistory(tuple(tags.values()), tuple(sorted(found, key=lambda c: c.at)))
