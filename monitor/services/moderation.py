"""Decisions on posts: the one place approval and rejection happen, always audited.

Only a person (an active moderator or admin) can approve. A decision names
the version of the post it was made on; if the post changed since (another
decision, an edit at source), the decision is refused rather than applied
blindly. An image is approved only with alt text or marked decorative, so
the public gallery never shows an image a screen reader cannot describe.
Web, bulk and CLI decisions all go through :func:`decide`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from adapters import display_name
from adapters.text import normalise_tag
from monitor.analysis.text import alt_suggestion
from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import (
    AuditEvent,
    Campaign,
    CampaignPost,
    Consent,
    ImageFacts,
    MediaAnalysis,
    MediaItem,
    Post,
    PostHashtag,
    PostStatus,
    Role,
    User,
    UTCDateTime,
)
from monitor.services import audit, placements
from monitor.services.analysis import (
    FAILED,
    analyses_by_media,
    current_analysis,
    stored_findings,
    unblurred_faces,
    unchecked_positions,
)
from monitor.services.app_settings import campaign_key, get_app_setting, set_app_setting
from monitor.services.audit import Action, post_histories
from monitor.services.campaigns import get_campaign, role_in
from monitor.services.consent import consents_by_post, latest_consent
from monitor.services.known_images import (
    Reposts,
    bank_rejected_post,
    facts_by_media,
    reposts_for,
    unbank_post,
)
from monitor.services.links import LinkHost, link_hosts
from monitor.services.media import pinned_name
from monitor.services.placements import INSTALL, Scope
from monitor.services.staging import SHOWN_KINDS, is_staged
from monitor.services.takedown import open_takedown_count, open_takedown_posts
from monitor.services.users import get_active_user

_ACTIONS: dict[str, PostStatus] = {
    Action.APPROVE: PostStatus.APPROVED,
    Action.REJECT: PostStatus.REJECTED,
}
MAX_REASON_CHARS = 2000
MAX_ALT_CHARS = 1500
MAX_BULK_POSTS = 1000
NO_FLAG_REASON = "flagged (no reason recorded)"
#: The reject reasons admins can edit (an app setting), and the list a fresh install offers.
REJECT_REASONS = "reject_reasons"
DEFAULT_REJECT_REASONS = (
    "Off topic or hashtag hijacked",
    "Abusive, hateful or threatening",
    "Identifies a child or a school",
    "Personal data (phone, email, address)",
    "Spam or advertising",
    "Misinformation",
)
MAX_REJECT_REASONS = 30
MAX_REJECT_REASON_CHARS = 120


class StaleDecision(UserError):
    """The post changed after the moderator saw it."""


class CloserLookNeeded(UserError):
    """Approval needs a step only a look at the card gives: revealing media, acknowledging
    flags, alt text, or a stored copy to look at. ``cli_option`` names the command-line
    option that records the step, for ``moderate approve``."""

    cli_option: str | None = None
    #: What to do instead, for ``moderate approve``, when no option records the step.
    cli_hint: str | None = None


class MissingAlt(CloserLookNeeded):
    cli_option = "--alt N=TEXT or --decorative N"


class HiddenMediaUnseen(CloserLookNeeded):
    cli_option = "--media-seen"


class FlagsUnacknowledged(CloserLookNeeded):
    cli_option = "--ack-flags"


class ConsentNeeded(CloserLookNeeded):
    cli_option = "--consent TEXT"


class ImagesBeingChecked(CloserLookNeeded):
    """The automatic image checks have not finished: nothing to record, only to wait."""

    cli_hint = (
        "the checks run in `hashtag-monitor poll` and `run` on SQLite, in"
        " `hashtag-monitor worker` on PostgreSQL; approve once they have finished"
    )


class FacesNeedConsent(ConsentNeeded):
    """Faces were found: publishing them needs the consent of the people shown."""

    cli_option = "--consent TEXT, or blur them first with `moderate blur-faces`"


@dataclasses.dataclass(frozen=True, slots=True)
class DecisionResult:
    post_id: int
    from_status: PostStatus
    to_status: PostStatus


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


#: Characters of a post's text quoted when naming it to a moderator.
QUOTED_CHARS = 60


def describe_for_people(post: Post) -> str:
    """A post as the moderator sees it on the card: author, platform, first words."""
    words = " ".join(post.text.split())
    if len(words) > QUOTED_CHARS:
        words = words[: QUOTED_CHARS - 1].rstrip() + "…"
    platform = display_name(post.platform)
    quoted = f": “{words}”" if words else ""
    return f"the post by {post.author_handle} on {platform}{quoted}"


def _alt_changes(
    media: list[MediaItem], alt_texts: Mapping[int, str], decorative: Collection[int]
) -> list[tuple[MediaItem, str | None, bool]]:
    """What alt text and decorative mark each item will have, checked before any change."""
    changes = []
    for item in media:
        alt = item.alt
        if item.id is not None and item.id in alt_texts:
            alt = " ".join(alt_texts[item.id].split())[:MAX_ALT_CHARS] or None
        changes.append((item, alt, item.id in decorative or item.decorative))
    return changes


def _require_alt(post: Post, changes: list[tuple[MediaItem, str | None, bool]]) -> None:
    missing: dict[str, list[str]] = {}
    for item, alt, decorative in changes:
        if item.kind in SHOWN_KINDS and not alt and not decorative:
            missing.setdefault(item.kind, []).append(str(item.position + 1))
    if missing:
        which = "; ".join(f"{kind} {', '.join(numbers)}" for kind, numbers in missing.items())
        raise MissingAlt(
            f"{describe_for_people(post)}: {which} has no alt text;"
            " write one or mark it decorative before approving"
        )


def media_hidden(post: Post, media: Collection[MediaItem]) -> bool:
    """Media a moderator must reveal before judging: sensitive at source, or the post flagged."""
    return bool(media) and (post.sensitive or post.flagged or any(m.sensitive for m in media))


def _require_seen(post: Post, media: list[MediaItem], media_seen: bool) -> None:
    """Approval publishes our stored copies, so each must exist and have been looked at."""
    for item in media:
        if is_staged(item):
            continue
        number = f"{item.kind} {item.position + 1}"
        if item.pin_error:
            raise CloserLookNeeded(
                f"{describe_for_people(post)}: {number} could not be fetched for review"
                f" ({item.pin_error}); retry the download or reject the post"
            )
        raise CloserLookNeeded(
            f"{describe_for_people(post)}: {number} has not been fetched for review yet;"
            " reload in a moment"
        )
    if media_hidden(post, media) and not media_seen:
        raise HiddenMediaUnseen(
            f"{describe_for_people(post)}: its media is hidden (marked sensitive or flagged);"
            " show the media and look at it before approving"
        )


def _require_checked(
    post: Post, media: list[MediaItem], analyses: dict[int, MediaAnalysis]
) -> None:
    """Every stored copy's automatic check has finished (done, or failed and flagged)."""
    if waiting := unchecked_positions(media, analyses):
        which = ", ".join(str(n) for n in waiting)
        raise ImagesBeingChecked(
            f"{describe_for_people(post)}: image {which} is still being checked automatically"
            " (faces, text, known images); try again once the check has finished"
        )


