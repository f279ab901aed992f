"""The Mastodon adapter against a local instance speaking the documented API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import MalformedResponse, RequestRejected, Target, UnreadableRecord
from adapters.http import HttpClient, RetryPolicy
from adapters.mastodon import MastodonAdapter, normalise_status
from monitor.config import Settings
from monitor.models import AuditEvent, Post, PostStatus
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import Reply

INSTANCE = "https://example.social"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
TIMELINE = r"/api/v1/timelines/tag/.*"


def _status(**overrides: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "id": "109000000000001000",
        "uri": "https://example.social/users/a/statuses/1",
        "url": "https://example.social/@a/1",
        "created_at": "2021-03-18T09:00:00.000Z",
        "content": "<p>We hear you <a href='https://example.social/tags/CEADAY21'>#<span>CEADAY21</span></a></p>",
        "account": {"acct": "a", "display_name": "A", "url": "https://example.social/@a"},
        "tags": [{"name": "ceaday21"}],
    }
    status.update(overrides)
    return status


@pytest.fixture
def adapter(mastodon: FakeMastodon) -> MastodonAdapter:
    policy = RetryPolicy(timeout=1, attempts=2, backoff=0.001)
    return MastodonAdapter({"MASTODON_INSTANCES": mastodon.url}, HttpClient(policy))


def test_normalise_maps_the_documented_fields() -> None:
    post = normalise_status(
        INSTANCE,
        _status(
            sensitive=True,
            spoiler_text="hands",
            favourites_count=3,
            reblogs_count="1",
            replies_count=0,
            edited_at="2021-03-18T10:00:00Z",
            media_attachments=[
                {
                    "id": 77,
                    "type": "image",
                    "url": "https://files.example.social/1.jpg",
                    "description": "A hand with a message written on it",
                    "meta": {"original": {"width": 800, "height": 600}},
                },
                {"type": "image", "url": "javascript:alert(1)"},
                "not an attachment",
            ],
        ),
    )
    assert post.external_id == "https://example.social/users/a/statuses/1"
    assert post.author.handle == "@a@example.social"
    assert post.text == "We hear you #CEADAY21"
    assert post.hashtags == ("ceaday21",)
    assert post.created_at == datetime(2021, 3, 18, 9, tzinfo=UTC)
    assert post.edited_at == datetime(2021, 3, 18, 10, tzinfo=UTC)
    assert post.sensitive and post.content_warning == "hands"
    assert [(m.alt, m.width, m.sensitive, m.key) for m in post.media] == [
        ("A hand with a message written on it", 800, True, "77")
    ]
    assert (post.engagement.likes, post.engagement.shares, post.engagement.replies) == (3, 1, 0)
    assert post.engagement.views is None and post.engagement.quotes is None
    assert post.ref == f"{INSTANCE}|109000000000001000"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"id": None}, "no id"),
        ({"created_at": "not a date"}, "created_at"),
        ({"account": None}, "no account"),
        ({"account": {"acct": 5}}, "acct"),
    ],
)
def test_normalise_refuses_unusable_statuses(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnreadableRecord, match=reason):
        normalise_status(INSTANCE, _status(**overrides))


def test_numeric_ids_missing_uri_and_hostile_html_are_handled() -> None:
    post = normalise_status(
        INSTANCE,
        _status(
            id=109000000000001000,
            uri=None,
            url="javascript:alert(1)",
            content="<p>hi<script>alert(1)</script><a href='javascript:x'>x</a></p>"
            + "y" * 5_000_000,
        ),
    )
    assert post.external_id == f"{INSTANCE}/statuses/109000000000001000"
    assert post.url == post.external_id
    assert "script" not in post.html and "javascript" not in post.html
    assert len(post.text) <= 100_000


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    field=st.sampled_from(
        [
            "id",
            "uri",
            "created_at",
            "content",
            "account",
            "tags",
            "media_attachments",
            "favourites_count",
            "sensitive",
            "edited_at",
        ]
    ),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
        ),
        max_leaves=8,
    ),
)
def test_any_value_in_any_field_normalises_or_is_refused(field: str, value: Any) -> None:
    try:
        post = normalise_status(INSTANCE, _status(**{field: value}))
    except UnreadableRecord as exc:
        assert str(exc)
    else:
        assert post.external_id and post.created_at.tzinfo is not None


def test_body_that_is_not_a_list_is_malformed(
    adapter: MastodonAdapter, mastodon: FakeMastodon
) -> None:
    mastodon.server.route("GET", TIMELINE, lambda r: Reply.json({"error": "x"}), first=True)
    with pytest.raises(MalformedResponse, match="expected a JSON list"):
        list(adapter.search(Target(mastodon.url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=5))


def test_empty_page_with_link_next_ends_the_walk(
    adapter: MastodonAdapter, mastodon: FakeMastodon
) -> None:
    link = f'<{mastodon.url}/api/v1/timelines/tag/CEADAY21?max_id=1>; rel="next"'
    mastodon.server.route(
        "GET", TIMELINE, lambda r: Reply.json([], headers={"Link": link}), first=True
    )
    pages = list(
        adapter.search(Target(mastodon.url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=5)
    )
    assert len(pages) == 1 and pages[0].posts == () and pages[0].cursor is None


def test_a_server_repeating_the_same_page_does_not_loop(
    adapter: MastodonAdapter, mastodon: FakeMastodon
) -> None:
    statuses = mastodon.add_many(3)
    link = f'<{mastodon.url}/api/v1/timelines/tag/CEADAY21?max_id=5>; rel="next"'
    repeat = Reply.json(list(reversed(statuses)), headers={"Link": link})
    mastodon.server.route("GET", TIMELINE, lambda r: repeat, first=True)
    pages = list(
        adapter.search(Target(mastodon.url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=50)
    )
    assert len(pages) == 2
    assert pages[-1].cursor == statuses[-1]["id"]
    assert mastodon.server.hits() == 2


def test_page_cap_on_first_poll_flags_a_possible_gap(
    adapter: MastodonAdapter, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(100)
    pages = list(
        adapter.search(Target(mastodon.url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=2)
    )
    assert [p.cursor is not None for p in pages] == [False, True]
    assert pages[-1].gap and "stopped after 2 pages" in pages[-1].gap


def test_rejected_cursor_says_so(adapter: MastodonAdapter, mastodon: FakeMastodon) -> None:
    mastodon.server.fail("status", status=422)
    with pytest.raises(RequestRejected, match="cursor may be too old"):
        list(adapter.search(Target(mastodon.url, ("CEADAY21",)), "1", since=LONG_AGO, max_pages=2))


def test_access_token_is_sent_as_bearer(mastodon: FakeMastodon) -> None:
    adapter = MastodonAdapter(
        {"MASTODON_INSTANCES": mastodon.url, "MASTODON_ACCESS_TOKEN": "tok"}, HttpClient()
    )
    list(adapter.search(Target(mastodon.url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=1))
    assert mastodon.server.requests[-1].headers["authorization"] == "Bearer tok"


def test_backfill_resumes_from_its_position(
    adapter: MastodonAdapter, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(100)
    target = Target(mastodon.url, ("CEADAY21",))
    first = next(iter(adapter.backfill(target, since=LONG_AGO, resume=None, max_pages=10)))
    rest = list(adapter.backfill(target, since=LONG_AGO, resume=first.cursor, max_pages=10))
    ids = [p.external_id for page in [first, *rest] for p in page.posts]
    assert len(ids) == len(set(ids)) == 100


@pytest.fixture
def polled(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> tuple[Settings, list[dict[str, Any]]]:
    statuses = mastodon.add_many(30)
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    assert all(s.ok for s in poll_all(engine=engine, settings=settings))
    return settings, statuses


def test_refresh_updates_engagement_and_catches_edits_and_deletions(
    engine: Engine, polled: tuple[Settings, list[dict[str, Any]]], mastodon: FakeMastodon
) -> None:
    settings, statuses = polled
    liked, edited, deleted = statuses[0], statuses[1], statuses[2]
    with Session(engine) as session:
        approved = session.exec(select(Post).where(Post.external_id == edited["uri"])).one()
        approved.status = PostStatus.APPROVED
        session.add(approved)
        session.commit()
    liked["favourites_count"] = 12
    edited["content"] = "<p>Call me on 07700 900123 #CEADAY21</p>"
    edited["edited_at"] = datetime.now(UTC).isoformat()
    mastodon.delete(deleted["id"])

    [summary] = refresh_all(engine=engine, settings=settings)

    assert summary.ok, summary.error
    assert (summary.checked, summary.updated, summary.edited, summary.removed) == (30, 1, 1, 1)
    assert summary.requests == 2  # 30 ids, 20 per bulk call
    with Session(engine) as session:
        by_uri = {p.external_id: p for p in session.exec(select(Post))}
        assert by_uri[liked["uri"]].likes == 12
        assert by_uri[edited["uri"]].status == PostStatus.PENDING
        assert "07700" in by_uri[edited["uri"]].text
        # The number added by the edit is caught by the personal-data rule, as a new post would be.
        assert by_uri[edited["uri"]].flagged
        assert any("phone" in reason for reason in by_uri[edited["uri"]].flag_reasons or [])
        assert by_uri[deleted["uri"]].status == PostStatus.REMOVED
        actions = {e.action for e in session.exec(select(AuditEvent))}
    assert {"edited_at_source", "deleted_at_source"} <= actions


def test_refresh_falls_back_to_single_lookups_on_old_servers(
    engine: Engine, polled: tuple[Settings, list[dict[str, Any]]], mastodon: FakeMastodon
) -> None:
    settings, statuses = polled
    mastodon.server.unroute("/api/v1/statuses")
    mastodon.delete(statuses[5]["id"])
    [summary] = refresh_all(engine=engine, settings=settings)
    assert summary.ok and summary.removed == 1
    assert mastodon.server.hits("/api/v1/statuses/") == 30


def test_refresh_leaves_posts_outside_the_window_alone(
    engine: Engine,
    polled: tuple[Settings, list[dict[str, Any]]],
    configure: Callable[..., Settings],
    mastodon: FakeMastodon,
) -> None:
    _, statuses = polled
    settings = configure(
        MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21", REFRESH_WINDOW_DAYS="0"
    )
    with Session(engine) as session:
        for post in session.exec(select(Post)):
            post.created_at = datetime.now(UTC) - timedelta(days=2)
            session.add(post)
        session.commit()
    [summary] = refresh_all(engine=engine, settings=settings)
    assert summary.checked == 0 and mastodon.server.hits("/api/v1/statuses") == 0
