"""Every database table, in one module.

Times are stored as UTC (``UTCDateTime`` turns them back into aware datetimes
on SQLite, which has no time zones). Table names are explicit plurals so none
collides with a reserved word on PostgreSQL (``user``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, get_args

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from adapters.base import MediaKind

if TYPE_CHECKING:

    class Table(SQLModel):
        """What a table model is to a type checker: SQLModel leaves ``__table__`` undeclared,
        and the services build Core statements on it."""

        __table__: ClassVar[sa.Table]

else:
    #: At run time every table is a plain ``SQLModel, table=True`` class.
    Table = SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class PostStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REMOVED = "removed"


class Role(StrEnum):
    VIEWER = "viewer"
    MODERATOR = "moderator"
    ADMIN = "admin"
    #: A safeguarding lead: sees escalations and closes them with an outcome; decides nothing.
    SAFEGUARDING = "safeguarding"
    #: No role in the default campaign: a member of the campaigns granted to them only.
    NONE = "none"


class RuleKind(StrEnum):
    BLOCKED_TERM = "blocked_term"
    BLOCKED_AUTHOR = "blocked_author"
    DETECTOR = "detector"
    #: A list of place names an admin uploaded (the names are :class:`PlaceName` rows).
    PLACE_NAMES = "place_names"


class RuleAction(StrEnum):
    REJECT = "reject"
    FLAG = "flag"


class TakedownCategory(StrEnum):
    """Why a member of the public asks for a post to come down (the form's choices)."""

    SHOWS_ME_OR_MY_CHILD = "shows_me_or_my_child"
    PERSONAL_INFORMATION = "personal_information"
    ABUSIVE_OR_MISLEADING = "abusive_or_misleading"
    MY_CONTENT = "my_content"
    OTHER = "other"


class TakedownOutcome(StrEnum):
    KEPT = "kept"
    TAKEN_DOWN = "taken_down"


class AlertKind(StrEnum):
    TAKEDOWN = "takedown"
    ESCALATION = "escalation"


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class PollKind(StrEnum):
    POLL = "poll"
    BACKFILL = "backfill"


class AnalysisStatus(StrEnum):
    """Where a stored copy's image checks are: waiting or under way, finished, failed."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class DigestStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"


def _enum(vocabulary: type[StrEnum] | tuple[str, ...], length: int) -> sa.Enum:
    """A column holding one word of a fixed vocabulary, stored as the word itself.

    ``VARCHAR(length)`` without a database CHECK, exactly the column the earlier
    migrations made, so existing rows stay valid and adding a word needs no
    migration; SQLAlchemy refuses any other string before it is written and reads
    the StrEnum member back.
    """
    if isinstance(vocabulary, tuple):
        return sa.Enum(*vocabulary, native_enum=False, length=length, validate_strings=True)
    return sa.Enum(
        vocabulary,
        native_enum=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


class Post(Table, table=True):
    """A post as last seen at source, with its moderation state."""

    __tablename__ = "posts"
    __table_args__ = (
        sa.UniqueConstraint("platform", "external_id", name="uq_posts_platform_external_id"),
        sa.Index("ix_posts_status_created_at", "status", "created_at"),
        # Per-day counts (digest, stats) range over created_at and read only these columns.
        sa.Index("ix_posts_created_at", "created_at", "platform", "author_handle"),
        # The digest's pending backlog and its oldest arrival, without reading the rows.
        sa.Index("ix_posts_status_first_seen_at", "status", "first_seen_at"),
        # The queue pages flagged posts first, then by time, within one status.
        sa.Index("ix_posts_status_flagged_created", "status", "flagged", "created_at", "id"),
        # The digest's flagged count for a period, without reading the period's posts.
        sa.Index("ix_posts_flagged_created_at", "flagged", "created_at"),
        # A stream's delete event names the post by its ref (Mastodon: instance|local id).
        sa.Index("ix_posts_platform_ref", "platform", "ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=40)
    external_id: str = Field(max_length=500)
    ref: str = Field(max_length=600)
    url: str = Field(sa_type=sa.Text)
    author_handle: str = Field(max_length=300, index=True)
    author_name: str = Field(max_length=300)
    author_url: str | None = Field(default=None, sa_type=sa.Text)
    text: str = Field(sa_type=sa.Text)
    html: str = Field(sa_type=sa.Text)
    content_warning: str | None = Field(default=None, sa_type=sa.Text)
    sensitive: bool = False
    #: The author asked not to be shown publicly (see ``FetchedPost.opt_out``), in words.
    opt_out: str | None = Field(default=None, sa_type=sa.Text)
    content_hash: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    first_seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    #: When the post became visible in the moderation queue (its pictures staged, or none to
    #: stage): ``queued_at - first_seen_at`` is the stored-to-queue latency on /metrics.
    queued_at: datetime | None = _time()
    last_seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    edited_at: datetime | None = _time()
    deleted_at: datetime | None = _time()
    status: PostStatus = Field(
        default=PostStatus.PENDING, sa_type=_enum(PostStatus, 20), index=True
    )
    #: Set by rules and takedown requests: the post needs a closer look (never approves).
    flagged: bool = Field(default=False, index=True)
    flag_reasons: list[str] | None = Field(default=None, sa_type=sa.JSON)
    #: Bumped on every change a moderator must see (decision, edit at source).
    version: int = 1
    likes: int | None = Field(default=None, sa_type=sa.BigInteger)
    shares: int | None = Field(default=None, sa_type=sa.BigInteger)
    replies: int | None = Field(default=None, sa_type=sa.BigInteger)
    quotes: int | None = Field(default=None, sa_type=sa.BigInteger)
    views: int | None = Field(default=None, sa_type=sa.BigInteger)
    #: A takedown request in a safeguarding category holds the post off every public
    #: route until a moderator reviews it.
    takedown_hold: bool = False
    #: Escalated to the safeguarding lead: off every public route for good.
    escalated: bool = False


class PostHashtag(Table, table=True):
    """Which campaign (or other) hashtags a post carries, in matching form."""

    __tablename__ = "post_hashtags"

    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
        )
    )
    tag: str = Field(max_length=200, primary_key=True, index=True)


class MediaItem(Table, table=True):
    """An attachment as the platform describes it, and our one stored copy of it.

    The copy is made once, before any moderator sees the attachment (staging), and
    the queue shows that copy; approval publishes the same files. So the public
    sees exactly the bytes a person looked at, and a media host never gets a
    second chance to serve something else.
    """

    __tablename__ = "media"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    position: int = 0
    kind: MediaKind = Field(sa_type=_enum(get_args(MediaKind), 10))
    url: str = Field(sa_type=sa.Text)
    preview_url: str | None = Field(default=None, sa_type=sa.Text)
    alt: str | None = Field(default=None, sa_type=sa.Text)
    sensitive: bool = False
    width: int | None = None
    height: int | None = None
    expires_at: datetime | None = _time()
    #: The attachment's stable identity at source (its key, else its URL): an edit at source
    #: that keeps it keeps our copy and the moderator's alt text.
    media_key: str | None = Field(default=None, sa_type=sa.Text)
    pinned_path: str | None = Field(default=None, max_length=300)
    pin_error: str | None = Field(default=None, sa_type=sa.Text)
    #: SHA-256 of the downloaded original: pinned files are ``<hash>-<width>.jpg``.
    pinned_hash: str | None = Field(default=None, max_length=64, index=True)
    #: Widths of the re-encoded renditions, smallest first; the last is the largest.
    pinned_widths: list[int] | None = Field(default=None, sa_type=sa.JSON)
    pinned_width: int | None = None
    pinned_height: int | None = None
    #: A moderator said the image adds nothing a reader needs: published with empty alt.
    decorative: bool = False
    #: The alt text (or decorative mark) is a moderator's, not the platform's.
    alt_edited: bool = False


class MediaAnalysis(Table, table=True):
    """What the image analysis made of one stored copy: pending, done or failed, and why.

    Keyed by attachment; ``pinned_hash`` names the copy it is about, so a copy
    replaced (an edit at source, a copy fetched anew) is analysed again. The job
    queue's own tables (PostgreSQL) say what is running; this row is what the card,
    approval and ``status`` read.
    """

    __tablename__ = "media_analyses"
    __table_args__ = (sa.Index("ix_media_analyses_status_queued", "status", "queued_at"),)

    media_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("media.id", ondelete="CASCADE"), primary_key=True
        )
    )
    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    pinned_hash: str = Field(max_length=64)
    status: AnalysisStatus = Field(
        default=AnalysisStatus.PENDING, sa_type=_enum(AnalysisStatus, 10)
    )
    attempts: int = 0
    error: str | None = Field(default=None, sa_type=sa.Text)
    #: Every finding, as :func:`monitor.services.analysis.finding_record` writes it.
    findings: list[dict[str, Any]] | None = Field(default=None, sa_type=sa.JSON)
    queued_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    #: The copy was replaced by one blurred at the face boxes: the unblurred copy's hash.
    blurred_from: str | None = Field(default=None, max_length=64)
    #: A finding asked for escalation (a known-image bank match): the copy is never shown
    #: to anyone, staff included.
    withheld: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class TakedownRequest(Table, table=True):
    """A member of the public asked for a post to be removed: it flags the post and, in a
    safeguarding category, holds it off the public routes until a moderator resolves it."""

    __tablename__ = "takedown_requests"
    __table_args__ = (
        sa.Index("ix_takedown_requests_client_at", "client_key", "at"),
        sa.Index("ix_takedown_requests_network_at", "network_key", "at"),
        # The Takedown tab and every staff page's count read the open requests only.
        sa.Index("ix_takedown_requests_open", "resolved_at", "post_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    post_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    category: TakedownCategory = Field(sa_type=_enum(TakedownCategory, 40))
    details: str | None = Field(default=None, sa_type=sa.Text)
    contact: str | None = Field(default=None, max_length=320)
    #: Keyed hash of the client address: enough to rate-limit, not to identify.
    client_key: str = Field(max_length=64)
    #: Keyed hash of the address's network (an IPv6 /64, an IPv4 /24), for a wider limit.
    network_key: str = Field(default="", max_length=64)
    resolved_at: datetime | None = _time()
    resolved_by: str | None = Field(default=None, max_length=100)
    outcome: TakedownOutcome | None = Field(default=None, sa_type=_enum(TakedownOutcome, 20))


class Escalation(Table, table=True):
    """A post escalated to the safeguarding lead; open until an admin or lead closes it."""

    __tablename__ = "escalations"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    opened_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    opened_by: str = Field(max_length=100)
    reason: str = Field(sa_type=sa.Text)
    closed_at: datetime | None = _time(index=True)
    closed_by: str | None = Field(default=None, max_length=100)
    outcome: str | None = Field(default=None, sa_type=sa.Text)


class SafeguardingAlert(Table, table=True):
    """A message owed to ``SAFEGUARDING_ALERT_TO``, sent after the request's commit."""

    __tablename__ = "safeguarding_alerts"
    __table_args__ = (sa.Index("ix_safeguarding_alerts_status_created", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: AlertKind = Field(sa_type=_enum(AlertKind, 20))
    post_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="SET NULL"), nullable=True
        ),
    )
    #: The lines of the message (no media, no requester contact), fixed when raised.
    summary: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: AlertStatus = Field(default=AlertStatus.PENDING, sa_type=_enum(AlertStatus, 20))
    attempts: int = 0
    sent_at: datetime | None = _time()
    error: str | None = Field(default=None, sa_type=sa.Text)