def _require_face_consent(
    session: Session, post: Post, media: list[MediaItem], analyses: dict[int, MediaAnalysis]
) -> None:
    """Faces are published only with consent on record, or blurred (the consent policy)."""
    faces = unblurred_faces(media, analyses)
    if faces and latest_consent(session, post.id or 0) is None:
        raise FacesNeedConsent(
            f"{describe_for_people(post)}: {'; '.join(f.words for f in faces)}; record the"
            " consent of the people shown, or publish with faces blurred, before approving"
        )


def _require_consent(session: Session, post: Post) -> None:
    """An author who asked not to be shown publicly is published only with consent."""
    if post.opt_out and latest_consent(session, post.id or 0) is None:
        raise ConsentNeeded(
            f"{describe_for_people(post)}: the author asked not to be shown publicly"
            f" ({post.opt_out}); record their consent before approving"
        )


def flag_reasons(post: Post) -> list[str]:
    """The reasons a flagged post needs a closer look, each to be acknowledged; [] if none."""
    if not post.flagged:
        return []
    return list(post.flag_reasons or [NO_FLAG_REASON])


def _require_acknowledged(post: Post, acknowledged: Collection[str]) -> list[str]:
    """Every flag reason must be acknowledged in the decision; returns them, for the record."""
    reasons = flag_reasons(post)
    missing = [reason for reason in reasons if reason not in acknowledged]
    if missing:
        raise FlagsUnacknowledged(
            f"{describe_for_people(post)} is flagged: acknowledge each reason before approving"
            f" ({'; '.join(missing)[:300]})"
        )
    return reasons


