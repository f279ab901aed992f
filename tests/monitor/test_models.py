"""Fixed vocabularies are typed by their enums, and stored as the words they always were.

Rows written before the columns were typed (plain strings) read back as enum
members; a word outside the vocabulary is refused before it reaches the database.
"""

from __future__ import annotations

from enum import StrEnum

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel, select

from monitor.models import (
    AlertKind,
    AlertStatus,
    AuditEvent,
    DigestStatus,
    ModerationRule,
    PollKind,
    Post,
    PostStatus,
    Role,
    RuleAction,
    RuleKind,
    SafeguardingAlert,
    TakedownCategory,
    TakedownOutcome,
    User,
    utcnow,
)
from monitor.services.ingest import record_posts
from tests.factories import make_post

TYPED = [
    ("posts", "status", PostStatus),
    ("users", "role", Role),
    ("moderation_rules", "kind", RuleKind),
    ("moderation_rules", "action", RuleAction),
    ("takedown_requests", "category", TakedownCategory),
    ("takedown_requests", "outcome", TakedownOutcome),
    ("safeguarding_alerts", "kind", AlertKind),
    ("safeguarding_alerts", "status", AlertStatus),
    ("poll_runs", "kind", PollKind),
    ("digest_sends", "status", DigestStatus),
    ("moderation_events", "from_status", PostStatus),
    ("moderation_events", "to_status", PostStatus),
]


@pytest.mark.parametrize(("table", "column", "vocabulary"), TYPED)
def test_each_vocabulary_column_is_typed_by_its_enum_and_stores_its_words(
    table: str, column: str, vocabulary: type[StrEnum]
) -> None:
    kind = SQLModel.metadata.tables[table].c[column].type
    assert isinstance(kind, sa.Enum) and kind.enum_class is vocabulary
    assert kind.enums == [member.value for member in vocabulary]
    assert not kind.native_enum and not kind.create_constraint


def test_media_kind_column_takes_the_adapters_kinds() -> None:
    kind = SQLModel.metadata.tables["media"].c["kind"].type
    assert isinstance(kind, sa.Enum) and set(kind.enums) == {"image", "video", "gif", "audio"}


def test_a_row_written_as_plain_words_reads_back_as_enum_members(engine: Engine) -> None:
    with Session(engine) as session:
        record_posts(session=session, posts=[make_post()])
        session.commit()
        post_id = session.exec(select(Post.id)).one()
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE posts SET status = 'approved' WHERE id = :id"), {"id": post_id}
        )
        connection.execute(
            sa.text(
                "INSERT INTO moderation_rules (kind, pattern, action, enabled, created_at,"
                " created_by) VALUES ('blocked_term', 'spam', 'flag', true, :at, 'ad')"
            ),
            {"at": utcnow()},
        )
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.status is PostStatus.APPROVED
        rule = session.exec(select(ModerationRule).where(ModerationRule.pattern == "spam")).one()
        assert (rule.kind, rule.action) == (RuleKind.BLOCKED_TERM, RuleAction.FLAG)
        assert rule.kind is RuleKind.BLOCKED_TERM and rule.action is RuleAction.FLAG
        event = AuditEvent(
            post_id=post_id, at=utcnow(), actor="ad", action="approve", to_status=post.status
        )
        session.add(event)
        session.commit()
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT to_status FROM moderation_events")).scalar()
        assert stored == "approved" and type(stored) is str


@pytest.mark.parametrize(
    "row",
    [
        lambda: User(name="eve", role="owner", password_hash="x", created_at=utcnow()),
        lambda: SafeguardingAlert(kind="takedown", status="lost", summary="", created_at=utcnow()),
    ],
    ids=["role", "alert status"],
)
def test_a_word_outside_the_vocabulary_is_refused_before_it_is_written(
    engine: Engine, row: object
) -> None:
    with Session(engine) as session:
        session.add(row())  # type: ignore[operator]
        with pytest.raises(StatementError, match="is not among the defined enum values"):
            session.flush()
