"""Posts with their moderation history, in the SPEC's JSON Lines or CSV shape."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from monitor.models import AuditEvent, CampaignPost, MediaItem, Post, PostHashtag
from monitor.services.audit import DECISIONS
from monitor.services.consent import consent_record, consents_by_post
from monitor.services.placements import Scope
from monitor.services.reach import latest_followers

_BATCH = 1000
CSV_COLUMNS = (
    "platform",
    "external_id",
    "url",
    "author_handle",
    "author_name",
    "text",
    "created_at",
    "hashtags",
    "status",
    "likes",
    "shares",
    "replies",
    "views",
    "edited_at",
    "deleted_at",
    "decisions",
    "flags",
    "consent",
    "escalated",
)


def iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, as the SPEC shows."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iter_export_records(
    session: Session, *, status: str | None = None, scope: Scope | None = None
) -> Iterator[dict[str, Any]]:
    """Every post of one campaign (``scope``; None: of the install) as the SPEC's export
    object, oldest first, in batches; status and decisions are the campaign's."""
    query = sa.select(Post).order_by(col(Post.created_at), col(Post.id))
    within = scope if scope is not None and not scope.alone else None
    if within is not None:
        query = query.where(within.contains())
    if status:
        query = query.where(within.has_status(status) if within else col(Post.status) == status)
    last_id = 0
    while True:
        batch = list(session.execute(query.where(col(Post.id) > last_id).limit(_BATCH)).scalars())
        if not batch:
            return
        yield from _records(session, batch, within)
        last_id = max(p.id for p in batch if p.id is not None)


def _records(session: Session, posts: list[Post], within: Scope | None) -> Iterator[dict[str, Any]]:
    ids = [p.id or 0 for p in posts]
    statuses: dict[int, str] = {p.id or 0: p.status for p in posts}
    events = sa.select(AuditEvent).where(col(AuditEvent.post_id).in_(ids))
    if within is not None:
        placed = CampaignPost.__table__
        rows = session.execute(
            sa.select(placed.c.post_id, placed.c.status).where(
                placed.c.campaign_id == within.campaign_id, placed.c.post_id.in_(ids)
            )
        )
        statuses = {row.post_id: row.status for row in rows}
        # This campaign's decisions, and those made in every campaign at once.
        events = events.where(
            sa.or_(
                col(AuditEvent.campaign_id) == within.campaign_id,
                col(AuditEvent.campaign_id).is_(None),
            )
        )
    tags: dict[int, list[str]] = {}
    for post_id, tag in session.execute(
        sa.select(col(PostHashtag.post_id), col(PostHashtag.tag))
        .where(col(PostHashtag.post_id).in_(ids))
        .order_by(col(PostHashtag.tag))
    ):
        tags.setdefault(post_id, []).append(tag)
    media: dict[int, list[dict[str, Any]]] = {}
    for item in session.execute(
        sa.select(MediaItem)
        .where(col(MediaItem.post_id).in_(ids))
        .order_by(col(MediaItem.position))
    ).scalars():
        media.setdefault(item.post_id, []).append(
            {"kind": item.kind, "alt": item.alt, "pinned": item.pinned_path is not None}
        )
    decisions: dict[int, list[dict[str, Any]]] = {}
    for event in session.execute(
        events.where(col(AuditEvent.action).in_(DECISIONS)).order_by(
            col(AuditEvent.at), col(AuditEvent.id)
        )
    ).scalars():
        decisions.setdefault(event.post_id or 0, []).append(
            {"action": event.action, "by": event.actor, "at": iso(event.at), "reason": event.reason}
        )
    consents = consents_by_post(session, ids)
    followers = latest_followers(
        session.connection(), [(p.platform, p.author_handle) for p in posts]
    )
    for post in posts:
        yield {
            "platform": post.platform,
            "external_id": post.external_id,
            "url": post.url,
            "author": {
                "handle": post.author_handle,
                "name": post.author_name,
                "url": post.author_url,
                "followers": followers.get((post.platform, post.author_handle)),
            },
            "text": post.text,
            "created_at": iso(post.created_at),
            "hashtags": tags.get(post.id or 0, []),
            "status": statuses.get(post.id or 0, post.status),
            "media": media.get(post.id or 0, []),
            "engagement": {
                "likes": post.likes,
                "shares": post.shares,
                "replies": post.replies,
                "views": post.views,
            },
            "edited_at": iso(post.edited_at),
            "deleted_at": iso(post.deleted_at),
            "decisions": decisions.get(post.id or 0, []),
            "flags": list(post.flag_reasons or []) if post.flagged else [],
            "consent": consent_record(consents.get(post.id or 0)),
            "escalated": post.escalated,
        }


def to_jsonl(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def csv_header() -> str:
    return _csv_line(list(CSV_COLUMNS))


def to_csv(record: dict[str, Any]) -> str:
    """One CSV row; nested values flattened so a spreadsheet can open it."""
    flat = {
        **record,
        "author_handle": record["author"]["handle"],
        "author_name": record["author"]["name"],
        "hashtags": " ".join(record["hashtags"]),
        **record["engagement"],
        "flags": "; ".join(record["flags"]),
        "consent": _describe_consent(record["consent"]),
        "decisions": "; ".join(
            f"{d['action']} by {d['by']} at {d['at']}"
            + (f" ({d['reason']})" if d["reason"] else "")
            for d in record["decisions"]
        ),
    }
    return _csv_line([_csv_safe(flat[column]) for column in CSV_COLUMNS])


def _describe_consent(consent: dict[str, str] | None) -> str:
    if consent is None:
        return ""
    return f"{consent['how']} (obtained {consent['obtained_on']}, recorded by {consent['by']})"


def _describe_decision(decision: dict[str, Any]) -> str:
    text = f"{decision['action']} by {decision['by']} at {decision['at']}"
    return text + (f" ({decision['reason']})" if decision["reason"] else "")


def _csv_safe(value: Any) -> str:
    """Neutralise spreadsheet formulas: post text is written by strangers."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().rstrip("\r\n")
