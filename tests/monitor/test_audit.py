"""The audit trail's vocabulary (issue 18): every action has words, and only known
actions can be recorded, so readers can rely on the members."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlmodel import Session, SQLModel, create_engine

from monitor.models import AuditEvent, Post
from monitor.services import audit
from monitor.services.audit import GALLERY_PAUSED, Action, describe

MONITOR = Path(__file__).resolve().parents[2] / "monitor"


@pytest.mark.parametrize("action", list(Action))
def test_every_action_has_words_for_people(action: Action) -> None:
    assert action.label.strip() == action.label and action.label
    assert "_" not in action.label
    assert Action.from_words(action.label) is action and Action.from_words(action.value) is action
    assert describe(AuditEvent(actor="x", action=action.value)) == action.label


def test_the_words_are_distinct() -> None:
    labels = [action.label for action in Action]
    assert len(set(labels)) == len(labels)


def test_the_kill_switch_reads_as_the_gallery_paused_or_resumed() -> None:
    def switched(to: object, key: str = GALLERY_PAUSED) -> str:
        detail = {"key": key, "from": None, "to": to}
        return describe(AuditEvent(actor="ad", action="setting_changed", detail=detail))

    assert (switched(True), switched(False)) == ("gallery paused", "gallery resumed")
    assert switched(["Spam"], key="reject_reasons") == "setting changed"
    # A row written by a later version still reads, in its stored words.
    assert describe(AuditEvent(actor="x", action="campaign_merged")) == "campaign merged"


def test_nothing_in_monitor_builds_an_audit_row_but_the_recorder() -> None:
    builders = [
        f"{path.relative_to(MONITOR)}:{number}"
        for path in MONITOR.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bAuditEvent\(", line) and path.name not in ("audit.py", "models.py")
    ]
    assert builders == []


def test_record_adds_the_row_and_refuses_an_unknown_action() -> None:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        event = audit.record(session, actor="ad", action=Action.LOGOUT)
        assert event in session.new and event.action == "logout" and event.at is not None
        post = Post(id=7, status="approved")  # not stored: record only reads it
        kept = audit.record(session, actor="mo", action=Action.MEDIA_REVEALED, post=post)
        assert (kept.post_id, kept.from_status, kept.to_status) == (7, "approved", "approved")
        moved = audit.record(session, actor="mo", action=Action.UNDO, post=post, to_status="x")
        assert (moved.from_status, moved.to_status) == ("approved", "x")
        with pytest.raises(ValueError, match="setting changed"):
            audit.record(session, actor="ad", action="setting changed")  # type: ignore[arg-type]
