"""Where the digest's rows come from: the install's roll-up, or one campaign's placements.

The digest's figures (:func:`monitor.services.digest.compute_digest`) are worked out
once, from rows of a few shapes: posts per slot and platform, posts per slot and
hashtag, distinct authors of ranges, the period's decisions and their waits, the
backlog, the flagged posts, the removals and takedown requests, the totals as last
seen. Two sources give those rows:

* :class:`InstallRows`, the roll-up kept with every write (:mod:`monitor.services.rollup`,
  :mod:`monitor.services.decisions`): every post, read in time that grows with the
  period, not the store. The install's only campaign is every post, so it reads these.
* :class:`CampaignRows`, one campaign's placements (``campaign_posts``) in the period,
  by the (campaign, created_at) index, joined to their posts; its statuses are the
  campaign's, not the post's across campaigns. An install with several campaigns
  reads these, the default campaign included (its posts are those in no other).

Both give the same shapes, so a figure has one owner whichever the source.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session

from monitor.models import AuditEvent, CampaignPost, Post, PostHashtag, PostStatus
from monitor.services import decisions, rollup
from monitor.services.audit import DECISIONS, Action

_POSTS = Post.__table__
_TAGS = PostHashtag.__table__
_PLACED = CampaignPost.__table__
_EVENTS = AuditEvent.__table__
METRICS = rollup.METRICS


class Decided(Protocol):
    """A period's decisions: per status reached, and the waits' ranks."""

    @property
    def by_status(self) -> dict[str, int]: ...

    @property
    def total(self) -> int: ...

    @property
    def timed(self) -> int: ...

    def percentile(self, connection: Session, fraction: float) -> list[float]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Moderated:
    """The period's moderation rows other than decisions, and the backlog now."""

    pending: int
    oldest_pending: datetime | None
    flagged: int
    removed_at_source: int
    takedown_requests: int


class InstallRows:
    """Every post, from the roll-up."""

    #: The campaign whose placements are read (None: every post).
    campaign_id: int | None = None

    def post_counts(self, session: Session, bounds: Sequence[int]) -> dict[tuple[int, str], int]:
        return rollup.post_counts(session, bounds)

    def posts_by_slot(self, session: Session, start: int, end: int) -> list[tuple[int, int]]:
        return rollup.posts_by_slot(session, start, end)

    def tag_counts(self, session: Session, bounds: Sequence[int]) -> dict[tuple[int, str], int]:
        return rollup.tag_counts(session, bounds)

    def authors_of_ranges(
        self, session: Session, ranges: Sequence[tuple[int, int, Sequence[str]]]
    ) -> list[dict[str, rollup.Authors]]:
        return rollup.authors_of_ranges(session, ranges)

    def distinct_authors(self, session: Session, start: int, end: int) -> sa.Select[Any]:
        return rollup.distinct_authors(session, start, end)

    def approved_posts(self, session: Session, start: int, end: int) -> tuple[int, int]:
        return rollup.approved_posts(session, start, end)

    def totals(self, session: Session) -> dict[str, dict[str, int | None]]:
        return rollup.totals(session)

    def decided(self, session: Session, start: int, end: int) -> Decided:
        return decisions.decisions(session, start, end)

    def moderated(self, session: Session, start: datetime, end: datetime) -> Moderated:
        # The count from the posts roll-up's totals; the oldest, one seek of the
        # (status, first_seen_at) index.
        waiting = _POSTS.c.status == PostStatus.PENDING
        oldest = session.execute(
            sa.select(sa.func.min(_POSTS.c.first_seen_at)).where(waiting)
        ).scalar()
        flagged = session.execute(
            sa.select(sa.func.count()).where(
                _POSTS.c.flagged.is_(True), _POSTS.c.created_at >= start, _POSTS.c.created_at < end
            )
        ).scalar_one()
        return Moderated(
            pending=rollup.pending_posts(session),
            oldest_pending=oldest,
            flagged=int(flagged),
            **_actions(session, start, end, None),
        )


def _actions(
    session: Session, start: datetime, end: datetime, campaign_id: int | None
) -> dict[str, int]:
    """The period's removals at source and takedown requests (of the campaign's posts)."""
    query = (
        sa.select(_EVENTS.c.action, sa.func.count())
        .where(
            _EVENTS.c.at >= start,
            _EVENTS.c.at < end,
            _EVENTS.c.action.in_([Action.TAKEDOWN_REQUESTED, Action.DELETED_AT_SOURCE]),
        )
        .group_by(_EVENTS.c.action)
    )
    if campaign_id is not None:
        query = query.where(in_campaign(_EVENTS.c.post_id, campaign_id))
    counts = dict(session.execute(query).all())
    return {
        "removed_at_source": int(counts.get(Action.DELETED_AT_SOURCE, 0)),
        "takedown_requests": int(counts.get(Action.TAKEDOWN_REQUESTED, 0)),
    }