class Consent(Table, table=True):
    """Consent to publish a post, as a moderator recorded it: how it was obtained, when,
    by whom, and what it covers. An opted-out author's post needs one before approval."""

    __tablename__ = "consents"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    how: str = Field(sa_type=sa.Text)
    obtained_on: date = Field(sa_type=sa.Date, nullable=False)
    covers: str = Field(sa_type=sa.Text)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class EngagementSnapshot(Table, table=True):
    """Engagement counts at one moment; the digest subtracts consecutive ones."""

    __tablename__ = "engagement_snapshots"
    __table_args__ = (sa.Index("ix_snapshots_post_taken", "post_id", "taken_at"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False
        )
    )
    taken_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    likes: int | None = Field(default=None, sa_type=sa.BigInteger)
    shares: int | None = Field(default=None, sa_type=sa.BigInteger)
    replies: int | None = Field(default=None, sa_type=sa.BigInteger)
    quotes: int | None = Field(default=None, sa_type=sa.BigInteger)
    views: int | None = Field(default=None, sa_type=sa.BigInteger)


class AuditEvent(Table, table=True):
    """One line of the audit trail: who or what did what, when, from which state, why.

    Not only moderation: logins, account and setting changes are here too, so the model
    is named for the trail. Its table keeps the name the first migration gave it
    (``moderation_events``): renaming a table every install holds buys nothing. What
    can be recorded, and the one way to record it, is :mod:`monitor.services.audit`.
    """

    __tablename__ = "moderation_events"
    __table_args__ = (
        # The digest's decisions of a period, read from the index alone.
        sa.Index("ix_moderation_events_at_action", "at", "action", "to_status", "post_id"),
        # A period's removals and takedown requests: a range per (rare) action.
        sa.Index("ix_moderation_events_action_at", "action", "at"),
        # The decisions of one wait bucket in a period, in wait order (see DecisionSlot).
        sa.Index("ix_moderation_events_wait", "wait_us", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    post_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=40, index=True)
    from_status: PostStatus | None = Field(default=None, sa_type=_enum(PostStatus, 20))
    to_status: PostStatus | None = Field(default=None, sa_type=_enum(PostStatus, 20))
    reason: str | None = Field(default=None, sa_type=sa.Text)
    detail: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    #: The campaign a decision was made in (None: every campaign the post is in, or not
    #: about a post's moderation at all).
    campaign_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True
        ),
    )
    #: A decision's time from the post's arrival, in microseconds (None: not a decision,
    #: or its post is gone); kept by :mod:`monitor.services.decisions`.
    wait_us: int | None = Field(default=None, sa_type=sa.BigInteger)