def decide(
    *,
    session: Session,
    post: Post,
    action: str,
    actor: str,
    reason: str | None = None,
    settings: Settings,
    expected_version: int | None = None,
    alt_texts: Mapping[int, str] | None = None,
    decorative: Collection[int] = (),
    media_seen: bool = False,
    acknowledged_flags: Collection[str] = (),
    campaign: Campaign | None = None,
    everywhere: bool = False,
) -> DecisionResult:
    """Approve or reject one post as ``actor`` (a user name) in ``campaign`` (None: the
    default campaign), with an audit event. ``everywhere`` (a takedown upheld, a
    rejection only) decides it in every campaign it is in, by a moderator of ``campaign``.

    This is only the decision's transaction: lock, check the version, check the
    rules, write. Nothing is downloaded here; approval publishes the copies that
    staging stored and the moderator was shown (:mod:`monitor.services.staging`).
    ``alt_texts`` (media id -> text) and ``decorative`` (media ids) are the
    moderator's edits to the images' descriptions, kept with the decision.
    ``media_seen`` says the moderator revealed hidden media (the web app passes
    what it recorded, not what a form claims), and ``acknowledged_flags`` lists
    the flag reasons the moderator acknowledged.
    """
    if action not in _ACTIONS:
        raise UserError(f"unknown decision {action[:40]!r}: approve or reject")
    campaign = campaign or get_campaign(session, settings, None)
    moderator_in(session, actor=actor, campaign=campaign, doing="decide")
    # Re-read the row under a lock (FOR UPDATE on PostgreSQL; SQLite's writers already run
    # one at a time): a concurrent decision waits for this one, then sees its new version.
    session.refresh(post, with_for_update=True)
    current, campaign_id = status_in_campaign(session, post, campaign)
    if everywhere:
        if action != Action.REJECT:
            raise UserError("only a rejection is made in every campaign at once")
        current, campaign_id = post.status, None
    if expected_version is not None and post.version != expected_version:
        raise StaleDecision(
            f"{describe_for_people(post)} changed since you loaded it (another decision, an edit at"
            " source, or its media was fetched); review it again"
        )
    if current == PostStatus.REMOVED:
        raise UserError(f"{describe_for_people(post)} was removed at source")
    target = _ACTIONS[action]
    if post.escalated and target is PostStatus.APPROVED:
        raise UserError(
            f"{describe_for_people(post)} was escalated to the safeguarding lead;"
            " an escalated post is never published"
        )
    if current == target:
        raise UserError(f"{describe_for_people(post)} is already {target}")
    media = list(
        session.exec(
            select(MediaItem).where(MediaItem.post_id == post.id).order_by(col(MediaItem.position))
        )
    )
    changes = _alt_changes(media, alt_texts or {}, decorative)
    detail: dict[str, object] = {}
    if target is PostStatus.APPROVED:
        analyses = analyses_by_media(session, [post.id or 0]) if settings.image_analysis else {}
        if settings.image_analysis:
            _require_checked(post, media, analyses)
        _require_alt(post, changes)
        _require_seen(post, media, media_seen)
        _require_consent(session, post)
        if settings.image_analysis:
            _require_face_consent(session, post, media, analyses)
        if acknowledged := _require_acknowledged(post, acknowledged_flags):
            detail["acknowledged_flags"] = acknowledged
        if media_hidden(post, media):
            detail["media_seen"] = True
    if alt_edits := _apply_alt_changes(session, changes):
        detail["alt_edits"] = alt_edits
    reason = (reason or "").strip()[:MAX_REASON_CHARS] or None
    result = change_status(
        session,
        post,
        target,
        actor=actor,
        action=Action(action),
        reason=reason,
        detail=detail or None,
        campaign_id=campaign_id,
        from_status=current,
    )
    if post.status == PostStatus.REJECTED:
        # People rejected it in every campaign it is in: its pictures are never published
        # again (known_images).
        bank_rejected_post(session, post)
    return result


def moderator_in(session: Session, *, actor: str, campaign: Campaign, doing: str) -> User:
    """``actor``, active and a moderator or admin of ``campaign``; else a UserError naming
    the role they hold there and what they may not do."""
    user = get_active_user(session=session, name=actor)
    role = role_in(session, user, campaign)
    if role not in (Role.MODERATOR, Role.ADMIN):
        raise UserError(
            f"{actor} is {f'a {role}' if role else 'not a member'} in campaign"
            f" {campaign.slug!r}: only moderators and admins {doing}"
        )
    return user


