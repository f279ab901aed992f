"""Undo of one's own last decision (issue 12, "speed for a person"), over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.models import AuditEvent
from monitor.services.undo import UNDO_WINDOW
from tests.web.auth_helpers import TestClient, app_client, csrf_token, login, make_user
from tests.web.test_queue import (
    JSON,
    _decide,
    _statuses,
    _store,
    _text_post,
)


def _undo(client: TestClient, event_id: str) -> dict[str, object]:
    fields = {"csrf_token": csrf_token(client), "event_id": event_id, "return_to": "/queue"}
    return client.post("/queue/undo", data=fields, headers=JSON).json()


def _offered(client: TestClient) -> str | None:
    match = re.search(r'name="event_id" value="(\d+)"', client.get("/queue").text)
    return match[1] if match else None


def test_an_approval_undone_leaves_the_gallery_at_once_and_is_audited(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post(text="Hands up for our kids #CEADAY21"))
    answer = moderator.post(
        "/queue/decide", data=_decide(moderator, post_id, "approve"), headers=JSON
    )
    body = answer.json()
    assert "Hands up for our kids" in body["message"] and f"post {post_id}" not in body["message"]
    assert body["counts"]["approved"] == 1 and body["counts"]["pending"] == 0
    assert moderator.get("/gallery.json").json()["posts"]
    event_id = _offered(moderator)
    assert event_id is not None and body["undo"]["event_id"] == int(event_id)

    undone = _undo(moderator, event_id)

    assert undone["ok"] and _statuses(sqlite_engine) == {post_id: "pending"}
    assert moderator.get("/gallery.json").json()["posts"] == []
    assert _offered(moderator) is None  # nothing left to undo
    assert not _undo(moderator, event_id)["ok"]  # and not twice
    with Session(sqlite_engine) as session:
        actions = list(
            session.exec(
                select(AuditEvent.action)
                .where(AuditEvent.post_id == post_id)
                .order_by(AuditEvent.id)
            )
        )
    assert actions == ["approve", "undo"]


def test_only_ones_own_decision_can_be_undone(
    app: FastAPI, sqlite_engine: Engine, moderator: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    moderator.post("/queue/decide", data=_decide(moderator, post_id, "approve"), headers=JSON)
    event_id = _offered(moderator)
    assert event_id is not None
    make_user(sqlite_engine, "mo2", "moderator")
    with app_client(app) as other:
        login(other, "mo2")
        assert _offered(other) is None
        refused = _undo(other, event_id)
    assert not refused["ok"] and "no decision of yours" in str(refused["message"])
    assert _statuses(sqlite_engine) == {post_id: "approved"}


def test_a_decision_cannot_be_undone_once_the_post_moved_on_or_time_is_up(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    first, second = _store(sqlite_engine, _text_post(), _text_post())
    moderator.post("/queue/decide", data=_decide(moderator, first, "approve"), headers=JSON)
    moderator.post(
        "/queue/decide",
        data=_decide(moderator, first, "reject", version=2, reason_note="changed my mind"),
        headers=JSON,
    )
    with Session(sqlite_engine) as session:
        approval = session.exec(select(AuditEvent).where(AuditEvent.action == "approve")).one()
    stale = _undo(moderator, str(approval.id))
    assert not stale["ok"] and "changed after your decision" in str(stale["message"])

    moderator.post("/queue/decide", data=_decide(moderator, second, "approve"), headers=JSON)
    with Session(sqlite_engine) as session:  # every decision of theirs is now too old
        for event in session.exec(select(AuditEvent)):
            event.at -= UNDO_WINDOW + timedelta(seconds=1)
            session.add(event)
        session.commit()
        latest = session.exec(select(AuditEvent).where(AuditEvent.post_id == second)).one()
    assert _offered(moderator) is None
    late = _undo(moderator, str(latest.id))
    assert not late["ok"] and "5 minutes only" in str(late["message"])