class ErasedAuthor(Table, table=True):
    """Someone whose data was erased on request, kept only as a keyed hash of the handle,
    so their posts, if polled again, come back flagged and never straight to the public."""

    __tablename__ = "erased_authors"

    platform: str = Field(max_length=40, primary_key=True)
    handle_hash: str = Field(max_length=64, primary_key=True)
    erased_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class AppSetting(Table, table=True):
    """Small runtime switches admins change (e.g. the gallery kill switch)."""

    __tablename__ = "app_settings"

    key: str = Field(max_length=100, primary_key=True)
    value: Any = Field(default=None, sa_type=sa.JSON)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_by: str = Field(max_length=200)


class User(Table, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    role: Role = Field(sa_type=_enum(Role, 20))
    password_hash: str = Field(max_length=200)
    disabled: bool = False
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    #: Set by an admin's reset: the one-time password works only to choose a new one.
    must_change_password: bool = Field(
        default=False, sa_column_kwargs={"server_default": sa.false()}
    )
    #: Base32 TOTP secret once the user has set up an authenticator app; None: password only.
    totp_secret: str | None = Field(default=None, max_length=64)
    #: The last 30-second step a code was accepted for, so a code works only once.
    totp_last_step: int | None = Field(default=None, sa_type=sa.BigInteger)


class Source(Table, table=True):
    """One polled target (platform + scope + hashtags): its cursor and its health."""

    __tablename__ = "sources"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=700, unique=True)
    platform: str = Field(max_length=40, index=True)
    scope: str = Field(default="", max_length=600)
    hashtags: str = Field(default="", max_length=600)
    cursor: str | None = Field(default=None, sa_type=sa.Text)
    disabled_reason: str | None = Field(default=None, sa_type=sa.Text)
    last_poll_at: datetime | None = _time()
    last_success_at: datetime | None = _time()
    last_error_at: datetime | None = _time()
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    failing_since: datetime | None = _time()
    failures_in_row: int = 0
    possible_gap: str | None = Field(default=None, sa_type=sa.Text)
    retry_at: datetime | None = _time()
    backfill_cursor: str | None = Field(default=None, sa_type=sa.Text)
    #: How posts arrive now: ``streaming``, ``catching_up`` or ``polling`` (None: polling,
    #: the only mode a source had before streams); ``mode_note`` says why, for people.
    mode: str | None = Field(default=None, max_length=20)
    mode_note: str | None = Field(default=None, sa_type=sa.Text)
    #: A stream's own resume position where it differs from the polling cursor (Jetstream's
    #: ``time_us``), committed with the posts it covers.
    stream_cursor: str | None = Field(default=None, sa_type=sa.Text)
    #: The platform time up to which the stream has delivered everything: lag = now - this.
    stream_position_at: datetime | None = _time()
    #: When the source was first configured (unknown for sources from before it was kept):
    #: a period that ended before it is not one the source was meant to watch.
    created_at: datetime | None = _time()
    #: When it left the configuration (platform or hashtags removed): kept for the
    #: history of the days it was watched, out of status, /metrics and coverage after.
    retired_at: datetime | None = _time(index=True)
    #: The campaign whose own credentials this source polls with (None: the install's).
    #: No foreign key: a campaign is never deleted (it ends and is archived), and a column
    #: added with one would make SQLite copy this table.
    campaign_id: int | None = Field(default=None, index=True)