def status_in_campaign(
    session: Session, post: Post, campaign: Campaign
) -> tuple[PostStatus, int | None]:
    """The post's status in ``campaign`` and the campaign id to decide it in, or a
    UserError if it is not in that campaign. A post in no campaign at all (stored by a
    tool, before placements) is the default campaign's, with its own status."""
    if campaign.id is not None:
        status = placements.status_in(session, post, campaign.id)
        if status is not None:
            return status, campaign.id
    if campaign.is_default and not placements.campaign_ids_of(session, post.id or 0):
        return post.status, None
    raise UserError(f"post {post.id} is not in campaign {campaign.slug!r}")


def change_status(
    session: Session,
    post: Post,
    to: PostStatus,
    *,
    actor: str,
    action: Action,
    reason: str | None = None,
    detail: dict[str, object] | None = None,
    campaign_id: int | None = None,
    from_status: PostStatus | None = None,
) -> DecisionResult:
    """Move a locked post to ``to`` in one campaign (None: in every campaign it is in),
    bump its version, and put the change on the record.

    ``from_status`` is its status in that campaign (default: its overall status).
    """
    result = DecisionResult(post.id or 0, from_status or post.status, to)
    was = post.status
    post.status = to  # a post in no campaign (stored by a tool) has only this status
    post.version += 1
    session.add(post)
    session.flush()
    placements.set_status(session, [post.id or 0], to, campaign_id=campaign_id)
    if was == PostStatus.REJECTED and post.status != PostStatus.REJECTED and post.id:
        unbank_post(session, post.id)  # the rejection was undone or reversed
    audit.record(
        session,
        post=post,
        actor=actor,
        action=action,
        from_status=result.from_status,
        to_status=result.to_status,
        reason=reason,
        detail=detail,
        campaign_id=campaign_id,
    )
    return result


def _apply_alt_changes(
    session: Session, changes: list[tuple[MediaItem, str | None, bool]]
) -> list[dict[str, object]]:
    """Store edited alt texts and decorative marks; what changed, for the audit row."""
    edits: list[dict[str, object]] = []
    for item, alt, decorative in changes:
        if alt == item.alt and decorative == item.decorative:
            continue
        edits.append({"media_id": item.id, "from": item.alt, "to": alt, "decorative": decorative})
        item.alt, item.decorative, item.alt_edited = alt, decorative, True
        session.add(item)
    return edits


def record_reveal(*, session: Session, post: Post, actor: str) -> None:
    """A moderator showed a post's hidden media: on the record, and what approval checks."""
    audit.record(
        session,
        post=post,
        actor=actor,
        action=Action.MEDIA_REVEALED,
        detail={"version": post.version},
    )


def revealed_by(session: Session, actor: str, posts: Collection[Post]) -> set[int]:
    """Ids of ``posts`` whose media ``actor`` revealed at the version they have now."""
    versions = {post.id: post.version for post in posts if post.id is not None}
    if not versions:
        return set()
    events = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == Action.MEDIA_REVEALED,
            AuditEvent.actor == actor,
            col(AuditEvent.post_id).in_(list(versions)),
        )
    )
    return {
        event.post_id
        for event in events
        if event.post_id is not None
        and (event.detail or {}).get("version") == versions.get(event.post_id)
    }


@dataclasses.dataclass(slots=True)
class BulkOutcome:
    """What a bulk decision did: posts decided, and posts refused with the reason."""

    decided: list[DecisionResult] = dataclasses.field(default_factory=list)
    refused: dict[int, str] = dataclasses.field(default_factory=dict)
    #: Of the refused, how many were left out because they need a closer look.
    needs_a_closer_look: int = 0


def decide_many(
    *,
    session: Session,
    versions: Mapping[int, int],
    action: str,
    actor: str,
    reason: str | None = None,
    settings: Settings,
    revealed: Collection[int] = (),
    campaign: Campaign | None = None,
) -> BulkOutcome:
    """Decide a selection (post id -> version the moderator saw) in one transaction.

    Each post goes through :func:`decide`; a stale, missing or undecidable post
    is refused on its own and the others still go ahead. No flag is acknowledged
    in bulk, and hidden media counts as seen only for the posts in ``revealed``,
    so bulk approval leaves out every post that needs a closer look.
    """
    if len(versions) > MAX_BULK_POSTS:
        raise UserError(f"select at most {MAX_BULK_POSTS} posts at a time")
    outcome = BulkOutcome()
    posts = {
        post.id: post for post in session.exec(select(Post).where(col(Post.id).in_(list(versions))))
    }
    # One flush at the end writes the selection's updates and audit rows in batches.
    with session.no_autoflush:
        for post_id, version in versions.items():
            post = posts.get(post_id)
            if post is None:
                outcome.refused[post_id] = f"post {post_id} does not exist"
                continue
            try:
                outcome.decided.append(
                    decide(
                        session=session,
                        post=post,
                        action=action,
                        actor=actor,
                        reason=reason,
                        settings=settings,
                        expected_version=version,
                        media_seen=post_id in revealed,
                        campaign=campaign,
                    )
                )
            except CloserLookNeeded as exc:
                outcome.refused[post_id] = str(exc)
                outcome.needs_a_closer_look += 1
            except UserError as exc:
                outcome.refused[post_id] = str(exc)
    return outcome


