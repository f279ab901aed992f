"""Image analysis: every stored copy is checked before its post can be approved.

After staging stores the one copy of an attachment (:mod:`monitor.services.staging`),
that copy, never a fresh download, is handed to the analyser
(:mod:`monitor.analysis.runner`) outside every database transaction. What the
detectors found is written in one short transaction that locks the post, as a
decision does, and applied there:

- ``flag``: a flag reason on the post in the finding's words (acknowledged before
  approval like every flag; a flagged post's media is hidden until revealed);
- ``reject``: the post is rejected, the rule named in the audit log;
- ``escalate``: rejected and escalated to the safeguarding lead.

A check that failed or overran is a flag reason too ("image 1 could not be checked
automatically: ..."): never "nothing found", never a block for ever. Each copy's
state (pending, done, failed) is a :class:`~monitor.models.MediaAnalysis` row, which
the card, approval and ``status`` read. Who runs the checks: on SQLite the ``run``
process (:func:`analyse_waiting`, every few seconds); on PostgreSQL the
``hashtag-monitor worker`` processes, through procrastinate
(:mod:`monitor.services.jobs`).

Only posts awaiting a decision are analysed; automatic checks may flag or reject,
never approve.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.analysis.context import campaign_findings, store_notes
from monitor.analysis.findings import Box, Finding, Verdict
from monitor.analysis.runner import Analyser, Job, Outcome
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AnalysisStatus, MediaAnalysis, MediaItem, Post, PostStatus, utcnow
from monitor.services import audit
from monitor.services.audit import Action
from monitor.services.media import PinError, pinned_file, pinned_name, store_image
from monitor.services.staging import SHOWN_KINDS

log = logging.getLogger("monitor.analysis")

PENDING, DONE, FAILED = AnalysisStatus.PENDING, AnalysisStatus.DONE, AnalysisStatus.FAILED
FINISHED = (DONE, FAILED)
#: How often ``run`` (SQLite) looks for stored copies to check.
ANALYSE_INTERVAL_SECONDS = 5
#: Copies checked per run of that job; the next run takes the rest.
ANALYSE_BATCH = 20
#: A copy whose analysis was cut off this many times (the process died each time) is
#: recorded as failed, so one poisonous image cannot stop the analysis for ever.
MAX_ATTEMPTS = 3
#: The audit log's actor for what the analysis did: ``analysis:<detector>``.
ACTOR = "analysis"
#: Nothing finished for this long while copies wait: the analysers look stuck.
STALLED_AFTER = timedelta(minutes=5)
FACES = "faces"


# --- findings as stored --------------------------------------------------------------


def finding_record(finding: Finding) -> dict[str, Any]:
    """One finding as the ``findings`` JSON column holds it."""
    return {
        "detector": finding.detector,
        "position": finding.position,
        "words": finding.words,
        "verdict": finding.verdict.value,
        "boxes": [[b.left, b.top, b.right, b.bottom] for b in finding.boxes],
        "blur": finding.blur,
        "detail": finding.detail,
    }


def stored_findings(row: MediaAnalysis | None) -> list[Finding]:
    """The findings of one analysis row, as :class:`Finding` objects again."""
    found = []
    for record in (row.findings or []) if row is not None else []:
        found.append(
            Finding(
                detector=str(record.get("detector", "")),
                position=int(record.get("position", 0)),
                words=str(record.get("words", "")),
                verdict=Verdict(record.get("verdict", Verdict.FLAG.value)),
                boxes=tuple(Box(*map(int, box)) for box in record.get("boxes", [])),
                blur=bool(record.get("blur")),
                detail=dict(record.get("detail") or {}),
            )
        )
    return found


def failure_reason(position: int, error: str) -> str:
    """The flag a failed check puts on its post: it asks for a person's own look."""
    return (
        f"Image {position} could not be checked automatically ({error});"
        " look at it yourself before approving"
    )


# --- what waits ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Waiting:
    """One stored copy to analyse."""

    media_id: int
    post_id: int
    position: int
    pinned_hash: str
    pinned_path: str


