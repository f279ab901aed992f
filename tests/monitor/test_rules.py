"""Ingestion rules: matching, the actions they may take, and the audit they leave."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Author, FetchedPost
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, ModerationRule, Post
from monitor.services.ingest import record_posts
from monitor.services.polling import poll_all
from monitor.services.rules import (
    DETECTORS,
    add_rule,
    apply_ingest_rules,
    delete_rule,
    fold,
    list_rules,
    set_rule_enabled,
    term_regex,
    validate_rule,
)
from tests.factories import make_post
from tests.fakes.mastodon import FakeMastodon


def _matches(term: str, text: str) -> bool:
    return term_regex(term).search(fold(text)) is not None


@pytest.mark.parametrize(
    ("term", "text"),
    [
        ("drugs", "No DRUGS here"),
        ("drugs", "#drugs at the gate"),
        ("café", "meet at the CAFE"),
        ("cafe", "meet at the Café!"),
        ("county lines", "County   Lines again"),
        ("naïve", "so NAIVE"),
    ],
)
def test_blocked_terms_ignore_case_and_accents(term: str, text: str) -> None:
    assert _matches(term, text)


@pytest.mark.parametrize(
    ("term", "text"),
    [
        ("cafe", "the cafeteria"),
        ("drug", "drugstore"),
        ("ass", "a class assembly"),
        ("county lines", "county and lines"),
    ],
)
def test_blocked_terms_stop_at_word_boundaries(term: str, text: str) -> None:
    assert not _matches(term, text)


def test_a_term_is_literal_not_a_regular_expression() -> None:
    assert not _matches("a.b", "axb")
    assert _matches("a.b", "see a.b now")
    assert _matches("(x)", "call (x) now")


@pytest.mark.parametrize(
    ("detector", "text"),
    [
        ("uk_phone", "ring 07700 900123 now"),
        ("uk_phone", "ring 07700900123"),
        ("uk_phone", "+44 7700 900123"),
        ("uk_phone", "call 020 7946 0018"),
        ("uk_phone", "call (020) 7946 0018"),
        ("uk_phone", "0044 161 496 0000"),
        ("email", "write to jo.bloggs+x@school.example.org please"),
        ("uk_postcode", "outside SW1A 1AA today"),
        ("uk_postcode", "near M1 1AE"),
        ("uk_postcode", "at B33 8TH"),
        ("uk_postcode", "EC1A1BB"),
    ],
)
def test_detectors_find_personal_data(detector: str, text: str) -> None:
    assert DETECTORS[detector][1].search(text)


@pytest.mark.parametrize(
    ("detector", "text"),
    [
        ("uk_phone", "raised 1000000 pounds"),
        ("uk_phone", "year 2021 03 18"),
        ("email", "thanks @alice@mastodon.social"),
        ("email", "not an email: a@b"),
        ("uk_postcode", "see you b4 2am"),
        ("uk_postcode", "#CEADAY21 HelpingHands"),
    ],
)
def test_detectors_leave_ordinary_text_alone(detector: str, text: str) -> None:
    assert not DETECTORS[detector][1].search(text)


def _store(engine: Engine, *posts: FetchedPost) -> list[int]:
    with session_scope(engine) as session:
        return record_posts(session=session, posts=list(posts)).new_ids


def _rule(engine: Engine, kind: str, pattern: str, action: str) -> int:
    with session_scope(engine) as session:
        rule = add_rule(session=session, kind=kind, pattern=pattern, action=action, actor="admin")
        return rule.id or 0


def _apply(engine: Engine, ids: list[int]) -> None:
    with session_scope(engine) as session:
        apply_ingest_rules(session=session, post_ids=ids)


def test_a_reject_rule_rejects_and_names_itself_in_the_audit(engine: Engine) -> None:
    rule_id = _rule(engine, "blocked_term", "Spam Offer", "reject")
    ids = _store(engine, make_post(text="Great SPAM   offer #CEADAY21"), make_post())
    _apply(engine, ids)
    with Session(engine) as session:
        rejected, other = session.get_one(Post, ids[0]), session.get_one(Post, ids[1])
        assert (rejected.status, other.status) == ("rejected", "pending")
        assert rejected.version == 2
        [event] = session.exec(select(AuditEvent).where(AuditEvent.post_id == ids[0]))
    assert event.actor == f"rule:{rule_id}"
    assert (event.action, event.from_status, event.to_status) == ("reject", "pending", "rejected")
    assert event.detail == {"rule_id": rule_id, "kind": "blocked_term", "pattern": "Spam Offer"}
    assert "Spam Offer" in (event.reason or "")


def test_detectors_flag_and_say_why_but_never_decide(engine: Engine) -> None:
    ids = _store(engine, make_post(text="Text me on 07700 900123 or jo@example.org"))
    _apply(engine, ids)
    with Session(engine) as session:
        post = session.get_one(Post, ids[0])
        events = list(session.exec(select(AuditEvent).where(AuditEvent.post_id == ids[0])))
    assert post.status == "pending" and post.flagged
    assert post.flag_reasons == [
        "Personal data: looks like a UK phone number",
        "Personal data: contains an email address",
    ]
    assert {e.action for e in events} == {"flag"}
    assert all(e.actor.startswith("rule:") for e in events)


def test_blocked_authors_match_with_or_without_at_sign_in_any_case(engine: Engine) -> None:
    _rule(engine, "blocked_author", "@Troll@Example.Social", "reject")
    ids = _store(
        engine,
        make_post(author=Author(handle="@troll@example.social", name="T")),
        make_post(author=Author(handle="@trolley@example.social", name="T")),
    )
    _apply(engine, ids)
    with Session(engine) as session:
        assert [session.get_one(Post, i).status for i in ids] == ["rejected", "pending"]


def test_a_reject_wins_over_a_flag_and_disabled_rules_do_nothing(engine: Engine) -> None:
    _rule(engine, "blocked_term", "knife", "flag")
    reject_id = _rule(engine, "blocked_term", "gang", "reject")
    off_id = _rule(engine, "blocked_term", "hands", "reject")
    with session_scope(engine) as session:
        set_rule_enabled(session=session, rule_id=off_id, enabled=False, actor="admin")
    ids = _store(engine, make_post(text="knife gang"), make_post(text="my hands"))
    _apply(engine, ids)
    with Session(engine) as session:
        first, second = (session.get_one(Post, i) for i in ids)
        [event] = session.exec(select(AuditEvent).where(AuditEvent.post_id == ids[0]))
    assert first.status == "rejected" and event.actor == f"rule:{reject_id}"
    assert second.status == "pending" and not second.flagged


def test_rules_only_touch_pending_posts(engine: Engine) -> None:
    ids = _store(engine, make_post(text="call 07700 900123"))
    with session_scope(engine) as session:
        session.get_one(Post, ids[0]).status = "approved"
    _apply(engine, ids)
    with Session(engine) as session:
        post = session.get_one(Post, ids[0])
    assert post.status == "approved" and not post.flagged


def test_no_rule_can_approve_and_detectors_are_forced_to_flag(engine: Engine) -> None:
    with session_scope(engine) as session:
        with pytest.raises(UserError, match="reject or flag"):
            add_rule(session=session, kind="blocked_term", pattern="x", action="approve", actor="a")
        with pytest.raises(UserError, match="already exists"):
            add_rule(session=session, kind="detector", pattern="email", action="reject", actor="a")
    assert validate_rule("detector", "email", "reject") == ("detector", "email", "flag")


@pytest.mark.parametrize(
    ("kind", "pattern", "message"),
    [
        ("regex", "x", "rule kind"),
        ("blocked_term", "   ", "needs a term"),
        ("blocked_term", "x" * 301, "at most 300"),
        ("blocked_term", "!!!", None),
        ("blocked_author", "two words", "one handle"),
        ("detector", "iban", "detector"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_message(
    sqlite_engine: Engine, kind: str, pattern: str, message: str | None
) -> None:
    with session_scope(sqlite_engine) as session:
        if message is None:
            add_rule(session=session, kind=kind, pattern=pattern, action="flag", actor="a")
            return
        with pytest.raises(UserError, match=message):
            add_rule(session=session, kind=kind, pattern=pattern, action="flag", actor="a")


def test_rule_changes_are_audited_and_duplicates_refused(sqlite_engine: Engine) -> None:
    rule_id = _rule(sqlite_engine, "blocked_term", "<script>bad</script>", "flag")
    with session_scope(sqlite_engine) as session:
        with pytest.raises(UserError, match="already exists"):
            add_rule(
                session=session,
                kind="blocked_term",
                pattern="<SCRIPT>bad</script>",
                action="flag",
                actor="a",
            )
    with session_scope(sqlite_engine) as session:
        delete_rule(session=session, rule_id=rule_id, actor="admin")
        with pytest.raises(UserError, match="no rule"):
            delete_rule(session=session, rule_id=rule_id + 100, actor="admin")
    with Session(sqlite_engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent))]
        remaining = list_rules(session=session)
    assert actions == ["rule_added", "rule_deleted"]
    assert {r.kind for r in remaining} == {"detector"}


def test_a_poll_runs_the_rules_in_the_same_transaction(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    _rule(engine, "blocked_term", "hijack", "reject")
    mastodon.add("We hijack #CEADAY21", tags=("CEADAY21",))
    mastodon.add("Email me at jo@example.org #CEADAY21", tags=("CEADAY21",))
    mastodon.add("Kind words #CEADAY21", tags=("CEADAY21",))

    poll_all(engine=engine, settings=settings)

    with Session(engine) as session:
        posts = {p.text: p for p in session.exec(select(Post))}
        rules = session.exec(select(ModerationRule)).all()
    assert posts["We hijack #CEADAY21"].status == "rejected"
    assert posts["Email me at jo@example.org #CEADAY21"].flagged
    kind = posts["Kind words #CEADAY21"]
    assert kind.status == "pending" and not kind.flagged
    assert len(rules) == 4