def in_campaign(post_id: Any, campaign_id: int) -> sa.ColumnElement[bool]:
    """The row's post (``post_id``, a column) is in the campaign."""
    return sa.exists().where(_PLACED.c.campaign_id == campaign_id, _PLACED.c.post_id == post_id)


def decided_in(campaign_id: int) -> sa.ColumnElement[bool]:
    """An audit row of the campaign: made in it, or in every campaign of a post in it."""
    return sa.or_(
        _EVENTS.c.campaign_id == campaign_id,
        sa.and_(_EVENTS.c.campaign_id.is_(None), in_campaign(_EVENTS.c.post_id, campaign_id)),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Waits:
    """A campaign's decisions of a period, their waits in order (a campaign's are few)."""

    by_status: dict[str, int]
    waits: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def timed(self) -> int:
        return len(self.waits)

    def percentile(self, connection: Session, fraction: float) -> list[float]:
        """The waits either side of ``fraction``'s rank, as :class:`decisions.Decisions`."""
        count = len(self.waits)
        if count == 0:
            return []
        low = int(fraction * (count - 1))
        ranks = [low] if count == 1 else [low, min(low + 1, count - 1)]
        return [self.waits[rank] / 1_000_000 for rank in ranks]


class CampaignRows(InstallRows):
    """One campaign's placements, with the campaign's own statuses."""

    def __init__(self, campaign_id: int) -> None:
        self.campaign_id: int | None = campaign_id
        self._id = campaign_id

    def _placed(self, start: int, end: int) -> Any:
        """The campaign's posts created in slots [start, end), by the placements' index."""
        return sa.and_(
            _PLACED.c.campaign_id == self._id,
            _PLACED.c.created_at >= rollup.slot_start(start),
            _PLACED.c.created_at < rollup.slot_start(end),
        )

    def _slots(self, session: Session, start: int, end: int) -> sa.Subquery:
        """Posts per (slot, platform): the shape of ``post_slots``."""
        slot = rollup.slot_sql(session.connection(), _PLACED.c.created_at).label("slot")
        return (
            sa.select(slot, _POSTS.c.platform, sa.func.count().label("posts"))
            .select_from(_PLACED.join(_POSTS, _POSTS.c.id == _PLACED.c.post_id))
            .where(self._placed(start, end))
            .group_by(sa.literal_column("slot"), _POSTS.c.platform)
            .subquery("campaign_slots")
        )

    def post_counts(self, session: Session, bounds: Sequence[int]) -> dict[tuple[int, str], int]:
        slots = self._slots(session, bounds[0], bounds[-1])
        return rollup.bucketed(session, slots, slots.c.platform, bounds)

    def posts_by_slot(self, session: Session, start: int, end: int) -> list[tuple[int, int]]:
        slots = self._slots(session, start, end)
        return [
            (int(slot), int(n))
            for slot, n in session.execute(
                sa.select(slots.c.slot, sa.func.sum(slots.c.posts))
                .group_by(slots.c.slot)
                .order_by(slots.c.slot)
            )
        ]

    def tag_counts(self, session: Session, bounds: Sequence[int]) -> dict[tuple[int, str], int]:
        slot = rollup.slot_sql(session.connection(), _PLACED.c.created_at).label("slot")
        tags = (
            sa.select(slot, _TAGS.c.tag, sa.func.count().label("posts"))
            .select_from(_PLACED.join(_TAGS, _TAGS.c.post_id == _PLACED.c.post_id))
            .where(self._placed(bounds[0], bounds[-1]))
            .group_by(sa.literal_column("slot"), _TAGS.c.tag)
            .subquery("campaign_tags")
        )
        return rollup.bucketed(session, tags, tags.c.tag, bounds)

    def _writers(self, start: int, end: int) -> sa.Select[Any]:
        return (
            sa.select(_POSTS.c.platform, _POSTS.c.author_handle)
            .select_from(_PLACED.join(_POSTS, _POSTS.c.id == _PLACED.c.post_id))
            .where(self._placed(start, end))
            .distinct()
        )

    def authors_of_ranges(
        self, session: Session, ranges: Sequence[tuple[int, int, Sequence[str]]]
    ) -> list[dict[str, rollup.Authors]]:
        """Distinct authors per platform of each range, and those new to the campaign (no
        post of theirs in it before the range)."""
        if not ranges:
            return []
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        slot = rollup.slot_sql(session.connection(), _PLACED.c.created_at)
        seen: dict[tuple[str, str], list[int]] = defaultdict(list)
        for platform, handle, at in session.execute(
            sa.select(_POSTS.c.platform, _POSTS.c.author_handle, slot)
            .select_from(_PLACED.join(_POSTS, _POSTS.c.id == _PLACED.c.post_id))
            .where(self._placed(lo, hi))
        ):
            seen[(platform, handle)].append(int(at))
        before = sa.and_(_PLACED.c.campaign_id == self._id)
        earlier = {
            (platform, handle)
            for platform, handle in session.execute(
                sa.select(_POSTS.c.platform, _POSTS.c.author_handle)
                .select_from(_PLACED.join(_POSTS, _POSTS.c.id == _PLACED.c.post_id))
                .where(before, _PLACED.c.created_at < rollup.slot_start(lo))
                .distinct()
            )
            if (platform, handle) in seen
        }
        result: list[dict[str, rollup.Authors]] = []
        for start, end, names in ranges:
            counts: dict[str, list[int]] = {}
            for (platform, handle), slots in seen.items():
                ordered = sorted(slots)
                at = bisect.bisect_left(ordered, start)
                if platform not in names or at == len(ordered) or ordered[at] >= end:
                    continue
                new = at == 0 and (platform, handle) not in earlier
                row = counts.setdefault(platform, [0, 0])
                row[0] += 1
                row[1] += int(new)
            result.append({p: rollup.Authors(*c) for p, c in sorted(counts.items())})
        return result

    def distinct_authors(self, session: Session, start: int, end: int) -> sa.Select[Any]:
        return self._writers(start, end)

    def approved_posts(self, session: Session, start: int, end: int) -> tuple[int, int]:
        approved = sa.case((_PLACED.c.status == PostStatus.APPROVED.value, 1), else_=0)
        posts, shown = session.execute(
            sa.select(sa.func.count(), sa.func.sum(approved)).where(self._placed(start, end))
        ).one()
        return int(posts or 0), int(shown or 0)

    def totals(self, session: Session) -> dict[str, dict[str, int | None]]:
        """Per platform, each count as last seen summed over the campaign's posts."""
        query = (
            sa.select(
                _POSTS.c.platform,
                *[sa.func.sum(_POSTS.c[m]) for m in METRICS],
                *[sa.func.count(_POSTS.c[m]) for m in METRICS],
            )
            .select_from(_PLACED.join(_POSTS, _POSTS.c.id == _PLACED.c.post_id))
            .where(_PLACED.c.campaign_id == self._id)
            .group_by(_POSTS.c.platform)
        )
        size = len(METRICS)
        return {
            platform: {
                m: int(values[i]) if values[size + i] else None for i, m in enumerate(METRICS)
            }
            for platform, *values in sorted(session.execute(query).all())
        }

    def decided(self, session: Session, start: int, end: int) -> Decided:
        """Decisions made in this campaign (or in all of a post's, this one among them)."""
        mine = sa.or_(
            _EVENTS.c.campaign_id == self._id,
            sa.and_(_EVENTS.c.campaign_id.is_(None), in_campaign(_EVENTS.c.post_id, self._id)),
        )
        by_status: dict[str, int] = defaultdict(int)
        waits: list[int] = []
        for action, to_status, wait in session.execute(
            sa.select(_EVENTS.c.action, _EVENTS.c.to_status, _EVENTS.c.wait_us).where(
                _EVENTS.c.at >= rollup.slot_start(start),
                _EVENTS.c.at < rollup.slot_start(end),
                _EVENTS.c.action.in_([a.value for a in DECISIONS]),
                mine,
            )
        ):
            status = decisions.decision_status(action, to_status)
            if status is None:
                continue
            by_status[status] += 1
            if wait is not None:
                waits.append(int(wait))
        return _Waits(dict(by_status), tuple(sorted(waits)))

    def moderated(self, session: Session, start: datetime, end: datetime) -> Moderated:
        waiting = sa.and_(
            _PLACED.c.campaign_id == self._id,
            _PLACED.c.status == PostStatus.PENDING.value,
        )
        pending, oldest = session.execute(
            sa.select(sa.func.count(), sa.func.min(_POSTS.c.first_seen_at))
            .select_from(_PLACED.join(_POSTS, _POSTS.c.id == _PLACED.c.post_id))
            .where(waiting)
        ).one()
        flagged = session.execute(
            sa.select(sa.func.count())
            .select_from(_PLACED.join(_POSTS, _POSTS.c.id == _PLACED.c.post_id))
            .where(
                _PLACED.c.campaign_id == self._id,
                _PLACED.c.created_at >= start,
                _PLACED.c.created_at < end,
                _POSTS.c.flagged.is_(True),
            )
        ).scalar_one()
        return Moderated(
            pending=int(pending),
            oldest_pending=oldest,
            flagged=int(flagged),
            **_actions(session, start, end, self._id),
        )