def _finished_for_copy(*, statuses: Sequence[AnalysisStatus]) -> sa.Exists:
    media, analyses = MediaItem.__table__, MediaAnalysis.__table__
    return sa.exists().where(
        analyses.c.media_id == media.c.id,
        analyses.c.pinned_hash == media.c.pinned_hash,
        analyses.c.status.in_(statuses),
    )


def _waiting_query(*, statuses: Sequence[AnalysisStatus]) -> sa.Select[Any]:
    """Stored copies of posts awaiting a decision with no analysis in ``statuses``."""
    media, posts = MediaItem.__table__, Post.__table__
    return (
        sa.select(
            media.c.id, media.c.post_id, media.c.position, media.c.pinned_hash, media.c.pinned_path
        )
        .join(posts, posts.c.id == media.c.post_id)
        .where(
            posts.c.status == PostStatus.PENDING.value,
            media.c.kind.in_(SHOWN_KINDS),
            media.c.pinned_hash.is_not(None),
            media.c.pinned_path.is_not(None),
            ~_finished_for_copy(statuses=statuses),
        )
        .order_by(posts.c.first_seen_at, posts.c.id, media.c.position)
    )


def media_waiting(
    engine: Engine, *, limit: int = ANALYSE_BATCH, unqueued_only: bool = False
) -> list[Waiting]:
    """Stored copies not yet analysed, oldest post first.

    ``unqueued_only`` leaves out copies whose analysis is already queued (a pending row
    for the same copy): what the PostgreSQL job queue has yet to be given.
    """
    statuses = (PENDING, *FINISHED) if unqueued_only else FINISHED
    with session_scope(engine) as session:
        rows = session.execute(_waiting_query(statuses=statuses).limit(limit)).all()
    return [
        Waiting(row.id, row.post_id, row.position + 1, row.pinned_hash, row.pinned_path)
        for row in rows
    ]


def backlog(session: Session) -> int:
    """How many stored copies wait for their analysis."""
    query = _waiting_query(statuses=FINISHED).order_by(None)
    return int(
        session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    )


def mark_queued(engine: Engine, item: Waiting) -> None:
    """A pending row for this copy (its job is queued): the backlog and the card show it."""
    with session_scope(engine) as session:
        row = session.get(MediaAnalysis, item.media_id)
        if row is None or row.pinned_hash != item.pinned_hash:
            row = row or _new_row(item)
            _reset(row, item.pinned_hash)
        elif row.status == PENDING:
            row.queued_at = utcnow()
        else:
            return
        session.add(row)


def _new_row(item: Waiting) -> MediaAnalysis:
    return MediaAnalysis(
        media_id=item.media_id, post_id=item.post_id, pinned_hash="", queued_at=utcnow()
    )


def _reset(row: MediaAnalysis, pinned_hash: str) -> None:
    row.pinned_hash, row.status, row.attempts = pinned_hash, PENDING, 0
    row.error, row.findings, row.blurred_from, row.withheld = None, None, None, False
    row.queued_at, row.started_at, row.finished_at = utcnow(), None, None


# --- one copy, start to finish -------------------------------------------------------


def begin_attempt(engine: Engine, settings: Settings, item: Waiting) -> bool:
    """Record that a check of this copy starts; False when there is nothing to do.

    Nothing to do: the copy was replaced or checked meanwhile (by another worker, or
    before a restart). A copy whose checks were cut off :data:`MAX_ATTEMPTS` times is
    recorded as failed here instead.
    """
    with session_scope(engine) as session:
        current = session.execute(
            sa.select(MediaItem.__table__.c.pinned_hash).where(
                MediaItem.__table__.c.id == item.media_id
            )
        ).scalar()
        if current != item.pinned_hash:
            return False
        row = session.get(MediaAnalysis, item.media_id, with_for_update=True)
        if row is None:
            row = _new_row(item)
        if row.pinned_hash != item.pinned_hash:
            _reset(row, item.pinned_hash)
        elif row.status in FINISHED:
            return False
        cut_off = row.attempts >= MAX_ATTEMPTS
        row.attempts += 1
        row.started_at = utcnow()
        session.add(row)
    if cut_off:
        error = f"the analysis stopped {MAX_ATTEMPTS} times on this image without finishing"
        record_outcome(engine, settings, item, Outcome(errors=(error,)))
        return False
    return True