def _stored_reasons(session: Session, key: str) -> list[str] | None:
    stored = get_app_setting(session, key)
    if isinstance(stored, list) and stored and all(isinstance(item, str) for item in stored):
        return list(stored)
    return None


def has_own_reasons(session: Session, campaign: Campaign) -> bool:
    """The campaign has its own list (else it uses the install's)."""
    key = campaign_key(REJECT_REASONS, campaign)
    return key != REJECT_REASONS and _stored_reasons(session, key) is not None


def reject_reasons(session: Session, campaign: Campaign | None = None) -> list[str]:
    """The reasons moderators pick from when rejecting in ``campaign`` (None: the default
    campaign): its own list if its admins made one, else the install's. A decision in
    the campaign accepts only these (:func:`compose_reason`)."""
    own = _stored_reasons(session, campaign_key(REJECT_REASONS, campaign))
    if own is not None:
        return own
    return _stored_reasons(session, REJECT_REASONS) or list(DEFAULT_REJECT_REASONS)


def set_reject_reasons(
    *, session: Session, reasons: list[str], actor: str, campaign: Campaign | None = None
) -> list[str]:
    """Replace the reasons list of ``campaign`` (None or the default campaign: the
    install's, which every campaign without its own uses), one per line, audited."""
    cleaned = list(dict.fromkeys(" ".join(r.split()) for r in reasons if r.strip()))
    if not cleaned:
        raise UserError("keep at least one reject reason")
    if len(cleaned) > MAX_REJECT_REASONS:
        raise UserError(f"at most {MAX_REJECT_REASONS} reject reasons")
    if any(len(r) > MAX_REJECT_REASON_CHARS for r in cleaned):
        raise UserError(f"a reject reason is at most {MAX_REJECT_REASON_CHARS} characters")
    whose = "" if campaign is None or campaign.is_default else f" for campaign {campaign.slug}"
    set_app_setting(
        session,
        campaign_key(REJECT_REASONS, campaign),
        cleaned,
        actor=actor,
        reason=f"reject reasons edited{whose}",
    )
    return cleaned


def use_install_reasons(*, session: Session, campaign: Campaign, actor: str) -> None:
    """Drop a campaign's own list: it uses the install's again (audited)."""
    if not has_own_reasons(session, campaign):
        raise UserError(f"campaign {campaign.slug!r} already uses the install's reject reasons")
    set_app_setting(
        session,
        campaign_key(REJECT_REASONS, campaign),
        None,
        actor=actor,
        reason=f"reject reasons of campaign {campaign.slug}: the install's again",
    )


def compose_reason(choice: str | None, note: str | None, allowed: list[str]) -> str | None:
    """A reason from the list plus the moderator's own words; unknown choices are refused."""
    choice = (choice or "").strip()
    note = " ".join((note or "").split())
    if choice and choice not in allowed:
        raise UserError("choose a reason from the list")
    text = f"{choice}: {note}" if choice and note else choice or note
    return text[:MAX_REASON_CHARS] or None


# --- The queue: tabs, filters and keyset pages ----------------------------------------

#: ``takedowns``: posts with an open takedown request, whatever their status (usually
#: approved: only published posts can be reported).
QUEUE_TABS = ("takedowns", "pending", "flagged", "approved", "rejected", "removed")
QUEUE_PAGE_SIZE = 20
#: The rendition a card shows: sharp at a card's width on a high-density laptop screen.
CARD_WIDTH = 640
MAX_SEARCH_CHARS = 200
_SEGMENT_ALL = "a"


