"""Decisions on posts: the one place approval and rejection happen, always audited.

Only a person (an active moderator or admin) can approve. A decision names
the version of the post it was made on; if the post changed since (another
decision, an edit at source), the decision is refused rather than applied
blindly.
"""

from __future__ import annotations

import dataclasses

from sqlmodel import Session, select

from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import ModerationEvent, Post, PostStatus, Role, utcnow
from monitor.services.users import get_active_user

_ACTIONS = {"approve": PostStatus.APPROVED, "reject": PostStatus.REJECTED}
MAX_REASON_CHARS = 2000


class StaleDecision(UserError):
    """The post changed after the moderator saw it."""


@dataclasses.dataclass(frozen=True, slots=True)
class DecisionResult:
    post_id: int
    from_status: str
    to_status: str


def parse_post_ref(ref: str) -> tuple[str, str]:
    """``platform:external_id`` from the CLI, split at the first colon."""
    platform, sep, external_id = ref.partition(":")
    if not sep or not platform or not external_id:
        raise UserError(f"{ref!r}: give a post as platform:external_id")
    return platform, external_id


def find_post(session: Session, ref: str) -> Post:
    platform, external_id = parse_post_ref(ref)
    post = session.exec(
        select(Post).where(Post.platform == platform, Post.external_id == external_id)
    ).first()
    if post is None:
        raise UserError(f"no post {ref}")
    return post


def decide(
    *,
    session: Session,
    post: Post,
    action: str,
    actor: str,
    reason: str | None = None,
    settings: Settings,
    expected_version: int | None = None,
) -> DecisionResult:
    """Approve or reject one post as ``actor`` (a user name), with an audit event.

    ``settings`` is for what publishing needs (media directory, outbound policy).
    """
    if action not in _ACTIONS:
        raise UserError(f"unknown decision {action!r}: approve or reject")
    user = get_active_user(session=session, name=actor)
    if user.role not in (Role.MODERATOR, Role.ADMIN):
        raise UserError(f"{actor} is a {user.role}: only moderators and admins decide")
    if expected_version is not None and post.version != expected_version:
        raise StaleDecision(
            f"post {post.platform}:{post.external_id} changed since you loaded it; review it again"
        )
    if post.status == PostStatus.REMOVED:
        raise UserError(f"post {post.platform}:{post.external_id} was removed at source")
    reason = (reason or "").strip()[:MAX_REASON_CHARS] or None
    target = _ACTIONS[action]
    result = DecisionResult(post.id or 0, post.status, target.value)
    post.status = target.value
    post.version += 1
    session.add(post)
    session.add(
        ModerationEvent(
            post_id=post.id,
            at=utcnow(),
            actor=actor,
            action=action,
            from_status=result.from_status,
            to_status=result.to_status,
            reason=reason,
        )
    )
    return result