def analyse_one(engine: Engine, settings: Settings, analyser: Analyser, item: Waiting) -> bool:
    """Check one stored copy and apply what was found; True if it was checked now."""
    if not begin_attempt(engine, settings, item):
        return False
    path = pinned_file(settings.media_dir, item.pinned_path.rpartition("/")[2])
    job = Job(item.media_id, item.post_id, item.position, str(path), settings.database_url)
    outcome = analyser.analyse(job)
    record_outcome(engine, settings, item, outcome)
    return True


def analyse_waiting(
    *, engine: Engine, settings: Settings, analyser: Analyser, limit: int = ANALYSE_BATCH
) -> int:
    """Check up to ``limit`` waiting copies (``run``'s job on SQLite); returns how many."""
    done = 0
    for item in media_waiting(engine, limit=limit):
        done += analyse_one(engine, settings, analyser, item)
    return done


def analyse_all_waiting(*, engine: Engine, settings: Settings, analyser: Analyser) -> int:
    """Check every waiting copy, batch after batch (``poll`` from the command line)."""
    total = 0
    while done := analyse_waiting(engine=engine, settings=settings, analyser=analyser):
        total += done
    return total


def record_outcome(engine: Engine, settings: Settings, item: Waiting, outcome: Outcome) -> bool:
    """Write one copy's outcome and apply it to its post, in one short transaction.

    Returns False (and changes nothing) when the copy was replaced meanwhile or its
    outcome is already on record: a job run twice applies its findings once.
    """
    posts = Post.__table__
    with session_scope(engine) as session:
        locked = session.execute(
            sa.select(posts.c.id).where(posts.c.id == item.post_id).with_for_update()
        ).first()
        row = session.get(MediaAnalysis, item.media_id, with_for_update=True)
        media = session.get(MediaItem, item.media_id)
        post = session.get(Post, item.post_id)
        if (
            locked is None
            or post is None
            or media is None
            or media.pinned_hash != item.pinned_hash
            or row is None
            or row.pinned_hash != item.pinned_hash
            or row.status in FINISHED
        ):
            return False
        # The post's campaigns' own text rules and banks, over what the detectors noted.
        own = campaign_findings(session, post.id or 0, item.position, outcome.notes or {})
        findings = [*outcome.findings, *(finding for _, finding in own)]
        row.status = DONE if outcome.ok else FAILED
        row.error = "; ".join(outcome.errors)[:2000] or None
        row.findings = [finding_record(f) for f in findings]
        row.withheld = any(f.verdict is Verdict.ESCALATE for f in findings)
        row.finished_at = utcnow()
        session.add(row)
        _apply(session, settings, post, item.position, outcome, own)
        if outcome.notes:
            # After the findings: a picture this outcome rejected goes into the never-again
            # bank with its hash; the hash groups reposts; the read text is kept for the card.
            store_notes(session, {item.media_id: outcome.notes})
    if outcome.errors:
        log.warning("post %d image %d: %s", item.post_id, item.position, "; ".join(outcome.errors))
    return True