@dataclasses.dataclass(frozen=True, slots=True)
class QueueFilters:
    """What a moderator narrowed the queue to; empty fields do not filter."""

    tab: str = "pending"
    platform: str = ""
    tag: str = ""
    author: str = ""
    since: date | None = None
    until: date | None = None
    text: str = ""
    newest_first: bool = False
    #: The order the moderator chose (``newest`` or ``oldest``), kept across pages;
    #: empty when the tab's default applies.
    explicit_order: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class QueueCursor:
    """Where the next page starts: the flagged/unflagged segment and the last key seen."""

    segment: str
    created_at: datetime
    post_id: int

    def encode(self) -> str:
        return f"{self.segment}~{self.created_at.timestamp():.6f}~{self.post_id}"

    @classmethod
    def decode(cls, value: str | None) -> QueueCursor | None:
        """None for a missing or malformed cursor: the page starts from the top."""
        if not value or len(value) > 100:
            return None
        parts = value.split("~")
        if len(parts) != 3 or parts[0] not in ("1", "0", _SEGMENT_ALL):
            return None
        try:
            at = datetime.fromtimestamp(float(parts[1]), UTC)
            return cls(parts[0], at, int(parts[2]))
        except (ValueError, OverflowError, OSError):
            return None


def cursor_at_start(tab: str) -> str:
    """The cursor before every post of ``tab`` (an empty page's arrivals start there)."""
    return QueueCursor(_segments(tab)[0], datetime(1970, 1, 1, tzinfo=UTC), 0).encode()


def cursor_after(tab: str, post: Post) -> str:
    """The cursor of the place just after ``post`` in ``tab`` (where arrivals would go)."""
    segments = _segments(tab)
    segment = segments[0] if len(segments) == 1 else ("1" if post.flagged else "0")
    return QueueCursor(segment, post.created_at, post.id or 0).encode()


@dataclasses.dataclass(slots=True)
class QueuePage:
    posts: list[Post]
    next_cursor: str | None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(filters: QueueFilters, zone: ZoneInfo, scope: Scope | None) -> SelectOfScalar[Post]:
    """The posts of one tab in one campaign (``scope``; None: the whole install)."""
    scope = scope or INSTALL
    if filters.tab == "takedowns":
        query = scope.queue(None).where(col(Post.id).in_(open_takedown_posts()))
    elif filters.tab == "flagged":
        query = scope.queue(PostStatus.PENDING).where(col(Post.flagged).is_(True))
    else:
        query = scope.queue(filters.tab)
    if filters.platform:
        query = query.where(Post.platform == filters.platform)
    if filters.tag:
        # EXISTS follows the page's index order and probes the (post_id, tag) key per post;
        # an IN list would first gather every post with a campaign tag, i.e. nearly all.
        tagged = sa.exists().where(
            col(PostHashtag.post_id) == col(Post.id),
            col(PostHashtag.tag) == normalise_tag(filters.tag),
        )
        query = query.where(tagged)
    if filters.author:
        pattern = f"%{_escape_like(filters.author.lstrip('@'))}%"
        query = query.where(
            sa.or_(
                col(Post.author_handle).ilike(pattern, escape="\\"),
                col(Post.author_name).ilike(pattern, escape="\\"),
            )
        )
    if filters.text:
        pattern = f"%{_escape_like(filters.text)}%"
        query = query.where(col(Post.text).ilike(pattern, escape="\\"))
    if filters.since:
        start = datetime.combine(filters.since, time.min, zone)
        query = query.where(Post.created_at >= start)
    if filters.until:
        end = datetime.combine(filters.until + timedelta(days=1), time.min, zone)
        query = query.where(Post.created_at < end)
    return query


def _segments(tab: str) -> tuple[str, ...]:
    """Pending shows flagged posts first; the Flagged tab only them; other tabs do not split."""
    if tab == "pending":
        return ("1", "0")
    if tab == "flagged":
        return ("1",)
    return (_SEGMENT_ALL,)


def list_queue(
    session: Session,
    filters: QueueFilters,
    *,
    cursor: QueueCursor | None = None,
    limit: int = QUEUE_PAGE_SIZE,
    zone: ZoneInfo,
    scope: Scope | None = None,
) -> QueuePage:
    """One page of a tab in one campaign, by keyset on (created_at, id): fast however deep
    the queue is."""
    base = _filtered(filters, zone, scope)
    segments = _segments(filters.tab)
    if cursor is not None and cursor.segment in segments:
        segments = segments[segments.index(cursor.segment) :]
    else:
        cursor = None
    found: list[tuple[str, Post]] = []
    created_at, post_id = (scope or INSTALL).order_keys()
    for segment in segments:
        query = base
        if segment != _SEGMENT_ALL:
            query = query.where(col(Post.flagged).is_(segment == "1"))
        key = sa.tuple_(created_at, post_id)
        if cursor is not None and cursor.segment == segment:
            after = sa.tuple_(sa.literal(cursor.created_at, UTCDateTime()), cursor.post_id)
            query = query.where(key < after if filters.newest_first else key > after)
        if filters.newest_first:
            query = query.order_by(created_at.desc(), post_id.desc())
        else:
            query = query.order_by(created_at, post_id)
        wanted = limit + 1 - len(found)
        found += [(segment, post) for post in session.exec(query.limit(wanted))]
        if len(found) > limit:
            break
    more = len(found) > limit
    found = found[:limit]
    next_cursor = None
    if more and found:
        segment, last = found[-1]
        next_cursor = QueueCursor(segment, last.created_at, last.id or 0).encode()
    return QueuePage(posts=[post for _, post in found], next_cursor=next_cursor)