class Campaign(Table, table=True):
    """A campaign: the hashtags it watches on which platforms, and when.

    Before ``starts_on`` it polls nothing; after ``ends_on`` (or once ended by a command)
    its polling stops and its sources retire. Days are the install's ``TIMEZONE`` days.
    The default campaign (``is_default``) is the one a single-campaign install has: its
    hashtags and platforms follow ``HASHTAGS`` and ``PLATFORMS``, so such an install
    never needs a campaign command; the row keeps what they were at the last start.
    """

    __tablename__ = "campaigns"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=60, unique=True)
    name: str = Field(max_length=200)
    #: Comma-separated, as given (``CEADAY21,HelpingHands``); matched in normalised form.
    hashtags: str = Field(sa_type=sa.Text)
    #: Comma-separated platform names; empty: every platform the install has enabled.
    platforms: str = Field(default="", sa_type=sa.Text)
    starts_on: date | None = None
    ends_on: date | None = None
    is_default: bool = False
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    #: Ended by ``campaigns end`` before (or without) its end date.
    ended_at: datetime | None = _time()
    #: Archived: its public pages answer 410 Gone.
    archived_at: datetime | None = _time()
    #: The campaign's own retention periods in days (None: the install's ``RETENTION_*``);
    #: a post in several campaigns goes only once every one of them would let it go
    #: (:mod:`monitor.services.retention`).
    retention_rejected_days: int | None = None
    retention_pending_days: int | None = None
    retention_removed_days: int | None = None
    #: Its digest's recipients (comma list), sender and time (``HH:MM``). None on the
    #: default campaign: ``DIGEST_TO``, ``DIGEST_FROM``, ``DIGEST_TIME``; on another, no
    #: recipients (no mail), the install's sender and time.
    digest_to: str | None = Field(default=None, sa_type=sa.Text)
    digest_from: str | None = Field(default=None, max_length=320)
    digest_time: str | None = Field(default=None, max_length=5)


