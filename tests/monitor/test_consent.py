"""Opt-outs and consent: an author who asked not to be shown publicly is published only
with consent on record (issue 12, "consent and opt-outs")."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, Post, PostStatus
from monitor.services.consent import record_consent
from monitor.services.export import csv_header, iter_export_records, to_csv, to_jsonl
from monitor.services.ingest import opt_out_reason, record_posts
from monitor.services.moderation import ConsentNeeded, decide, flag_reasons
from tests.factories import make_post
from tests.web.auth_helpers import make_user

NOT_INDEXABLE = "their Mastodon account is not indexable"


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure()


def _store(engine: Engine, **overrides: object) -> int:
    with session_scope(engine) as session:
        return record_posts(session=session, posts=[make_post(media=(), **overrides)]).new_ids[0]


def _approve(engine: Engine, settings: Settings, post_id: int) -> None:
    with session_scope(engine) as session:
        post = session.get_one(Post, post_id)
        decide(
            session=session,
            post=post,
            action="approve",
            actor="mo",
            settings=settings,
            acknowledged_flags=flag_reasons(post),
        )


def test_an_opted_out_author_is_flagged_and_needs_consent(
    engine: Engine, settings: Settings
) -> None:
    make_user(engine, "mo", "moderator")
    post_id = _store(engine, opt_out=NOT_INDEXABLE)
    with Session(engine) as session:
        post = session.get_one(Post, post_id)
        assert post.flagged and post.flag_reasons == [opt_out_reason(NOT_INDEXABLE)]

    with pytest.raises(ConsentNeeded, match="asked not to be shown publicly"):
        _approve(engine, settings, post_id)  # even with every flag acknowledged

    with session_scope(engine) as session:
        record_consent(
            session=session,
            post=session.get_one(Post, post_id),
            actor="mo",
            how="Asked by direct message; the author replied yes",
            obtained_on=date(2021, 3, 19),
        )
    _approve(engine, settings, post_id)

    with Session(engine) as session:
        assert session.get_one(Post, post_id).status == PostStatus.APPROVED
        actions = list(session.exec(select(AuditEvent.action).where(AuditEvent.post_id == post_id)))
    assert actions == ["consent_recorded", "approve"]


def test_consent_is_recorded_by_moderators_only_and_never_in_the_future(
    engine: Engine,
) -> None:
    make_user(engine, "vi", "viewer")
    make_user(engine, "mo", "moderator")
    post_id = _store(engine, opt_out=NOT_INDEXABLE)
    with session_scope(engine) as session:
        post = session.get_one(Post, post_id)
        with pytest.raises(UserError, match="only its moderators and admins record consent"):
            record_consent(
                session=session, post=post, actor="vi", how="I said so", obtained_on=date.today()
            )
        with pytest.raises(UserError, match="future"):
            record_consent(
                session=session,
                post=post,
                actor="mo",
                how="Phone call",
                obtained_on=date.today() + timedelta(days=2),
            )
        with pytest.raises(UserError, match="how consent was obtained"):
            record_consent(
                session=session, post=post, actor="mo", how="  ", obtained_on=date.today()
            )


def test_an_opt_out_that_arrives_with_an_edit_flags_the_post_again(
    engine: Engine, settings: Settings
) -> None:
    make_user(engine, "mo", "moderator")
    original = make_post(media=())
    with session_scope(engine) as session:
        [post_id] = record_posts(session=session, posts=[original]).new_ids
    _approve(engine, settings, post_id)

    with session_scope(engine) as session:
        edited = dataclasses.replace(original, text="Edited #CEADAY21", opt_out=NOT_INDEXABLE)
        record_posts(session=session, posts=[edited])

    with Session(engine) as session:
        post = session.get_one(Post, post_id)
    assert post.status == PostStatus.PENDING and post.flagged
    assert opt_out_reason(NOT_INDEXABLE) in (post.flag_reasons or [])


def test_consent_and_flags_are_in_the_export(engine: Engine) -> None:
    make_user(engine, "mo", "moderator")
    post_id = _store(engine, opt_out=NOT_INDEXABLE)
    with session_scope(engine) as session:
        record_consent(
            session=session,
            post=session.get_one(Post, post_id),
            actor="mo",
            how="Email from the author",
            obtained_on=date(2021, 3, 20),
            covers="the gallery on the force website",
        )
    with Session(engine) as session:
        [record] = list(iter_export_records(session))
    assert record["flags"] == [opt_out_reason(NOT_INDEXABLE)]
    assert record["consent"]["how"] == "Email from the author"
    assert record["consent"]["obtained_on"] == "2021-03-20"
    assert record["consent"]["by"] == "mo" and record["consent"]["covers"].startswith("the gallery")
    assert json.loads(to_jsonl(record))["consent"] == record["consent"]
    assert "flags" in csv_header() and "Email from the author" in to_csv(record)