def _apply(
    session: Session,
    settings: Settings,
    post: Post,
    position: int,
    outcome: Outcome,
    own: Sequence[tuple[int, Finding]] = (),
) -> None:
    """What a copy's findings do to its (locked) post; every step on the audit log.

    ``own``: the findings of campaigns' own rules and banks, with their campaign's id.
    Such a rejection rejects the post in that campaign only; an escalation (a campaign's
    own bank of known abuse images) is the post's everywhere, as every escalation is.
    """
    from monitor.services.escalation import escalate_automatically
    from monitor.services.moderation import change_status

    everywhere = [*outcome.findings, *(f for _, f in own if f.verdict is Verdict.ESCALATE)]
    reasons = [failure_reason(position, error) for error in outcome.errors]
    reasons += [finding.words for finding in [*outcome.findings, *(f for _, f in own)]]
    if reasons:
        post.flagged = True
        post.flag_reasons = list(dict.fromkeys([*(post.flag_reasons or []), *reasons]))
    for error in outcome.errors:
        audit.record(
            session,
            post=post,
            actor=ACTOR,
            action=Action.ANALYSIS_FAILED,
            reason=failure_reason(position, error),
            detail={"position": position},
        )
    strongest = max(
        (f for f in everywhere if f.verdict is not Verdict.FLAG),
        key=lambda f: f.verdict is Verdict.ESCALATE,
        default=None,
    )
    scoped: list[tuple[int | None, Finding]] = [(None, f) for f in outcome.findings]
    for campaign_id, finding in [*scoped, *own]:
        if finding.verdict is Verdict.FLAG:
            audit.record(
                session,
                post=post,
                actor=f"{ACTOR}:{finding.detector}",
                action=Action.FLAG,
                reason=f"Automatic: {finding.words}",
                detail={"detector": finding.detector, "position": position},
                campaign_id=campaign_id,
            )
    # A rejection everywhere (or an escalation) leaves nothing to reject in one campaign.
    rejected_in = {} if strongest is not None else _own_rejections(own)
    if rejected_in:
        for campaign_id, finding in rejected_in.items():  # each bumps the post's version
            change_status(
                session,
                post,
                PostStatus.REJECTED,
                actor=f"{ACTOR}:{finding.detector}",
                action=Action.REJECT,
                reason=f"Automatic: {finding.words}",
                detail={"detector": finding.detector, "position": position, "rule": finding.words},
                campaign_id=campaign_id,
                from_status=PostStatus.PENDING,
            )
    elif strongest is not None and post.status != PostStatus.REJECTED:
        change_status(
            session,
            post,
            PostStatus.REJECTED,
            actor=f"{ACTOR}:{strongest.detector}",
            action=Action.REJECT,
            reason=f"Automatic: {strongest.words}",
            detail={"detector": strongest.detector, "position": position, "rule": strongest.words},
        )
    else:
        post.version += 1
    if strongest is not None and strongest.verdict is Verdict.ESCALATE and not post.escalated:
        escalate_automatically(
            session=session,
            settings=settings,
            post=post,
            actor=f"{ACTOR}:{strongest.detector}",
            reason=f"Automatic: {strongest.words}",
        )
    session.add(post)


# --- what the card and approval read -------------------------------------------------


def _own_rejections(own: Sequence[tuple[int, Finding]]) -> dict[int, Finding]:
    """Campaign id -> the first finding of its own rules that rejects the post there."""
    found: dict[int, Finding] = {}
    for campaign_id, finding in own:
        if finding.verdict is Verdict.REJECT:
            found.setdefault(campaign_id, finding)
    return found


def analyses_by_media(session: Session, post_ids: Collection[int]) -> dict[int, MediaAnalysis]:
    """The analysis row of every attachment of these posts, by media id."""
    if not post_ids:
        return {}
    query = select(MediaAnalysis).where(col(MediaAnalysis.post_id).in_(list(post_ids)))
    return {row.media_id: row for row in session.exec(query)}


def needs_check(item: MediaItem) -> bool:
    """An attachment whose stored copy is checked: a shown kind, already staged."""
    return item.kind in SHOWN_KINDS and bool(item.pinned_hash)


def current_analysis(item: MediaItem, analyses: dict[int, MediaAnalysis]) -> MediaAnalysis | None:
    """The analysis about the copy the attachment has now (none for an older copy)."""
    row = analyses.get(item.id or 0)
    return row if row is not None and row.pinned_hash == item.pinned_hash else None


def unchecked_positions(
    media: Iterable[MediaItem], analyses: dict[int, MediaAnalysis]
) -> list[int]:
    """1-based positions of stored copies whose analysis has not finished."""
    return [
        item.position + 1
        for item in media
        if needs_check(item)
        and ((row := current_analysis(item, analyses)) is None or row.status not in FINISHED)
    ]