def matching_versions(
    session: Session,
    filters: QueueFilters,
    *,
    zone: ZoneInfo,
    limit: int,
    scope: Scope | None = None,
) -> dict[int, int]:
    """Every post the filters match (id -> version), oldest first, at most ``limit``: what a
    bulk decision on "all matching" covers."""
    query = _filtered(filters, zone, scope)
    query = query.order_by(col(Post.created_at), col(Post.id)).limit(limit)
    chosen = query.with_only_columns(col(Post.id))
    rows = session.execute(
        sa.select(col(Post.id), col(Post.version)).where(col(Post.id).in_(chosen))
    )
    return {int(post_id): int(version) for post_id, version in rows}


def queue_counts(session: Session, scope: Scope | None = None) -> dict[str, int]:
    """Posts in each tab of one campaign (None: the install), from one grouped scan of the
    (status, flagged, ...) index, or of the campaign's placements."""
    counts = dict.fromkeys(QUEUE_TABS, 0)
    counts["takedowns"] = open_takedown_count(session, scope)
    if scope is None or scope.alone:
        query = sa.select(col(Post.status), col(Post.flagged), sa.func.count()).group_by(
            col(Post.status), col(Post.flagged)
        )
    else:
        placed = CampaignPost.__table__
        query = (
            sa.select(placed.c.status, col(Post.flagged), sa.func.count())
            .join(Post.__table__, col(Post.id) == placed.c.post_id)
            .where(placed.c.campaign_id == scope.campaign_id)
            .group_by(placed.c.status, col(Post.flagged))
        )
    rows = session.execute(query)
    for status, flagged, number in rows:
        if status in counts:
            counts[status] += number
        if status == PostStatus.PENDING and flagged:
            counts["flagged"] += number
    return counts


def queue_facets(session: Session) -> tuple[list[str], list[str]]:
    """Platforms and hashtags present, for the filter menus."""
    platforms = list(
        session.execute(
            sa.select(col(Post.platform)).distinct().order_by(col(Post.platform))
        ).scalars()
    )
    tags = list(
        session.execute(
            sa.select(col(PostHashtag.tag)).distinct().order_by(col(PostHashtag.tag)).limit(200)
        ).scalars()
    )
    return platforms, tags


