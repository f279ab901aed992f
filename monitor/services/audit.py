"""The audit trail's one owner: what can be recorded (:class:`Action`), the one way to
record it (:func:`record`), and reading it back in words people use.

Other modules read actions back as a protocol (the digest counts removals, undo looks for
later changes), so each action is a member here, never a free string; the values are what
the database already holds and must not change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from monitor.models import AuditEvent, Post, PostStatus, utcnow

AUDIT_PAGE_SIZE = 100
#: A post's card shows at most this many of its latest events (the log page has them all).
HISTORY_PER_POST = 20
#: The app setting of the gallery kill switch (app_settings re-exports it): defined here
#: because the audit page words its changes as the gallery paused or resumed.
GALLERY_PAUSED = "gallery_paused"


class Action(StrEnum):
    """Every action the audit trail records, by the string stored in its row."""

    APPROVE = "approve"
    REJECT = "reject"
    UNDO = "undo"
    #: A rule flagged a post at ingestion (a rule's reject is :attr:`REJECT`).
    FLAG = "flag"
    MEDIA_REVEALED = "media_revealed"
    CONSENT_RECORDED = "consent_recorded"
    EDITED_AT_SOURCE = "edited_at_source"
    DELETED_AT_SOURCE = "deleted_at_source"
    UNCHECKED_AT_SOURCE = "unchecked_at_source"
    TAKEDOWN_REQUESTED = "takedown_requested"
    TAKEDOWN_RESOLVED = "takedown_resolved"
    ESCALATED = "escalated"
    ESCALATION_CLOSED = "escalation_closed"
    RULE_ADDED = "rule_added"
    RULE_ENABLED = "rule_enabled"
    RULE_DISABLED = "rule_disabled"
    RULE_DELETED = "rule_deleted"
    #: A rule, place-name list or hash bank made shared by every campaign, or one campaign's.
    RULE_SCOPE_CHANGED = "rule_scope_changed"
    #: A campaign's own retention periods set (or given back to the install's).
    RETENTION_SET = "retention_set"
    SETTING_CHANGED = "setting_changed"
    RETENTION_PURGE = "retention_purge"
    AUTHOR_ERASED = "author_erased"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    USER_ADDED = "user_added"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    ROLE_CHANGED = "role_changed"
    PASSWORD_SET = "password_set"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    LOGINS_UNLOCKED = "logins_unlocked"
    TOTP_ENABLED = "totp_enabled"
    TOTP_DISABLED = "totp_disabled"
    HASH_BANK_IMPORTED = "hash_bank_imported"
    HASH_BANK_DELETED = "hash_bank_deleted"
    #: An image's automatic check failed or overran: flagged for a person's own look.
    ANALYSIS_FAILED = "analysis_failed"
    #: A moderator had the stored copies replaced by ones blurred at the faces found.
    FACES_BLURRED = "faces_blurred"
    CAMPAIGN_ADDED = "campaign_added"
    CAMPAIGN_ENDED = "campaign_ended"
    CAMPAIGN_ARCHIVED = "campaign_archived"
    CAMPAIGN_ROLE_GRANTED = "campaign_role_granted"
    #: A campaign's own platform credential set or cleared (the key's name only, never its value).
    CAMPAIGN_CREDENTIAL_SET = "campaign_credential_set"
    CAMPAIGN_CREDENTIAL_CLEARED = "campaign_credential_cleared"
    CAMPAIGN_EDITED = "campaign_edited"

    @property
    def label(self) -> str:
        """The action in words for the audit page (the stored value is for code)."""
        return _LABELS[self]

    @classmethod
    def from_words(cls, text: str) -> Action | None:
        """The action a person typed, by its stored value or its words; None if neither."""
        wanted = " ".join(text.lower().replace("_", " ").split())
        for action in cls:
            if wanted in (action.value.replace("_", " "), action.label):
                return action
        return None


_LABELS: dict[Action, str] = {
    Action.APPROVE: "approved",
    Action.REJECT: "rejected",
    Action.UNDO: "decision undone",
    Action.FLAG: "flagged by a rule",
    Action.MEDIA_REVEALED: "hidden media shown",
    Action.CONSENT_RECORDED: "consent recorded",
    Action.EDITED_AT_SOURCE: "edited at source",
    Action.DELETED_AT_SOURCE: "removed at source",
    Action.UNCHECKED_AT_SOURCE: "could not be checked at source",
    Action.TAKEDOWN_REQUESTED: "takedown requested",
    Action.TAKEDOWN_RESOLVED: "takedown request resolved",
    Action.ESCALATED: "escalated to safeguarding",
    Action.ESCALATION_CLOSED: "escalation closed",
    Action.RULE_ADDED: "rule added",
    Action.RULE_ENABLED: "rule switched on",
    Action.RULE_DISABLED: "rule switched off",
    Action.RULE_DELETED: "rule deleted",
    Action.RULE_SCOPE_CHANGED: "rule shared or made one campaign's",
    Action.RETENTION_SET: "campaign's retention periods set",
    Action.SETTING_CHANGED: "setting changed",
    Action.RETENTION_PURGE: "old posts deleted (retention)",
    Action.AUTHOR_ERASED: "author's data erased",
    Action.LOGIN: "login",
    Action.LOGIN_FAILED: "failed login",
    Action.LOGOUT: "logout",
    Action.USER_ADDED: "user added",
    Action.USER_DISABLED: "user disabled",
    Action.USER_ENABLED: "user enabled",
    Action.ROLE_CHANGED: "role changed",
    Action.PASSWORD_SET: "password set by an admin",
    Action.PASSWORD_CHANGED: "own password changed",
    Action.PASSWORD_RESET: "password reset",
    Action.LOGINS_UNLOCKED: "logins unlocked",
    Action.TOTP_ENABLED: "two-factor login switched on",
    Action.TOTP_DISABLED: "two-factor login switched off",
    Action.HASH_BANK_IMPORTED: "image hash bank imported",
    Action.HASH_BANK_DELETED: "image hash bank deleted",
    Action.ANALYSIS_FAILED: "image check failed",
    Action.FACES_BLURRED: "faces blurred for publication",
    Action.CAMPAIGN_ADDED: "campaign added",
    Action.CAMPAIGN_ENDED: "campaign ended",
    Action.CAMPAIGN_ARCHIVED: "campaign archived",
    Action.CAMPAIGN_ROLE_GRANTED: "role in a campaign changed",
    Action.CAMPAIGN_CREDENTIAL_SET: "campaign credential set",
    Action.CAMPAIGN_CREDENTIAL_CLEARED: "campaign credential cleared",
    Action.CAMPAIGN_EDITED: "campaign changed",
}

#: Actions about staff, not posts: logins and account changes. Public headers
#: (``Last-Modified``) ignore them, so they cannot tell when staff are active.
STAFF_ACTIVITY_ACTIONS = frozenset(
    {
        Action.LOGIN,
        Action.LOGIN_FAILED,
        Action.LOGOUT,
        Action.USER_ADDED,
        Action.USER_DISABLED,
        Action.USER_ENABLED,
        Action.ROLE_CHANGED,
        Action.PASSWORD_SET,
        Action.PASSWORD_CHANGED,
        Action.PASSWORD_RESET,
        Action.LOGINS_UNLOCKED,
        Action.TOTP_ENABLED,
        Action.TOTP_DISABLED,
        Action.CAMPAIGN_ROLE_GRANTED,
        Action.CAMPAIGN_CREDENTIAL_SET,
        Action.CAMPAIGN_CREDENTIAL_CLEARED,
    }
)
#: A moderator's decisions on a post (what undo reverses and the export lists).
DECISIONS = (Action.APPROVE, Action.REJECT)


def record(
    session: Session,
    *,
    actor: str,
    action: Action,
    post: Post | None = None,
    post_id: int | None = None,
    from_status: PostStatus | None = None,
    to_status: PostStatus | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
    campaign_id: int | None = None,
) -> AuditEvent:
    """Add one audit row to ``session`` (committed with the change it records) and return it.

    ``post`` or ``post_id`` says which post it is about (neither for logins, users and
    settings). Given ``post``, the statuses not passed are the post's status now: most
    actions on a post (a reveal, a takedown request, consent) leave it as it was.
    ``at`` defaults to now. ``campaign_id`` names the campaign a decision was made in
    (the statuses are then the post's in that campaign).
    """
    if post is not None:
        post_id = post.id
        from_status = post.status if from_status is None else from_status
        to_status = post.status if to_status is None else to_status
    event = AuditEvent(
        post_id=post_id,
        at=at or utcnow(),
        actor=actor,
        action=Action(action).value,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        detail=detail,
        campaign_id=campaign_id,
    )
    session.add(event)
    return event


def describe(event: AuditEvent) -> str:
    """What ``event`` did, in words: the kill switch reads as the gallery paused or
    resumed, not as a setting changed; an action this version does not know reads as
    its stored value."""
    try:
        action = Action(event.action)
    except ValueError:
        return event.action.replace("_", " ")
    detail = event.detail or {}
    key = str(detail.get("key"))
    if action is Action.SETTING_CHANGED and GALLERY_PAUSED in (key, key.rpartition(":")[0]):
        return "gallery paused" if detail.get("to") else "gallery resumed"
    return action.label


def post_histories(session: Session, post_ids: Sequence[int]) -> dict[int, list[AuditEvent]]:
    """Each post's events, oldest first (the latest ``HISTORY_PER_POST`` of them)."""
    histories: dict[int, list[AuditEvent]] = {post_id: [] for post_id in post_ids}
    if not post_ids:
        return histories
    # Ordered as the post_id index is, so the database walks it instead of the whole table.
    query = (
        select(AuditEvent)
        .where(col(AuditEvent.post_id).in_(list(post_ids)))
        .order_by(col(AuditEvent.post_id), col(AuditEvent.id))
    )
    for event in session.exec(query):
        histories[event.post_id or 0].append(event)
    return {post_id: events[-HISTORY_PER_POST:] for post_id, events in histories.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row as the audit page shows it: the action in words, the post by public id."""

    event: AuditEvent
    what: str
    #: ``platform:external_id``; None when the row is not about a post or the post is gone.
    post_ref: str | None


@dataclasses.dataclass(slots=True)
class AuditPage:
    entries: list[AuditEntry]
    #: Pass as ``before`` to read the next (older) page; None on the last page.
    next_before: int | None

    @property
    def events(self) -> list[AuditEvent]:
        return [entry.event for entry in self.entries]


def find_post_id(session: Session, ref: str) -> int:
    """The row id of the post named ``platform:external_id``, as the audit page shows
    posts; 0, which no row has, when there is no such post (a filter then shows nothing)."""
    platform, _, external_id = ref.strip().partition(":")
    found = session.exec(
        select(Post.id).where(Post.platform == platform, Post.external_id == external_id)
    ).first()
    return found or 0


def audit_log(
    session: Session,
    *,
    before: int | None = None,
    actor: str = "",
    action: str = "",
    post_id: int | None = None,
    limit: int = AUDIT_PAGE_SIZE,
) -> AuditPage:
    """Newest events first, optionally for one actor, action (stored value or its words)
    or post."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc())
    if before is not None:
        query = query.where(col(AuditEvent.id) < before)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        known = Action.from_words(action)
        query = query.where(AuditEvent.action == (known.value if known else action))
    if post_id is not None:
        query = query.where(AuditEvent.post_id == post_id)
    events = list(session.exec(query.limit(limit + 1)))
    more = len(events) > limit
    events = events[:limit]
    refs = _post_refs(session, {event.post_id for event in events if event.post_id is not None})
    entries = [AuditEntry(event, describe(event), refs.get(event.post_id or 0)) for event in events]
    return AuditPage(entries=entries, next_before=events[-1].id if more and events else None)


def _post_refs(session: Session, post_ids: set[int]) -> dict[int, str]:
    """``platform:external_id`` of each post, in one query."""
    if not post_ids:
        return {}
    rows = session.exec(
        select(Post.id, Post.platform, Post.external_id).where(col(Post.id).in_(sorted(post_ids)))
    )
    return {post_id or 0: f"{platform}:{external_id}" for post_id, platform, external_id in rows}


# Every decision recorded here is counted by the decisions roll-up in the same flush, by
# its mapper hooks: imported last (it reads DECISIONS) so they are registered wherever
# an audit row can be written.
from monitor.services import decisions as _decisions  # noqa: E402, F401
