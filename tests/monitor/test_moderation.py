"""Decisions, bulk decisions, alt text, reject reasons and the queue's pages."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Author, FetchedPost, Media
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, MediaItem, Post, PostStatus
from monitor.services.export import iter_export_records
from monitor.services.ingest import record_posts
from monitor.services.moderation import (
    DEFAULT_REJECT_REASONS,
    MAX_BULK_POSTS,
    QueueCursor,
    QueueFilters,
    StaleDecision,
    compose_reason,
    decide,
    decide_many,
    list_queue,
    load_cards,
    queue_counts,
    reject_reasons,
    set_reject_reasons,
)
from monitor.services.placements import set_status
from monitor.services.staging import stage_all_waiting
from monitor.services.users import disable_user
from tests.factories import BASE_TIME, make_post
from tests.fakes.server import FakeServer, Reply
from tests.web.auth_helpers import make_user

LONDON = ZoneInfo("Europe/London")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def settings(
    configure: Callable[..., Settings], fake_server: FakeServer, tmp_path_factory
) -> Settings:
    """Media pinning may fetch images: a local server serves a real PNG."""
    image = _png()
    fake_server.route(
        "GET", r"/img/.*", lambda _request: Reply(200, image, {"Content-Type": "image/png"})
    )
    return configure(OUTBOUND_ALLOW_PRIVATE="true", MEDIA_DIR=str(tmp_path_factory.mktemp("media")))


@pytest.fixture
def image_url(fake_server: FakeServer) -> Callable[[str], str]:
    return lambda name: f"{fake_server.url}/img/{name}.png"


def _people(engine: Engine) -> None:
    for name, role in (("mo", "moderator"), ("ad", "admin"), ("vi", "viewer"), ("ex", "moderator")):
        make_user(engine, name, role)
    with session_scope(engine) as session:
        disable_user(session=session, name="ex", actor="test")


def _store(engine: Engine, *posts: FetchedPost) -> list[int]:
    with session_scope(engine) as session:
        return record_posts(session=session, posts=list(posts)).new_ids


def _text_post(**overrides: Any) -> FetchedPost:
    return make_post(media=(), **overrides)


def _events(session: Session, post_id: int) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.post_id == post_id)
    return list(session.exec(query.order_by(AuditEvent.id)))


def test_approve_and_reject_are_audited_and_bump_the_version(
    engine: Engine, settings: Settings
) -> None:
    _people(engine)
    first, second = _store(engine, _text_post(), _text_post())
    with session_scope(engine) as session:
        result = decide(
            session=session,
            post=session.get_one(Post, first),
            action="approve",
            actor="mo",
            settings=settings,
            expected_version=1,
        )
        decide(
            session=session,
            post=session.get_one(Post, second),
            action="reject",
            actor="ad",
            reason="  Spam or advertising: <b>buy</b>  ",
            settings=settings,
        )
    assert (result.from_status, result.to_status) == ("pending", "approved")
    with Session(engine) as session:
        approved, rejected = session.get_one(Post, first), session.get_one(Post, second)
        [approval] = _events(session, first)
        [rejection] = _events(session, second)
    assert (approved.status, approved.version) == ("approved", 2)
    assert (rejected.status, rejected.version) == ("rejected", 2)
    assert (approval.actor, approval.action, approval.reason) == ("mo", "approve", None)
    assert rejection.reason == "Spam or advertising: <b>buy</b>"


def test_a_stale_decision_is_refused_and_changes_nothing(
    engine: Engine, settings: Settings
) -> None:
    _people(engine)
    [post_id] = _store(engine, _text_post())
    with session_scope(engine) as session:
        decide(
            session=session,
            post=session.get_one(Post, post_id),
            action="reject",
            actor="mo",
            reason="x",
            settings=settings,
            expected_version=1,
        )
    with session_scope(engine) as session:
        with pytest.raises(StaleDecision, match="changed since you loaded it"):
            decide(
                session=session,
                post=session.get_one(Post, post_id),
                action="approve",
                actor="ad",
                settings=settings,
                expected_version=1,
            )
    with Session(engine) as session:
        assert session.get_one(Post, post_id).status == "rejected"
        assert len(_events(session, post_id)) == 1


@pytest.mark.parametrize(
    ("actor", "action", "message"),
    [
        ("vi", "approve", "only moderators and admins decide"),
        ("ex", "approve", "no active user"),
        ("nobody", "approve", "no active user"),
        ("mo", "publish", "unknown decision"),
    ],
)
def test_only_active_moderators_decide(
    sqlite_engine: Engine, settings: Settings, actor: str, action: str, message: str
) -> None:
    _people(sqlite_engine)
    [post_id] = _store(sqlite_engine, _text_post())
    with session_scope(sqlite_engine) as session:
        with pytest.raises(UserError, match=message):
            decide(
                session=session,
                post=session.get_one(Post, post_id),
                action=action,
                actor=actor,
                settings=settings,
            )
    with Session(sqlite_engine) as session:
        assert session.get_one(Post, post_id).status == "pending"


def test_removed_and_already_decided_posts_are_refused(
    sqlite_engine: Engine, settings: Settings
) -> None:
    _people(sqlite_engine)
    removed, done = _store(sqlite_engine, _text_post(), _text_post())
    with session_scope(sqlite_engine) as session:
        set_status(session, [removed], PostStatus.REMOVED)
        set_status(session, [done], PostStatus.APPROVED)
    with session_scope(sqlite_engine) as session:
        with pytest.raises(UserError, match="removed at source"):
            decide(
                session=session,
                post=session.get_one(Post, removed),
                action="approve",
                actor="mo",
                settings=settings,
            )
        with pytest.raises(UserError, match="already approved"):
            decide(
                session=session,
                post=session.get_one(Post, done),
                action="approve",
                actor="mo",
                settings=settings,
            )


def test_an_image_needs_alt_text_or_a_decorative_mark(
    engine: Engine, settings: Settings, image_url: Callable[[str], str]
) -> None:
    _people(engine)
    images = (
        Media(kind="image", url=image_url("a"), alt=None),
        Media(kind="image", url=image_url("b"), alt=""),
        Media(kind="image", url=image_url("c"), alt="Painted hands"),
    )
    [post_id] = _store(engine, make_post(media=images))
    stage_all_waiting(engine=engine, settings=settings)  # version 2: the copies to look at
    with Session(engine) as session:
        ids = [m.id for m in session.exec(select(MediaItem).order_by(MediaItem.position))]
    with session_scope(engine) as session:
        with pytest.raises(UserError, match="image 1, 2 has no alt text"):
            decide(
                session=session,
                post=session.get_one(Post, post_id),
                action="approve",
                actor="mo",
                settings=settings,
                alt_texts={ids[0]: "   "},
            )
    with session_scope(engine) as session:
        decide(
            session=session,
            post=session.get_one(Post, post_id),
            action="approve",
            actor="mo",
            settings=settings,
            expected_version=2,
            alt_texts={ids[0]: "  A poster\nsaying  hello ", 99999: "not this post's"},
            decorative={ids[1]},
        )
    with Session(engine) as session:
        media = list(session.exec(select(MediaItem).order_by(MediaItem.position)))
        [event] = _events(session, post_id)
        assert session.get_one(Post, post_id).status == "approved"
    assert [(m.alt, m.decorative) for m in media] == [
        ("A poster saying hello", False),
        ("", True),
        ("Painted hands", False),
    ]
    assert event.detail == {
        "alt_edits": [
            {"media_id": ids[0], "from": None, "to": "A poster saying hello", "decorative": False},
            {"media_id": ids[1], "from": "", "to": "", "decorative": True},
        ]
    }


def test_a_rejection_needs_no_alt_text(sqlite_engine: Engine, settings: Settings) -> None:
    _people(sqlite_engine)
    [post_id] = _store(sqlite_engine, make_post(media=(Media(kind="image", url="https://x/y"),)))
    with session_scope(sqlite_engine) as session:
        decide(
            session=session,
            post=session.get_one(Post, post_id),
            action="reject",
            actor="mo",
            reason="Off topic",
            settings=settings,
        )


def test_bulk_decides_the_current_and_refuses_the_stale_and_the_missing(
    engine: Engine, settings: Settings
) -> None:
    _people(engine)
    ids = _store(engine, *(_text_post() for _ in range(5)))
    with session_scope(engine) as session:
        session.get_one(Post, ids[0]).version = 3  # edited at source since the page loaded
    with session_scope(engine) as session:
        outcome = decide_many(
            session=session,
            versions={**dict.fromkeys(ids, 1), 424242: 1},
            action="approve",
            actor="mo",
            settings=settings,
        )
    assert [r.post_id for r in outcome.decided] == ids[1:]
    assert set(outcome.refused) == {ids[0], 424242}
    assert "changed since you loaded it" in outcome.refused[ids[0]]
    assert outcome.refused[424242] == "post 424242 does not exist"
    with Session(engine) as session:
        statuses = [session.get_one(Post, i).status for i in ids]
        approvals = session.exec(select(AuditEvent).where(AuditEvent.action == "approve"))
        assert len(list(approvals)) == 4
    assert statuses == ["pending"] + ["approved"] * 4


def test_bulk_refuses_a_selection_too_large(sqlite_engine: Engine, settings: Settings) -> None:
    with session_scope(sqlite_engine) as session:
        with pytest.raises(UserError, match="at most"):
            decide_many(
                session=session,
                versions=dict.fromkeys(range(MAX_BULK_POSTS + 1), 1),
                action="approve",
                actor="mo",
                settings=settings,
            )


def test_reject_reasons_are_editable_and_checked(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        assert reject_reasons(session) == list(DEFAULT_REJECT_REASONS)
        saved = set_reject_reasons(
            session=session, reasons=["  Spam ", "", "Spam", "<i>Rude</i>"], actor="ad"
        )
        assert saved == ["Spam", "<i>Rude</i>"]
        for bad, message in (
            ([" "], "at least one"),
            (["x" * 121], "at most 120"),
            ([str(i) for i in range(31)], "at most 30"),
        ):
            with pytest.raises(UserError, match=message):
                set_reject_reasons(session=session, reasons=bad, actor="ad")
    with Session(sqlite_engine) as session:
        assert reject_reasons(session) == ["Spam", "<i>Rude</i>"]
        [event] = session.exec(select(AuditEvent))
        assert (event.action, event.actor) == ("setting_changed", "ad")
    allowed = ["Spam"]
    assert compose_reason("Spam", "  bought   likes ", allowed) == "Spam: bought likes"
    assert compose_reason("", "own words", allowed) == "own words"
    assert compose_reason("", "  ", allowed) is None
    with pytest.raises(UserError, match="from the list"):
        compose_reason("Made up", "", allowed)


def _ids(page_posts: list[Post]) -> list[int]:
    return [p.id or 0 for p in page_posts]


def test_pending_pages_show_flagged_first_and_cover_every_post_once(engine: Engine) -> None:
    ids = _store(engine, *(_text_post() for _ in range(23)))
    flagged = {ids[5], ids[17], ids[20]}
    with session_scope(engine) as session:
        for post_id in flagged:
            post = session.get_one(Post, post_id)
            post.flagged, post.flag_reasons = True, ["Takedown request: a child is named"]
        session.get_one(Post, ids[0]).status = "approved"
    seen: list[int] = []
    cursor = None
    with Session(engine) as session:
        while True:
            page = list_queue(session, QueueFilters(), cursor=cursor, limit=4, zone=LONDON)
            seen += _ids(page.posts)
            if page.next_cursor is None:
                break
            cursor = QueueCursor.decode(page.next_cursor)
        newest = list_queue(session, QueueFilters(newest_first=True), limit=100, zone=LONDON)
        only_flagged = list_queue(session, QueueFilters(tab="flagged"), zone=LONDON)
        counts = queue_counts(session)
    unflagged = [i for i in ids[1:] if i not in flagged]
    assert seen == sorted(flagged) + unflagged
    assert _ids(newest.posts) == sorted(flagged, reverse=True) + unflagged[::-1]
    assert _ids(only_flagged.posts) == sorted(flagged)
    assert counts == {
        "takedowns": 0,
        "pending": 22,
        "flagged": 3,
        "approved": 1,
        "rejected": 0,
        "removed": 0,
    }


@pytest.mark.parametrize("cursor", ["", "garbage", "1~x~3", "9~1.0~1", "1~1e400~2", "a" * 500])
def test_a_malformed_cursor_starts_from_the_top(cursor: str) -> None:
    assert QueueCursor.decode(cursor) is None


def test_filters_narrow_the_queue(engine: Engine) -> None:
    ids = _store(
        engine,
        _text_post(text="50% off_sale", author=Author(handle="@shop@x.social", name="Shop")),
        _text_post(platform="bluesky", hashtags=("helpinghands",)),
        _text_post(created_at=BASE_TIME + timedelta(days=3)),
    )
    day = (BASE_TIME + timedelta(days=3)).astimezone(LONDON).date()
    cases = {
        QueueFilters(text="50% off_"): [ids[0]],
        QueueFilters(text="5_%"): [],
        QueueFilters(author="@SHOP"): [ids[0]],
        QueueFilters(platform="bluesky"): [ids[1]],
        QueueFilters(tag="#HelpingHands"): [ids[1]],
        QueueFilters(since=day): [ids[2]],
        QueueFilters(until=day - timedelta(days=1)): ids[:2],
        QueueFilters(since=date(2030, 1, 1)): [],
        QueueFilters(tab="removed"): [],
    }
    with Session(engine) as session:
        for filters, expected in cases.items():
            page = list_queue(session, dataclasses.replace(filters), zone=LONDON)
            assert _ids(page.posts) == expected, filters


def test_an_approved_post_edited_at_source_returns_with_both_texts(
    engine: Engine, settings: Settings
) -> None:
    _people(engine)
    original = _text_post(text="Proud of our hands #CEADAY21")
    [post_id] = _store(engine, original)
    with session_scope(engine) as session:
        decide(
            session=session,
            post=session.get_one(Post, post_id),
            action="approve",
            actor="mo",
            settings=settings,
        )
    with session_scope(engine) as session:
        edited = dataclasses.replace(original, text="Buy followers now #CEADAY21")
        record_posts(session=session, posts=[edited])
    with Session(engine) as session:
        post = session.get_one(Post, post_id)
        [card] = load_cards(session, [post])
        export = [r for r in iter_export_records(session) if r["status"] == "pending"]
    assert post.status == "pending"
    assert card.previous_text == "Proud of our hands #CEADAY21"
    assert post.text == "Buy followers now #CEADAY21"
    assert [e.action for e in card.history] == ["approve", "edited_at_source"]
    assert [d["action"] for d in export[0]["decisions"]] == ["approve"]


def test_a_decision_rereads_the_post_so_a_concurrent_one_is_not_lost(
    engine: Engine, settings: Settings
) -> None:
    """Two moderators load the same post; the second decision must see the first."""
    _people(engine)
    [post_id] = _store(engine, _text_post())
    with Session(engine, expire_on_commit=False) as second_moderator:
        seen = second_moderator.get_one(Post, post_id)
        second_moderator.commit()
        with session_scope(engine) as first_moderator:
            decide(
                session=first_moderator,
                post=first_moderator.get_one(Post, post_id),
                action="approve",
                actor="mo",
                settings=settings,
                expected_version=1,
            )
        assert seen.version == 1
        with pytest.raises(StaleDecision):
            decide(
                session=second_moderator,
                post=seen,
                action="reject",
                actor="ad",
                reason="x",
                settings=settings,
                expected_version=1,
            )
    with Session(engine) as session:
        assert session.get_one(Post, post_id).status == "approved"