def is_withheld(session: Session, digest: str) -> bool:
    """A stored copy an escalating finding withholds from everyone (never served)."""
    analyses = MediaAnalysis.__table__
    query = sa.select(analyses.c.media_id).where(
        analyses.c.pinned_hash == digest, analyses.c.withheld.is_(True)
    )
    return session.execute(query.limit(1)).first() is not None


def unblurred_faces(
    media: Iterable[MediaItem], analyses: dict[int, MediaAnalysis]
) -> list[Finding]:
    """Face findings on copies that are not the blurred ones: consent or blurring needed."""
    found = []
    for item in media:
        row = current_analysis(item, analyses)
        if row is None or row.blurred_from:
            continue
        found += [f for f in stored_findings(row) if f.detector == FACES and f.boxes]
    return found


# --- publish with faces blurred ------------------------------------------------------


def blur_faces(*, engine: Engine, settings: Settings, post_id: int, actor: str) -> int:
    """Replace each copy with faces by one blurred at the face boxes; returns how many.

    The blurred copy becomes *the* stored copy: the queue shows it (the post's version
    moves on, so a decision made on the unblurred card is refused as stale) and approval
    publishes exactly it. The unblurred files are no longer referenced and go with the
    next clean-up of unreferenced media.
    """
    from monitor.analysis.faces import blur_boxes
    from monitor.services.campaigns import require_post_moderator

    with session_scope(engine) as session:
        require_post_moderator(session, actor, post_id, "blur faces")
        media = list(session.exec(select(MediaItem).where(MediaItem.post_id == post_id)))
        analyses = analyses_by_media(session, [post_id])
        todo = []
        for item in media:
            row = current_analysis(item, analyses)
            boxes = [b for f in stored_findings(row) if f.detector == FACES for b in f.boxes]
            if row is not None and not row.blurred_from and boxes and item.pinned_path:
                todo.append((item.id or 0, item.pinned_hash or "", item.pinned_path, boxes))
    if not todo:
        raise UserError("no faces were found in this post's images, so there is nothing to blur")
    # The image work happens outside any transaction; the swap is one short one.
    replaced: list[tuple[int, str, Any]] = []
    for media_id, digest, path, boxes in todo:
        from PIL import Image

        source = pinned_file(settings.media_dir, path.rpartition("/")[2])
        try:
            with Image.open(source, formats=("JPEG",)) as image:
                blurred = blur_boxes(image, boxes)
        except OSError as exc:
            raise UserError(f"the stored copy could not be read to blur it ({exc})") from None
        data = io.BytesIO()
        blurred.save(data, "PNG")
        try:
            pinned = store_image(data.getvalue(), settings.media_dir)
        except PinError as exc:
            raise UserError(str(exc)) from None
        replaced.append((media_id, digest, pinned))
    with session_scope(engine) as session:
        post = session.get(Post, post_id, with_for_update=True)
        if post is None:
            raise UserError(f"no post {post_id}")
        count = 0
        for media_id, digest, pinned in replaced:
            current = session.get(MediaItem, media_id)
            row = session.get(MediaAnalysis, media_id)
            if current is None or row is None or current.pinned_hash != digest:
                continue  # replaced meanwhile: the new copy gets its own analysis
            current.pinned_hash, current.pinned_widths = pinned.digest, list(pinned.widths)
            current.pinned_width, current.pinned_height = pinned.width, pinned.height
            current.pinned_path = (
                f"{pinned.digest[:2]}/{pinned_name(pinned.digest, pinned.widths[-1])}"
            )
            row.pinned_hash, row.blurred_from = pinned.digest, digest
            session.add(current)
            session.add(row)
            count += 1
        if count:
            post.version += 1
            session.add(post)
            audit.record(
                session,
                post=post,
                actor=actor,
                action=Action.FACES_BLURRED,
                detail={"media_ids": [m for m, _, _ in replaced], "version": post.version},
            )
    return count


