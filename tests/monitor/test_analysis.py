"""The analysis stage: stored copies are checked before approval, and findings are applied.

On both backends, with test detectors (``tests/monitor/analysis_detectors.py``) run
by the real analyser process, so a detector that hangs or kills its process does so
for real. The face detector's own tests are in ``test_faces.py``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Media
from monitor.analysis.findings import Finding, ModelMissing, Verdict
from monitor.analysis.runner import Analyser, Outcome
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, Escalation, MediaAnalysis, Post, PostStatus, utcnow
from monitor.services.analysis import (
    DONE,
    FAILED,
    MAX_ATTEMPTS,
    PENDING,
    analyse_waiting,
    analysis_health,
    begin_attempt,
    is_withheld,
    media_waiting,
    record_outcome,
)
from monitor.services.audit import Action
from monitor.services.ingest import record_posts
from monitor.services.moderation import (
    FlagsUnacknowledged,
    ImagesBeingChecked,
    decide,
    flag_reasons,
    load_cards,
)
from monitor.services.staging import stage_all_waiting
from tests.factories import make_post
from tests.fakes.server import FakeServer, Reply
from tests.monitor import analysis_detectors as fake
from tests.web.auth_helpers import make_user

TEST_DETECTORS = {
    "misbehaving": "tests.monitor.analysis_detectors:Misbehaving",
    "ruling": "tests.monitor.analysis_detectors:Ruling",
}
GOOD = (30, 140, 60)


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path, engine: Engine) -> Settings:
    return configure(
        OUTBOUND_ALLOW_PRIVATE="true",
        MEDIA_DIR=str(tmp_path / "media"),
        DATA_DIR=str(tmp_path / "data"),
        IMAGE_ANALYSIS="true",
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
    )


@pytest.fixture(scope="module")
def analyser() -> Iterator[Analyser]:
    """One analyser process for the module (a test that kills it gets a fresh one)."""
    with Analyser(targets=TEST_DETECTORS, time_limit=3) as analyser:
        analyser.start()
        yield analyser


def png(colour: tuple[int, int, int], size: tuple[int, int] = (400, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def images(fake_server: FakeServer) -> Callable[..., str]:
    """Serve a picture; returns its URL."""

    def serve(name: str, body: bytes, content_type: str = "image/png") -> str:
        fake_server.route(
            "GET", f"/img/{name}", lambda _request: Reply(200, body, {"Content-Type": content_type})
        )
        return f"{fake_server.url}/img/{name}"

    return serve


def add_post(engine: Engine, *urls: str) -> int:
    media = tuple(Media(kind="image", url=url, alt=f"Picture {n}") for n, url in enumerate(urls))
    with session_scope(engine) as session:
        return record_posts(session=session, posts=[make_post(media=media)]).new_ids[0]


def post_of(engine: Engine, post_id: int) -> Post:
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        return post


def analyses(engine: Engine, post_id: int) -> list[MediaAnalysis]:
    with Session(engine) as session:
        query = select(MediaAnalysis).where(MediaAnalysis.post_id == post_id)
        return list(session.exec(query))


def events(engine: Engine, post_id: int, action: Action) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).where(AuditEvent.post_id == post_id, AuditEvent.action == action)
        return list(session.exec(query))


def approve(engine: Engine, settings: Settings, post_id: int, **options: object) -> None:
    with session_scope(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        decide(
            session=session,
            post=post,
            action="approve",
            actor="mod",
            settings=settings,
            **options,  # type: ignore[arg-type]
        )


def test_a_stored_image_is_being_checked_until_its_analysis_is_done(
    engine: Engine, settings: Settings, analyser: Analyser, images: Callable[..., str]
) -> None:
    make_user(engine, "mod", "moderator")
    post_id = add_post(engine, images("good.png", png(GOOD)))
    stage_all_waiting(engine=engine, settings=settings)
    with Session(engine) as session:
        [card] = load_cards(session, [post_of(engine, post_id)], image_analysis=True)
    assert card.being_checked == [1]

    with pytest.raises(ImagesBeingChecked, match="image 1 is still being checked"):
        approve(engine, settings, post_id)

    assert analyse_waiting(engine=engine, settings=settings, analyser=analyser) == 1
    [row] = analyses(engine, post_id)
    assert (row.status, row.findings, row.error, row.attempts) == (DONE, [], None, 1)
    with Session(engine) as session:
        [card] = load_cards(session, [post_of(engine, post_id)], image_analysis=True)
    assert card.being_checked == [] and not card.post.flagged
    approve(engine, settings, post_id)
    assert post_of(engine, post_id).status == PostStatus.APPROVED
    # Nothing left to do: a second run analyses nothing.
    assert analyse_waiting(engine=engine, settings=settings, analyser=analyser) == 0


@pytest.mark.slow  # a real 3-second overrun and two restarts of the analyser
def test_an_analyser_that_hangs_crashes_or_raises_fails_its_image_and_the_next_is_checked(
    engine: Engine, settings: Settings, analyser: Analyser, images: Callable[..., str]
) -> None:
    make_user(engine, "mod", "moderator")
    hanging = add_post(engine, images("hang.png", png(fake.HANG)))
    crashing = add_post(engine, images("crash.png", png(fake.CRASH)))
    raising = add_post(engine, images("raise.png", png(fake.RAISE)))
    good = add_post(engine, images("good.png", png(GOOD)))
    stage_all_waiting(engine=engine, settings=settings)

    assert analyse_waiting(engine=engine, settings=settings, analyser=analyser) == 4

    expected = {
        hanging: "the misbehaving check took longer than 3 s on this image and was stopped",
        crashing: "the misbehaving check crashed on this image (exit code 11)",
        raising: "the misbehaving check failed: ValueError: this picture broke the detector",
    }
    for post_id, error in expected.items():
        [row] = analyses(engine, post_id)
        assert (row.status, row.error) == (FAILED, error)
        post = post_of(engine, post_id)
        # A failure is never "nothing found": a flag that asks for a person's own look.
        assert post.flagged and flag_reasons(post) == [
            f"Image 1 could not be checked automatically ({error});"
            " look at it yourself before approving"
        ]
        assert len(events(engine, post_id, Action.ANALYSIS_FAILED)) == 1
        # Never blocked for ever: approvable once the failure is acknowledged and looked at.
        with pytest.raises(FlagsUnacknowledged):
            approve(engine, settings, post_id, media_seen=True)
        approve(engine, settings, post_id, media_seen=True, acknowledged_flags=flag_reasons(post))
        assert post_of(engine, post_id).status == PostStatus.APPROVED
    [row] = analyses(engine, good)
    assert row.status == DONE and not post_of(engine, good).flagged


def test_reject_and_escalate_findings_are_applied_with_the_rule_on_the_record(
    engine: Engine, settings: Settings, analyser: Analyser, images: Callable[..., str]
) -> None:
    rejected = add_post(engine, images("bad.png", png(fake.REJECT)))
    escalated = add_post(engine, images("known.png", png(fake.ESCALATE)))
    stage_all_waiting(engine=engine, settings=settings)

    analyse_waiting(engine=engine, settings=settings, analyser=analyser)

    assert post_of(engine, rejected).status == PostStatus.REJECTED
    [event] = events(engine, rejected, Action.REJECT)
    assert event.actor == "analysis:ruling"
    assert event.reason == "Automatic: Explicit image (test rule)"
    assert (event.detail or {})["rule"] == "Explicit image (test rule)"
    post = post_of(engine, escalated)
    assert post.status == PostStatus.REJECTED and post.escalated
    with Session(engine) as session:
        [escalation] = session.exec(select(Escalation).where(Escalation.post_id == escalated))
    assert escalation.opened_by == "analysis:ruling"
    assert "known-image bank" in escalation.reason
    assert len(events(engine, escalated, Action.ESCALATED)) == 1
    # A bank match is shown to no one: hidden on the card even after a reveal, never served.
    [row], [plain] = analyses(engine, escalated), analyses(engine, rejected)
    with Session(engine) as session:
        [card] = load_cards(session, [post], image_analysis=True)
        card.revealed = True
        assert card.withheld and card.blur_media and row.withheld
        assert is_withheld(session, row.pinned_hash)
        assert not is_withheld(session, plain.pinned_hash)


def test_an_outcome_recorded_twice_is_applied_once(
    engine: Engine, settings: Settings, images: Callable[..., str]
) -> None:
    post_id = add_post(engine, images("good.png", png(GOOD)))
    stage_all_waiting(engine=engine, settings=settings)
    [item] = media_waiting(engine)
    outcome = Outcome(findings=(Finding("faces", 1, "2 faces in image 1", Verdict.FLAG),))
    assert begin_attempt(engine, settings, item)

    assert record_outcome(engine, settings, item, outcome)
    assert not record_outcome(engine, settings, item, outcome)
    # A job started again after the outcome was recorded does nothing.
    assert not begin_attempt(engine, settings, item)

    assert flag_reasons(post_of(engine, post_id)) == ["2 faces in image 1"]
    assert len(events(engine, post_id, Action.FLAG)) == 1


def test_an_image_whose_analysis_keeps_being_cut_off_is_failed_not_retried_for_ever(
    engine: Engine, settings: Settings, images: Callable[..., str]
) -> None:
    post_id = add_post(engine, images("good.png", png(GOOD)))
    stage_all_waiting(engine=engine, settings=settings)
    [item] = media_waiting(engine)
    for _ in range(MAX_ATTEMPTS):
        # The process dies mid-check each time: an attempt is started, never recorded.
        assert begin_attempt(engine, settings, item)
        assert analyses(engine, post_id)[0].status == PENDING

    assert not begin_attempt(engine, settings, item)

    [row] = analyses(engine, post_id)
    assert row.status == FAILED and f"stopped {MAX_ATTEMPTS} times" in (row.error or "")
    assert post_of(engine, post_id).flagged
    assert media_waiting(engine) == []


def test_health_shows_the_backlog_and_the_last_failure(
    engine: Engine, settings: Settings, analyser: Analyser, images: Callable[..., str]
) -> None:
    add_post(engine, images("raise.png", png(fake.RAISE)))
    add_post(engine, images("good.png", png(GOOD)))
    stage_all_waiting(engine=engine, settings=settings)
    with Session(engine) as session:
        before = analysis_health(session, settings)
    assert (before.backlog, before.last_failure) == (2, None)
    if engine.dialect.name == "postgresql":
        # Work waits and no worker beats: the page and `status` say so.
        assert (before.state, before.workers) == ("stalled", 0)
        assert before.words == "Stalled: no hashtag-monitor worker is running"
    else:
        assert (before.state, before.workers) == ("ok", None)

    analyse_waiting(engine=engine, settings=settings, analyser=analyser)

    with Session(engine) as session:
        after = analysis_health(session, settings)
    assert after.backlog == 0 and after.failed_today == 1
    assert "this picture broke the detector" in (after.last_failure or "")
    facts = after.as_json()
    assert facts["backlog"] == 0 and facts["failed_last_24h"] == 1


def test_with_image_analysis_off_nothing_waits_for_a_check(
    engine: Engine, configure: Callable[..., Settings], tmp_path: Path, images: Callable[..., str]
) -> None:
    settings = configure(
        OUTBOUND_ALLOW_PRIVATE="true", MEDIA_DIR=str(tmp_path / "media"), IMAGE_ANALYSIS="false"
    )
    make_user(engine, "mod", "moderator")
    post_id = add_post(engine, images("good.png", png(GOOD)))
    stage_all_waiting(engine=engine, settings=settings)

    approve(engine, settings, post_id)

    assert post_of(engine, post_id).status == PostStatus.APPROVED
    with Session(engine) as session:
        assert analysis_health(session, settings).state == "off"


def test_a_missing_model_is_a_clear_error_at_start_naming_the_package(
    settings: Settings,
) -> None:
    from monitor.cli.server import start_analyser

    targets = {**TEST_DETECTORS, "missing": "tests.monitor.analysis_detectors:Missing"}
    with pytest.raises(ModelMissing, match="no-such-model-package"):
        Analyser(targets=targets).start()
    with pytest.raises(UserError, match="image analysis cannot start: .*no-such-model-package"):
        start_analyser(settings, targets)


def test_runs_job_checks_here_on_sqlite_and_queues_for_workers_on_postgresql(
    engine: Engine, settings: Settings, analyser: Analyser, images: Callable[..., str]
) -> None:
    from monitor.scheduler import Monitor

    post_id = add_post(engine, images("good.png", png(GOOD)))
    stage_all_waiting(engine=engine, settings=settings)
    [item] = media_waiting(engine)
    if engine.dialect.name == "sqlite":
        # The previous `run` died mid-check: its attempt is on record, its outcome is not.
        assert begin_attempt(engine, settings, item)
    monitor = Monitor(engine=engine, settings=settings, analyser=analyser)
    monitor._add_work_jobs()
    assert "analyse-media" in monitor._work_job_ids

    monitor._analyse_now()

    [row] = analyses(engine, post_id)
    if engine.dialect.name == "sqlite":
        # Picked up again after the restart and checked once more, to the end.
        assert (row.status, row.attempts) == (DONE, 2)
    else:
        assert row.status == PENDING
        with engine.connect() as connection:
            jobs = connection.exec_driver_sql(
                "SELECT task_name, args FROM procrastinate_jobs WHERE status = 'todo'"
            ).all()
        assert [(name, args["media_id"]) for name, args in jobs] == [
            ("monitor:analyse_media", item.media_id)
        ]


def test_a_job_lost_from_the_queue_is_queued_again_so_no_post_waits_for_ever(
    engine: Engine, settings: Settings, images: Callable[..., str]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the job queue is PostgreSQL's")
    from datetime import timedelta

    import sqlalchemy as sa

    from monitor.services.jobs import REQUEUE_AFTER, enqueue_waiting, job_app

    add_post(engine, images("good.png", png(GOOD)))
    stage_all_waiting(engine=engine, settings=settings)
    app = job_app(engine)
    assert enqueue_waiting(engine=engine, settings=settings, app=app) == 1
    with session_scope(engine) as session:
        # The job is gone (failed for good, or deleted by hand) and its row still pending.
        session.execute(sa.text("DELETE FROM procrastinate_jobs"))
    assert enqueue_waiting(engine=engine, settings=settings, app=app) == 0  # not yet
    with session_scope(engine) as session:
        long_ago = utcnow() - REQUEUE_AFTER - timedelta(minutes=1)
        session.execute(sa.update(MediaAnalysis).values(queued_at=long_ago))

    assert enqueue_waiting(engine=engine, settings=settings, app=app) == 1
