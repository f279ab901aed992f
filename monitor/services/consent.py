"""Consent: an opted-out author's post is published only with consent on record.

Some authors say they do not want to be shown publicly (a Mastodon account that
is not indexable or discoverable, a Bluesky account or post labelled
``!no-unauthenticated``; ``docs/platforms.md`` says which platforms can tell).
Their posts arrive flagged, and approval needs a consent record: how it was
obtained, when, by whom, what it covers. A moderator (never a viewer) records
it; it is on the audit log and in the export. ``docs/data-protection.md`` sets
out the lawful bases a force may rely on instead, and why consent is asked here.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, col, select

from monitor.errors import UserError
from monitor.models import Consent, Post, utcnow
from monitor.services import audit
from monitor.services.audit import Action
from monitor.services.campaigns import require_post_moderator

MAX_CONSENT_CHARS = 1000
#: What consent recorded from the command line covers when it does not say.
DEFAULT_COVERS = "publication in the campaign gallery and its embeds"


def _clean(value: str, what: str) -> str:
    text = " ".join(value.split())[:MAX_CONSENT_CHARS]
    if not text:
        raise UserError(f"say {what}")
    return text


def record_consent(
    *,
    session: Session,
    post: Post,
    actor: str,
    how: str,
    obtained_on: date,
    covers: str = DEFAULT_COVERS,
) -> Consent:
    """Record consent to publish ``post`` (moderators and admins of a campaign it is in),
    with an audit row."""
    require_post_moderator(session, actor, post.id or 0, "record consent")
    if obtained_on > utcnow().date():
        raise UserError("consent cannot have been obtained in the future")
    consent = Consent(
        post_id=post.id or 0,
        how=_clean(how, "how consent was obtained"),
        obtained_on=obtained_on,
        covers=_clean(covers, "what the consent covers"),
        recorded_by=actor,
        recorded_at=utcnow(),
    )
    session.add(consent)
    audit.record(
        session,
        post=post,
        at=consent.recorded_at,
        actor=actor,
        action=Action.CONSENT_RECORDED,
        reason=consent.how,
        detail={"obtained_on": obtained_on.isoformat(), "covers": consent.covers},
    )
    return consent


def latest_consent(session: Session, post_id: int) -> Consent | None:
    """The most recent consent recorded for a post, if any."""
    return session.exec(
        select(Consent).where(Consent.post_id == post_id).order_by(col(Consent.id).desc())
    ).first()


def consents_by_post(session: Session, post_ids: list[int]) -> dict[int, Consent]:
    """The latest consent of each post that has one (for a page of cards or an export)."""
    found: dict[int, Consent] = {}
    if not post_ids:
        return found
    query = select(Consent).where(col(Consent.post_id).in_(post_ids)).order_by(col(Consent.id))
    for consent in session.exec(query):
        found[consent.post_id] = consent
    return found


def consent_record(consent: Consent | None) -> dict[str, str] | None:
    """A consent as the export writes it."""
    if consent is None:
        return None
    return {
        "how": consent.how,
        "obtained_on": consent.obtained_on.isoformat(),
        "covers": consent.covers,
        "by": consent.recorded_by,
        "at": consent.recorded_at.isoformat().replace("+00:00", "Z"),
    }
