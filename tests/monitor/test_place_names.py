"""Place-name lists: an admin's list of schools, estates and streets flags posts naming one."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, ModerationRule, PlaceName, Post
from monitor.services.ingest import record_posts
from monitor.services.rules import (
    CompiledRules,
    add_place_list,
    add_rule,
    apply_ingest_rules,
    compile_enabled,
    delete_rule,
    parse_place_names,
)
from tests.factories import make_post

SCHOOLS = "name\nEastgate Academy\nSt Mary’s School\nÉcole Sainte-Anne\nMill Lane\n".encode()


def _list_rule(names: list[str]) -> CompiledRules:
    rule = ModerationRule(
        id=7,
        kind="place_names",
        pattern="Schools",
        action="flag",
        created_at=None,
        created_by="",  # type: ignore[arg-type]
    )
    return CompiledRules([rule], [(rule, name) for name in names])


@pytest.mark.parametrize(
    "text",
    [
        "Pupils at EASTGATE ACADEMY wrote these",
        "eastgate   academy today",
        "at St Mary's School (the big one)",
        "ecole sainte-anne, bravo",
        "#CEADAY21 on Mill Lane.",
        "Mill Lane",
        "Proud of #StMarysSchool today",
        "EastgateAcademy",
    ],
)
def test_names_match_ignoring_case_accents_spacing_and_quote_style(text: str) -> None:
    found = _list_rule(["Eastgate Academy", "St Mary’s School", "École Sainte-Anne", "Mill Lane"])
    assert found.text_matches(text), text


@pytest.mark.parametrize(
    "text",
    [
        "Eastgate Academyville",
        "Mill Laneway",
        "the Eastgate",
        "NotMill Lane",
        "millbrook lane",
        "#NotMillLane",
        "Mill-Lanes",
    ],
)
def test_names_stop_at_word_boundaries(text: str) -> None:
    assert not _list_rule(["Eastgate Academy", "Mill Lane"]).text_matches(text)


def test_each_name_found_is_its_own_flag_and_only_once() -> None:
    found = _list_rule(["Eastgate Academy", "Mill Lane"]).text_matches(
        "Mill Lane, then Eastgate Academy, then Mill Lane again"
    )
    assert [m.label for m in found] == ["Place name “Mill Lane”", "Place name “Eastgate Academy”"]
    assert {m.action for m in found} == {"flag"}


def test_a_name_inside_another_is_found_with_it() -> None:
    found = _list_rule(["Mill Lane", "Mill Lane Primary"]).text_matches("at Mill Lane Primary")
    assert {m.label for m in found} == {
        "Place name “Mill Lane”",
        "Place name “Mill Lane Primary”",
    }


def test_ten_thousand_names_compile_and_match() -> None:
    names = [f"Street {n} Close" for n in range(10_000)]
    found = _list_rule(names).text_matches("we met on Street 9999 Close and Street 12 Close")
    assert [m.label for m in found] == [
        "Place name “Street 9999 Close”",
        "Place name “Street 12 Close”",
    ]


def test_the_file_is_read_one_name_a_line_skipping_a_header_blanks_and_repeats() -> None:
    data = "\ufeffname,type\nEastgate Academy,school\n\n  eastgate   academy \nMill Lane\n"
    assert parse_place_names(data.encode()) == ["Eastgate Academy", "Mill Lane"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"name\n", "no place names"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not text"),
        ("Café".encode("latin-1"), "not UTF-8"),
        (b"Mill Lane\n" + b"x" * 400 + b"\n", "line 2"),
        (b"Mill Lane\n---\n", "line 2"),
        (b"x" * 2_000_001, "over 2 MB"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_place_names(data)


def test_more_than_twenty_thousand_names_are_refused() -> None:
    data = "\n".join(f"Road {n}" for n in range(20_001)).encode()
    with pytest.raises(UserError, match="at most 20000"):
        parse_place_names(data)


def test_a_list_flags_new_posts_at_ingest_and_is_audited(engine: Engine) -> None:
    with session_scope(engine) as session:
        rule = add_place_list(session=session, title="Schools", data=SCHOOLS, actor="ad")
        rule_id = rule.id
    with session_scope(engine) as session:
        ids = record_posts(
            session=session,
            posts=[make_post(text="Our class at Eastgate Academy #CEADAY21"), make_post()],
        ).new_ids
        apply_ingest_rules(session=session, post_ids=ids)
    with Session(engine) as session:
        flagged, other = session.get_one(Post, ids[0]), session.get_one(Post, ids[1])
        events = session.exec(select(AuditEvent).where(AuditEvent.post_id == ids[0]))
        [event] = list(events)
        added = session.exec(select(AuditEvent).where(AuditEvent.action == "rule_added")).one()
    assert flagged.status == "pending" and flagged.flagged and not other.flagged
    assert flagged.flag_reasons == ["Place name “Eastgate Academy”"]
    assert event.actor == f"rule:{rule_id}" and event.action == "flag"
    assert added.detail == {
        "rule_id": rule_id,
        "kind": "place_names",
        "pattern": "Schools",
        "names": 4,
    }


def test_a_list_only_flags_and_is_not_added_as_a_plain_rule(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        with pytest.raises(UserError, match="uploaded as a file"):
            add_rule(session=session, kind="place_names", pattern="x", action="reject", actor="ad")
        rule = add_place_list(session=session, title="Estates", data=b"Millbrook", actor="ad")
        assert rule.action == "flag"
        with pytest.raises(UserError, match="exists"):
            add_place_list(session=session, title="estates", data=b"Other", actor="ad")
        with pytest.raises(UserError, match="name the list"):
            add_place_list(session=session, title="  ", data=b"Other", actor="ad")


def test_deleting_a_list_deletes_its_names_and_disabled_lists_do_nothing(
    sqlite_engine: Engine,
) -> None:
    with session_scope(sqlite_engine) as session:
        rule = add_place_list(session=session, title="Estates", data=b"Millbrook", actor="ad")
        rule.enabled = False
        session.add(rule)
    with session_scope(sqlite_engine) as session:
        assert not compile_enabled(session).text_matches("in Millbrook")
        delete_rule(session=session, rule_id=rule.id or 0, actor="ad")
    with Session(sqlite_engine) as session:
        assert session.exec(select(PlaceName)).all() == []


def test_the_automaton_is_reused_until_a_list_changes(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        add_place_list(session=session, title="Estates", data=b"Millbrook", actor="ad")
    with session_scope(sqlite_engine) as session:
        first = compile_enabled(session)
        assert compile_enabled(session).places is first.places
        add_place_list(session=session, title="Schools", data=b"Eastgate Academy", actor="ad")
    with session_scope(sqlite_engine) as session:
        second = compile_enabled(session)
        assert second.places is not first.places
        assert [m.label for m in second.text_matches("Millbrook, Eastgate Academy")] == [
            "Place name “Millbrook”",
            "Place name “Eastgate Academy”",
        ]
        [schools] = session.exec(select(ModerationRule).where(ModerationRule.pattern == "Schools"))
        schools.enabled = False
        session.add(schools)
    with session_scope(sqlite_engine) as session:
        assert [m.label for m in compile_enabled(session).text_matches("Eastgate Academy")] == []