@dataclasses.dataclass(slots=True)
class QueueCard:
    """Everything a card shows about one post."""

    post: Post
    media: list[MediaItem]
    hashtags: list[str]
    history: list[AuditEvent]
    #: The text a moderator approved before the post was edited at source.
    previous_text: str | None = None
    #: The viewing moderator revealed this post's hidden media at its current version.
    revealed: bool = False
    #: The latest consent on record for this post, if any.
    consent: Consent | None = None
    #: What image analysis learnt about each image (read text, hash), by media id.
    facts: dict[int, ImageFacts] = dataclasses.field(default_factory=dict)
    #: Other posts carrying one of this post's pictures, if any.
    reposts: Reposts | None = None
    #: Each attachment's image analysis, by media id (empty when IMAGE_ANALYSIS is off).
    analyses: dict[int, MediaAnalysis] = dataclasses.field(default_factory=dict)
    image_analysis: bool = False

    def read_text(self, item: MediaItem) -> str | None:
        """The text read in one image, if any."""
        found = self.facts.get(item.id or 0)
        return found.read_text if found is not None else None

    def alt_suggestion(self, item: MediaItem) -> str | None:
        """A start for the alt text from the words read in the image (to be confirmed)."""
        text = self.read_text(item)
        return alt_suggestion(text) if text else None

    @property
    def being_checked(self) -> list[int]:
        """Positions of stored copies whose automatic check has not finished."""
        return unchecked_positions(self.media, self.analyses) if self.image_analysis else []

    @property
    def check_failures(self) -> list[tuple[int, str]]:
        """(position, why) of each stored copy whose automatic check failed."""
        failed = []
        for item in self.media:
            row = current_analysis(item, self.analyses)
            if row is not None and row.status == FAILED:
                failed.append((item.position + 1, row.error or "no reason recorded"))
        return failed

    @property
    def faces(self) -> list[str]:
        """Face findings in words, on copies not blurred yet (consent or blurring needed)."""
        return [finding.words for finding in unblurred_faces(self.media, self.analyses)]

    @property
    def blurred_positions(self) -> list[int]:
        """Positions whose stored copy is the one blurred at the faces (what is published)."""
        return [
            item.position + 1
            for item in self.media
            if (row := current_analysis(item, self.analyses)) is not None and row.blurred_from
        ]

    @property
    def text_findings(self) -> list[str]:
        """Every finding in words, image by image, for the card's "checked" note."""
        return [
            finding.words
            for item in self.media
            for finding in stored_findings(current_analysis(item, self.analyses))
        ]

    @property
    def hides_media(self) -> bool:
        """Sensitive at source, or flagged by a rule or a takedown: shown only on request."""
        return media_hidden(self.post, self.media)

    @property
    def blur_media(self) -> bool:
        """Hidden until this moderator reveals it (and the reveal is on the record); a
        withheld copy (a known-image bank match) is never shown, revealed or not."""
        return self.withheld or (self.hides_media and not self.revealed)

    @property
    def withheld(self) -> bool:
        """An image check asked for escalation: the media is shown to no one."""
        return any(
            (row := current_analysis(item, self.analyses)) is not None and row.withheld
            for item in self.media
        )

    @property
    def flag_reasons(self) -> list[str]:
        return flag_reasons(self.post)

    @property
    def link_hosts(self) -> list[LinkHost]:
        return link_hosts(self.post)

    @staticmethod
    def copy_url(item: MediaItem) -> str | None:
        """Our stored copy, at the rendition a card shows (staff route), or None if not staged."""
        if not item.pinned_hash or not item.pinned_widths:
            return None
        width = next((w for w in item.pinned_widths if w >= CARD_WIDTH), item.pinned_widths[-1])
        return f"/queue/media/{pinned_name(item.pinned_hash, width)}"


def load_cards(
    session: Session,
    posts: list[Post],
    viewer: str | None = None,
    *,
    image_analysis: bool = False,
) -> list[QueueCard]:
    """Media, hashtags, history, ``viewer``'s reveals and (``image_analysis``) the image
    checks for a page of posts, in a handful of queries."""
    ids = [post.id or 0 for post in posts]
    media: dict[int, list[MediaItem]] = {post_id: [] for post_id in ids}
    tags: dict[int, list[str]] = {post_id: [] for post_id in ids}
    if ids:
        for item in session.exec(
            select(MediaItem)
            .where(col(MediaItem.post_id).in_(ids))
            .order_by(col(MediaItem.post_id), col(MediaItem.position))
        ):
            media[item.post_id].append(item)
        for post_id, tag in session.execute(
            sa.select(col(PostHashtag.post_id), col(PostHashtag.tag))
            .where(col(PostHashtag.post_id).in_(ids))
            .order_by(col(PostHashtag.tag))
        ):
            tags[post_id].append(tag)
    histories = post_histories(session, ids)
    revealed = revealed_by(session, viewer, posts) if viewer else set()
    # Every post's: consent answers an opt-out, and also faces the image checks found.
    consents = consents_by_post(session, [post.id for post in posts if post.id])
    analyses = analyses_by_media(session, ids) if image_analysis else {}
    facts = facts_by_media(session, [item.id or 0 for items in media.values() for item in items])
    reposts = reposts_for(session, posts)
    cards = []
    for post in posts:
        history = histories[post.id or 0]
        previous = None
        if post.status == PostStatus.PENDING and post.edited_at is not None:
            edits = [e for e in history if e.action == Action.EDITED_AT_SOURCE and e.detail]
            if edits and edits[-1].from_status == PostStatus.APPROVED:
                previous = str((edits[-1].detail or {}).get("old_text") or "") or None
        cards.append(
            QueueCard(
                post,
                media[post.id or 0],
                tags[post.id or 0],
                history,
                previous,
                revealed=post.id in revealed,
                consent=consents.get(post.id or 0),
                analyses=analyses,
                image_analysis=image_analysis,
                facts={i.id or 0: facts[i.id or 0] for i in media[post.id or 0] if i.id in facts},
                reposts=reposts.get(post.id or 0),
            )
        )
    return cards