class CampaignPost(Table, table=True):
    """A post in one campaign, and its moderation state there.

    A post with the tags of two campaigns is stored, fetched and analysed once, and
    decided per campaign: each campaign's queue and gallery read their own row. The
    post's own ``status`` is its state across them, kept by
    :mod:`monitor.services.placements` (approved if public anywhere).
    """

    __tablename__ = "campaign_posts"
    __table_args__ = (
        # A campaign's queue tab, in the queue's keyset order, read from the index alone.
        sa.Index("ix_campaign_posts_queue", "campaign_id", "status", "created_at", "post_id"),
        # A campaign's digest: its posts of a period, whatever their status, one range.
        sa.Index("ix_campaign_posts_created", "campaign_id", "created_at", "post_id"),
    )

    campaign_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
        )
    )
    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer,
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        )
    )
    status: PostStatus = Field(default=PostStatus.PENDING, sa_type=_enum(PostStatus, 20))
    #: The post's own ``created_at`` (it never changes): the queue's order, kept here so a
    #: campaign's page is one index range, not a sort of all its posts.
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class CampaignRole(Table, table=True):
    """A user's role in one campaign other than the default (whose role is ``User.role``)."""

    __tablename__ = "campaign_roles"

    user_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        )
    )
    campaign_id: int = Field(
        sa_column=sa.Column(
            sa.Integer,
            sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        )
    )
    role: Role = Field(sa_type=_enum(Role, 20))


class CampaignCredential(Table, table=True):
    """One of a campaign's own platform credentials (a force polling with its own account).

    ``sealed`` is the value encrypted with a key derived from ``SECRET_KEY``
    (:mod:`monitor.services.credentials`): never stored, logged or shown in clear.
    """

    __tablename__ = "campaign_credentials"

    campaign_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
        )
    )
    platform: str = Field(max_length=40, primary_key=True)
    #: The adapter's settings key, as written in ``.env`` (``X_BEARER_TOKEN``).
    key: str = Field(max_length=80, primary_key=True)
    sealed: str = Field(sa_type=sa.Text)
    set_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    set_by: str = Field(max_length=200)


class PollRun(Table, table=True):
    """One attempt to poll (or backfill) a source, kept for status and the digest."""

    __tablename__ = "poll_runs"
    __table_args__ = (
        sa.Index("ix_poll_runs_source_started", "source_id", "started_at"),
        # A period's reported gaps, which are few, without reading its every run.
        sa.Index("ix_poll_runs_gap", "gap", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False
        )
    )
    kind: PollKind = Field(default=PollKind.POLL, sa_type=_enum(PollKind, 20))
    started_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    finished_at: datetime | None = _time()
    ok: bool = False
    pages: int = 0
    requests: int = 0
    fetched: int = 0
    new: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = Field(default=None, sa_type=sa.Text)
    gap: str | None = Field(default=None, sa_type=sa.Text)


class DigestSend(Table, table=True):
    """One attempt to send a campaign's digest of a day, so it is sent at most once a
    (campaign, day) unless forced."""

    __tablename__ = "digest_sends"
    __table_args__ = (
        sa.Index("ix_digest_sends_day_status", "day", "status"),
        sa.Index("ix_digest_sends_campaign_day", "campaign_id", "day", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(sa_type=sa.Date, nullable=False)
    sent_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    recipients: str = Field(sa_type=sa.Text)
    status: DigestStatus = Field(sa_type=_enum(DigestStatus, 20))
    error: str | None = Field(default=None, sa_type=sa.Text)
    forced: bool = False
    #: The campaign whose digest it was (None: rows from before campaigns, the default's).
    campaign_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=True
        ),
    )


class WebSession(Table, table=True):
    """A login: the cookie carries a token whose hash is the key, so a stolen
    database does not yield live cookies, and logout, disable or expiry end it."""

    __tablename__ = "web_sessions"

    token_hash: str = Field(max_length=64, primary_key=True)
    user_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    csrf_token: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    address: str | None = Field(default=None, max_length=100)
    #: Messages to show once on the next page (the result of a form post).
    flash: list[str] | None = Field(default=None, sa_type=sa.JSON)
    #: The campaign whose queue this login works on (None: the user's first campaign).
    campaign_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True
        ),
    )