# --- health --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class AnalysisHealth:
    """How the image analysis is doing: on, keeping up, and its last failure."""

    enabled: bool
    backlog: int
    #: ``ok``, ``off``, ``stalled`` (copies wait and nothing finished lately).
    state: str
    last_done_at: datetime | None
    last_failure_at: datetime | None
    last_failure: str | None
    failed_today: int
    #: Workers seen alive by the job queue (PostgreSQL); None on SQLite (``run`` does it).
    workers: int | None = None

    @property
    def words(self) -> str:
        """The state for people: "OK", "Off", "Stalled" (and why, when it is known)."""
        if self.state == "stalled" and self.workers == 0:
            return "Stalled: no hashtag-monitor worker is running"
        return {"ok": "OK", "off": "Off (IMAGE_ANALYSIS=false)", "stalled": "Stalled"}[self.state]

    def as_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "state": self.state,
            "backlog": self.backlog,
            "workers": self.workers,
            "last_done_at": _iso(self.last_done_at),
            "last_failure_at": _iso(self.last_failure_at),
            "last_failure": self.last_failure,
            "failed_last_24h": self.failed_today,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


#: Seconds without a heartbeat after which the job queue counts a worker as gone
#: (three heartbeats of ``worker``'s default; see :mod:`monitor.services.jobs`).
WORKER_SILENT_SECONDS = 30


def live_workers(session: Session) -> int | None:
    """``worker`` processes whose heartbeat is recent (PostgreSQL); None on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    query = sa.text(
        "SELECT count(*) FROM procrastinate_workers"
        " WHERE last_heartbeat > now() - make_interval(secs => :silent)"
    )
    return int(session.execute(query, {"silent": WORKER_SILENT_SECONDS}).scalar_one())


def analysis_health(session: Session, settings: Settings) -> AnalysisHealth:
    """The analysers' health from the analysis rows (and the job queue's worker count)."""
    analyses = MediaAnalysis.__table__
    workers = live_workers(session) if settings.image_analysis else None
    waiting = backlog(session) if settings.image_analysis else 0
    last_done = session.execute(
        sa.select(sa.func.max(analyses.c.finished_at)).where(analyses.c.status.in_(FINISHED))
    ).scalar()
    failure = session.execute(
        sa.select(analyses.c.finished_at, analyses.c.error, analyses.c.post_id)
        .where(analyses.c.status == FAILED)
        .order_by(analyses.c.finished_at.desc())
        .limit(1)
    ).first()
    since = utcnow() - timedelta(days=1)
    failed_today = session.execute(
        sa.select(sa.func.count())
        .select_from(analyses)
        .where(analyses.c.status == FAILED, analyses.c.finished_at >= since)
    ).scalar_one()
    if not settings.image_analysis:
        state = "off"
    elif waiting and workers == 0:
        state = "stalled"
    elif (
        waiting
        and _oldest_queued(session) < utcnow() - STALLED_AFTER
        and (last_done is None or last_done < utcnow() - STALLED_AFTER)
    ):
        state = "stalled"
    else:
        state = "ok"
    return AnalysisHealth(
        enabled=settings.image_analysis,
        backlog=waiting,
        state=state,
        last_done_at=_aware(last_done),
        last_failure_at=_aware(failure.finished_at) if failure else None,
        last_failure=f"post {failure.post_id}: {failure.error}" if failure else None,
        failed_today=int(failed_today),
        workers=workers,
    )


def _oldest_queued(session: Session) -> datetime:
    """When the oldest waiting copy was stored (its post's arrival, if never queued)."""
    posts = Post.__table__
    query = (
        _waiting_query(statuses=FINISHED)
        .order_by(None)
        .with_only_columns(sa.func.min(posts.c.first_seen_at))
    )
    value = session.execute(query).scalar()
    return _aware(value) or utcnow()


def _aware(value: datetime | None) -> datetime | None:
    """SQLite's aggregate drops the column type: put the UTC zone back."""
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
