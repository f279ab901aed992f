"""Export in the SPEC's exact shape, with each post's decisions."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.base import Engagement
from monitor.config import Settings
from monitor.services.export import csv_header, iter_export_records, to_csv, to_jsonl
from monitor.services.ingest import record_posts
from monitor.services.moderation import decide, find_post
from monitor.services.users import add_user
from tests.factories import make_post

SPEC_KEYS = [
    "platform",
    "external_id",
    "url",
    "author",
    "text",
    "created_at",
    "hashtags",
    "status",
    "media",
    "engagement",
    "edited_at",
    "deleted_at",
    "decisions",
    "flags",
    "consent",
    "escalated",
]


@pytest.fixture
def exported(engine: Engine, configure: Callable[..., Settings]) -> list[dict]:
    settings = configure()
    post = make_post(
        text='=HYPERLINK("http://evil") on my hands #CEADAY21',
        hashtags=("ceaday21", "helpinghands"),
        engagement=Engagement(likes=3, shares=1, replies=0),
        media=(),  # approval pins media; the pending post below carries the media
    )
    with Session(engine) as session:
        record_posts(session=session, posts=[post, make_post()])
        add_user(
            session=session,
            name="alice",
            role="moderator",
            password="correct horse battery",
            actor="test",
        )
        decide(
            session=session,
            post=find_post(session, f"mastodon:{post.external_id}"),
            action="approve",
            actor="alice",
            reason="<b>fine</b>",
            settings=settings,
        )
        session.commit()
        return [json.loads(to_jsonl(r)) for r in iter_export_records(session)]


def test_jsonl_has_the_spec_shape(exported: list[dict]) -> None:
    first = exported[0]
    assert list(first) == SPEC_KEYS
    assert list(first["author"]) == ["handle", "name", "url", "followers"]
    assert first["author"]["followers"] is None  # the factory's post does not say: null, not 0
    assert first["created_at"].endswith("Z")
    assert first["hashtags"] == ["ceaday21", "helpinghands"]
    assert first["status"] == "approved"
    assert first["escalated"] is False
    assert first["media"] == []
    assert exported[1]["media"] == [{"kind": "image", "alt": "Hands", "pinned": False}]
    assert first["engagement"] == {"likes": 3, "shares": 1, "replies": 0, "views": None}
    [decision] = first["decisions"]
    assert decision["action"] == "approve" and decision["by"] == "alice"
    assert decision["reason"] == "<b>fine</b>" and decision["at"].endswith("Z")
    assert exported[1]["decisions"] == [] and exported[1]["status"] == "pending"


def test_csv_neutralises_formulas(exported: list[dict]) -> None:
    text = csv_header() + "\n" + "\n".join(to_csv(r) for r in exported)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["text"].startswith("'=HYPERLINK")
    assert rows[0]["decisions"].startswith("approve by alice")


def test_status_filter(engine: Engine, exported: list[dict]) -> None:
    with Session(engine) as session:
        assert [r["status"] for r in iter_export_records(session, status="pending")] == ["pending"]