class LoginAttempt(Table, table=True):
    """One login try, kept a while to slow and then lock repeated failures."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        sa.Index("ix_login_attempts_name_at", "name", "at"),
        sa.Index("ix_login_attempts_address_at", "address", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    name: str = Field(max_length=100)
    address: str = Field(max_length=100)
    success: bool = False


class ModerationRule(Table, table=True):
    """An admin rule run at ingestion; it may reject or flag a post, never approve."""

    __tablename__ = "moderation_rules"

    id: int | None = Field(default=None, primary_key=True)
    kind: RuleKind = Field(sa_type=_enum(RuleKind, 20))
    pattern: str = Field(max_length=300)
    action: RuleAction = Field(sa_type=_enum(RuleAction, 10))
    enabled: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_by: str = Field(max_length=200)
    #: The campaign whose own rule (or place-name list) this is (None: shared by every campaign).
    campaign_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer,
            sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
    )


class EngagementDay(Table, table=True):
    """One post's engagement on one local day (in :class:`EngagementRollup`'s zone).

    Kept with every snapshot, in the same transaction, so the digest reads one row
    per post active on the day instead of every snapshot: the day's last counts (by
    ``taken_at``, then snapshot id), the last counts before the day, and the gain
    between them, computed exactly as the digest defines it.
    """

    __tablename__ = "engagement_days"
    __table_args__ = (
        # The digest's one-day sums and top posts read only this index.
        sa.Index(
            "ix_engagement_days_day",
            "day",
            "interactions",
            "post_id",
            "platform",
            "gained_likes",
            "gained_shares",
            "gained_replies",
            "gained_quotes",
            "gained_views",
        ),
        # The few days whose gains a range cannot add up (see ``flips``).
        sa.Index("ix_engagement_days_flips", "flips", "day", "post_id"),
    )

    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
        )
    )
    day: date = Field(sa_type=sa.Date, primary_key=True)
    platform: str = Field(max_length=40)
    #: When the day's last snapshot was taken (of two at one instant, the later written).
    taken_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    likes: int | None = Field(default=None, sa_type=sa.BigInteger)
    shares: int | None = Field(default=None, sa_type=sa.BigInteger)
    replies: int | None = Field(default=None, sa_type=sa.BigInteger)
    quotes: int | None = Field(default=None, sa_type=sa.BigInteger)
    views: int | None = Field(default=None, sa_type=sa.BigInteger)
    prev_likes: int | None = Field(default=None, sa_type=sa.BigInteger)
    prev_shares: int | None = Field(default=None, sa_type=sa.BigInteger)
    prev_replies: int | None = Field(default=None, sa_type=sa.BigInteger)
    prev_quotes: int | None = Field(default=None, sa_type=sa.BigInteger)
    prev_views: int | None = Field(default=None, sa_type=sa.BigInteger)
    gained_likes: int | None = Field(default=None, sa_type=sa.BigInteger)
    gained_shares: int | None = Field(default=None, sa_type=sa.BigInteger)
    gained_replies: int | None = Field(default=None, sa_type=sa.BigInteger)
    gained_quotes: int | None = Field(default=None, sa_type=sa.BigInteger)
    gained_views: int | None = Field(default=None, sa_type=sa.BigInteger)
    #: The known interaction gains added up (0 when none is known): ranks top posts.
    interactions: int = Field(default=0, sa_type=sa.BigInteger)
    #: A count the post's day before gave (or not) is missing (or given) here: across this
    #: day, gains do not add up day by day, so ranges work this post out from its rows.
    flips: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class GainDay(Table, table=True):
    """Per local day and platform, the :class:`EngagementDay` gains added up, and how many
    posts give each: a range's sums are a few rows a day, not one row per post."""

    __tablename__ = "gain_days"

    day: date = Field(sa_type=sa.Date, primary_key=True)
    platform: str = Field(max_length=40, primary_key=True)
    #: Posts with engagement that day (a platform with posts but no count given is shown).
    posts: int = 0
    likes: int = Field(default=0, sa_type=sa.BigInteger)
    shares: int = Field(default=0, sa_type=sa.BigInteger)
    replies: int = Field(default=0, sa_type=sa.BigInteger)
    quotes: int = Field(default=0, sa_type=sa.BigInteger)
    views: int = Field(default=0, sa_type=sa.BigInteger)
    known_likes: int = 0
    known_shares: int = 0
    known_replies: int = 0
    known_quotes: int = 0
    known_views: int = 0


class GainBound(Table, table=True):
    """The most interactions one post can gain over any range of days, and its days.

    A range's top posts are found by walking posts from the highest bound down, working
    out each one's exact gain over the range from its day rows, and stopping once the
    fifth best beats every bound left: a few posts read, not every day row of the range.
    The bound is, per interaction, the highest count the post's day rows hold (or 0)
    less the lowest (or 0). ``rank`` is minus the bound, so that one ascending index
    walks it high to low, the older post first among equals (as the ranking breaks ties).
    Kept by :mod:`monitor.services.engagement` with the day rows.
    """

    __tablename__ = "gain_bounds"
    __table_args__ = (sa.Index("ix_gain_bounds_rank", "rank", "post_id", "first_day", "last_day"),)

    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
        )
    )
    rank: int = Field(sa_type=sa.BigInteger)
    first_day: date = Field(sa_type=sa.Date)
    last_day: date = Field(sa_type=sa.Date)


class EngagementRollup(Table, table=True):
    """The one row saying which time zone :class:`EngagementDay` cuts days in.

    The digest uses the roll-up only when this is its own zone; after a change of
    ``TIMEZONE`` it computes from the snapshots until the roll-up is rebuilt.
    """

    __tablename__ = "engagement_rollup"

    id: int = Field(default=1, primary_key=True)
    zone: str = Field(max_length=64)
    built_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class PostSlot(Table, table=True):
    """Posts created on one platform in one 15-minute UTC slot, and their counts as last seen.

    Every zone's local midnight and hour fall on a quarter-hour in UTC, so any day, hour
    or range in any ``TIMEZONE`` is a whole number of slots: the digest sums slots instead
    of reading posts. Kept by :mod:`monitor.services.rollup` with every write of a post.
    """

    __tablename__ = "post_slots"
    #: Clustered on the key on SQLite: a range of slots is one contiguous read.
    __table_args__ = {"sqlite_with_rowid": False}

    slot: int = Field(primary_key=True)
    platform: str = Field(max_length=40, primary_key=True)
    posts: int = 0
    #: Sums of the posts' counts as last seen, and how many posts give each (0: unknown).
    likes: int = Field(default=0, sa_type=sa.BigInteger)
    shares: int = Field(default=0, sa_type=sa.BigInteger)
    replies: int = Field(default=0, sa_type=sa.BigInteger)
    quotes: int = Field(default=0, sa_type=sa.BigInteger)
    views: int = Field(default=0, sa_type=sa.BigInteger)
    known_likes: int = 0
    known_shares: int = 0
    known_replies: int = 0
    known_quotes: int = 0
    known_views: int = 0
    #: Of the posts, those approved now (the share of a period's posts a moderator approved)
    #: and those waiting for a decision.
    approved: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    pending: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class PlatformTotal(Table, table=True):
    """Every post of one platform as last seen: :class:`PostSlot` added up over all time,
    kept alongside it so the campaign's totals are one row a platform."""

    __tablename__ = "platform_totals"

    platform: str = Field(max_length=40, primary_key=True)
    posts: int = 0
    likes: int = Field(default=0, sa_type=sa.BigInteger)
    shares: int = Field(default=0, sa_type=sa.BigInteger)
    replies: int = Field(default=0, sa_type=sa.BigInteger)
    quotes: int = Field(default=0, sa_type=sa.BigInteger)
    views: int = Field(default=0, sa_type=sa.BigInteger)
    known_likes: int = 0
    known_shares: int = 0
    known_replies: int = 0
    known_quotes: int = 0
    known_views: int = 0
    approved: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    pending: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class TagSlot(Table, table=True):
    """Posts carrying one hashtag (matching form) created in one 15-minute UTC slot."""

    __tablename__ = "tag_slots"
    __table_args__ = {"sqlite_with_rowid": False}

    slot: int = Field(primary_key=True)
    tag: str = Field(max_length=200, primary_key=True)
    posts: int = 0


class AuthorSlot(Table, table=True):
    """One author's posts in one 15-minute UTC slot, chained to their slot before.

    The chain makes "distinct authors in a range" a count without DISTINCT: an author
    is counted once, by their first slot in the range, the one whose ``prev_slot`` is
    before the range (or None: their first post held, which makes them new).
    """

    __tablename__ = "author_slots"
    __table_args__ = (
        sa.Index("ix_author_slots_slot", "platform", "slot", "prev_slot"),
        sa.Index("ix_author_slots_prev", "platform", "prev_slot", "slot"),
        {"sqlite_with_rowid": False},
    )

    platform: str = Field(max_length=40, primary_key=True)
    author_handle: str = Field(max_length=300, primary_key=True)
    slot: int = Field(primary_key=True)
    prev_slot: int | None = None
    posts: int = 0


class DecisionSlot(Table, table=True):
    """Decisions made in one 15-minute UTC slot, per status reached and wait bucket.

    A period's decisions are counted from here, and the median and p95 time to decision
    found without reading every decision: the buckets locate the rank, and only the
    decisions of the bucket holding it are read, in wait order (none when all its waits
    are equal). ``bucket`` -1 holds the decisions with no wait (their post is gone);
    ``wait_min``/``wait_max`` bound the bucket's waits (they may be looser after a post is
    deleted, never tighter). Kept by :mod:`monitor.services.decisions`.
    """

    __tablename__ = "decision_slots"
    __table_args__ = {"sqlite_with_rowid": False}

    slot: int = Field(primary_key=True)
    to_status: str = Field(max_length=20, primary_key=True)
    bucket: int = Field(primary_key=True)
    decisions: int = 0
    wait_min: int | None = Field(default=None, sa_type=sa.BigInteger)
    wait_max: int | None = Field(default=None, sa_type=sa.BigInteger)


class AuthorFollowers(Table, table=True):
    """An author's follower count as a platform gave it at one moment (potential reach).

    A new row only when the count changes, so the history stays small; the digest takes
    each author's count as of the end of the period it reports.
    """

    __tablename__ = "author_followers"
    __table_args__ = (
        sa.Index("ix_author_followers_author", "platform", "author_handle", "taken_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=40)
    author_handle: str = Field(max_length=300)
    taken_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    followers: int = Field(sa_type=sa.BigInteger)


class PlaceName(Table, table=True):
    """One name on an admin's place-name list (a ``place_names`` rule): the area's schools,
    estates and streets. A post or an image's text naming one is flagged."""

    __tablename__ = "place_names"

    id: int | None = Field(default=None, primary_key=True)
    rule_id: int = Field(
        sa_column=sa.Column(
            sa.Integer,
            sa.ForeignKey("moderation_rules.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    name: str = Field(max_length=300)


class ImageFacts(Table, table=True):
    """What the detectors learnt about one stored image that is not itself a flag: its
    perceptual hash (reposts, the never-again bank) and the text read in it (the card
    shows it and offers it as a start for the alt text)."""

    __tablename__ = "image_facts"

    media_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("media.id", ondelete="CASCADE"), primary_key=True
        )
    )
    post_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    #: PDQ hash, 64 hex digits; None when the picture is too flat to hash usefully.
    pdq: str | None = Field(default=None, max_length=64)
    pdq_quality: int | None = None
    #: The media id of the first stored image this one is a copy of (its own id if none):
    #: the images sharing it are reposts of one picture.
    picture: int = Field(index=True)
    read_text: str | None = Field(default=None, sa_type=sa.Text)
    analysed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class HashBank(Table, table=True):
    """A bank of PDQ hashes a new image is matched against: the local never-again bank
    (every image of a rejected post) or one an admin imported from a hash-sharing list."""

    __tablename__ = "hash_banks"

    id: int | None = Field(default=None, primary_key=True)
    #: ``never_again`` (one, made on first use) or ``imported``.
    kind: str = Field(max_length=20, index=True)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_by: str = Field(max_length=200)
    #: The campaign whose own bank this is (None: shared by every campaign).
    campaign_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer,
            sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
    )


class HashBankEntry(Table, table=True):
    """One hash in a bank, with what a match says about where it came from."""

    __tablename__ = "hash_bank_entries"

    id: int | None = Field(default=None, primary_key=True)
    bank_id: int = Field(
        sa_column=sa.Column(
            sa.Integer,
            sa.ForeignKey("hash_banks.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    pdq: str = Field(max_length=64)
    #: Where the hash came from, in words (kept when the post it came from is purged).
    note: str | None = Field(default=None, sa_type=sa.Text)
    #: The rejected post a never-again hash came from (undoing the rejection removes it).
    post_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("posts.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    added_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class LatencyStage(StrEnum):
    """A step of a post's way whose duration is measured (:mod:`monitor.services.latency`
    says where each comes from); the first two are read from the posts' own times, the
    others are :class:`LatencySample` rows."""

    PLATFORM_TO_STORED = "platform_to_stored"
    STORED_TO_QUEUE = "stored_to_queue"
    APPROVAL_TO_GALLERY = "approval_to_gallery"
    APPROVAL_TO_SCREEN = "approval_to_screen"
    TAKEDOWN_TO_GALLERY = "takedown_to_gallery"


class LatencySample(Table, table=True):
    """How long one step of a post's way took (``stage``: e.g. approval to the gallery).

    Written once per post version and stage (the first process to see it wins), so
    ``/metrics`` and the admin page read the same figures from every replica.
    """

    __tablename__ = "latency_samples"
    __table_args__ = (
        sa.UniqueConstraint("stage", "post_id", "version", name="uq_latency_samples_once"),
        sa.Index("ix_latency_samples_stage_at", "stage", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    stage: LatencyStage = Field(sa_type=_enum(LatencyStage, 40))
    #: No foreign key: a sample outlives its post (retention), as a figure does.
    post_id: int
    version: int
    #: When the step ended (the post became visible, left the gallery, ...).
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    seconds: float
