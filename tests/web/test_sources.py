"""``/admin/sources``: credentials present and accepted, last success and error, docs links."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from adapters.base import Target
from monitor.config import Settings
from monitor.db import session_scope
from monitor.services.platform_health import doc_sections, docs_path
from monitor.services.polling import poll_all
from monitor.services.sources import ensure_source, record_disabled
from monitor.web.app import create_app
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import Reply
from tests.web.auth_helpers import (
    TestClient,
    app_client,
    login,
    make_user,
)

NOW = datetime(2026, 3, 18, 9, 30, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> 401 Unauthorized'


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    make_user(sqlite_engine, "ad", "admin")
    make_user(sqlite_engine, "mo", "moderator")
    return sqlite_engine


@pytest.fixture
def client(engine: Engine, configure: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = configure(PLATFORMS="mastodon,x,bluesky", X_BEARER_TOKEN="token")
    with session_scope(engine) as session:
        healthy = ensure_source(
            session, "mastodon", Target("https://social.example", ("CEADAY21",))
        )
        healthy.last_poll_at = healthy.last_success_at = NOW
        refused = ensure_source(session, "x", Target("", ("CEADAY21",)))
        refused.last_poll_at = refused.last_error_at = refused.failing_since = NOW
        refused.last_error, refused.failures_in_row = HOSTILE, 3
        record_disabled(session, "bluesky", "bluesky: missing BLUESKY_HANDLE", NOW)
    with app_client(create_app(settings, engine=engine)) as client:
        yield client


def _row(page: str, name: str) -> str:
    start = page.index(f'id="platform-{name}"')
    return page[start : page.index("</tr>", start)]


def test_only_admins_see_the_sources(client: TestClient) -> None:
    assert client.get("/admin/sources", follow_redirects=False).status_code == 401
    login(client, "mo")
    assert client.get("/admin/sources").status_code == 403
    assert client.get("/admin/sources/docs/x").status_code == 403


def test_each_platform_says_credentials_acceptance_success_and_error(client: TestClient) -> None:
    login(client, "ad")
    page = client.get("/admin/sources")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    mastodon, x, bluesky = (_row(page.text, n) for n in ("mastodon", "x", "bluesky"))
    assert "not needed" in mastodon and "accepted" in mastodon and "18 Mar 2026" in mastodon
    assert "present" in x and "refused or failing" in x
    assert "missing: BLUESKY_HANDLE, BLUESKY_APP_PASSWORD" in bluesky
    assert "refused or failing" in bluesky
    assert "App passwords" in bluesky  # the docs' credentials hint, where it is needed
    assert 'href="/admin/sources/docs/bluesky"' in bluesky
    youtube = _row(page.text, "youtube")
    assert "<td>no</td>" in youtube and "not polled" in youtube
    # An error text from a platform is shown, never run.
    assert "<script>alert" not in page.text
    assert html.escape(HOSTILE, quote=False) in page.text.replace("&#34;", '"')


def test_docs_link_shows_that_platforms_section(client: TestClient) -> None:
    login(client, "ad")
    page = client.get("/admin/sources/docs/bluesky")
    assert page.status_code == 200
    assert "<h1>Bluesky</h1>" in page.text and "Getting credentials" in page.text
    assert "app.bsky.feed.searchPosts" in page.text
    assert client.get("/admin/sources/docs/myspace").status_code == 404
    assert client.get("/admin/sources/docs/" + "x" * 5000).status_code == 404


def test_every_builtin_platform_has_a_docs_section_with_credentials() -> None:
    sections = doc_sections()
    assert docs_path().name == "platforms.md"
    for name in ("bluesky", "demo", "instagram", "mastodon", "reddit", "rss", "x", "youtube"):
        assert name in sections, name
    assert all(sections[n].credentials for n in ("bluesky", "x", "instagram", "youtube", "reddit"))


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("mastodon:https://mastodon.social|CEADAY21", "Mastodon: mastodon.social, #CEADAY21"),
        ("bluesky:|CEADAY21", "Bluesky: #CEADAY21"),
        ("mastodon:*|", "Mastodon: all"),
        (
            "rss:https://www.force.example.org/feed.xml|A,B",
            "RSS feed: www.force.example.org, #A, #B",
        ),
        ("youtube:|CEADAY21", "YouTube: #CEADAY21"),
    ],
)
def test_sources_are_named_as_people_say_them(key: str, label: str) -> None:
    from monitor.services.sources import source_label

    assert source_label(key) == label


def test_each_watched_source_shows_its_health_in_the_shared_words(client: TestClient) -> None:
    """The per-source table words health as status and the digest do, and escapes the error."""
    login(client, "ad")
    page = client.get("/admin/sources").text
    watched = page[page.index('id="watched-x"') :]
    start = watched.index("<tr>", watched.index("<tbody>"))
    row = watched[start : watched.index("</tr>", start)]
    assert "<strong>Failing since 2026-03-18 09:30" in row
    assert "(last error: &lt;script&gt;alert(" in row and "<script>" not in row
    mastodon = page[page.index('id="watched-mastodon"') :]
    assert "<td>OK</td>" in mastodon[: mastodon.index("</table>")]


def test_each_watched_source_says_how_its_posts_arrive_and_why(
    client: TestClient, engine: Engine
) -> None:
    """Streaming, catching up or polling, how far behind, and the reason (escaped)."""
    with session_scope(engine) as session:
        source = ensure_source(session, "mastodon", Target("https://social.example", ("CEADAY21",)))
        source.mode = "polling"
        source.mode_note = (
            "no MASTODON_ACCESS_TOKEN (<b>needs a user token</b>): polling every 300 s"
        )
    login(client, "ad")
    page = client.get("/admin/sources").text
    mastodon = page[page.index('id="watched-mastodon"') :]
    row = mastodon[: mastodon.index("</table>")]
    assert "Polling, " in row and " behind" in row
    assert "no MASTODON_ACCESS_TOKEN (&lt;b&gt;needs a user token&lt;/b&gt;)" in row


def test_a_mastodon_server_closed_to_anonymous_readers_says_to_set_a_token(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    """Mastodon 4.5 may answer 401 to an unauthenticated hashtag timeline: say what to set."""
    refusal = Reply.json({"error": "This method requires an authenticated user"}, status=401)
    mastodon.server.route("GET", r"/api/v1/timelines/tag/.*", lambda _r: refusal, first=True)
    settings = configure(PLATFORMS="mastodon", MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    [summary] = poll_all(engine=engine, settings=settings)
    assert not summary.ok
    with app_client(create_app(settings, engine=engine)) as client:
        login(client, "ad")
        page = client.get("/admin/sources").text
    watched = page[page.index('id="watched-mastodon"') :]
    table = watched[: watched.index("</table>")]
    assert "requires an access token for hashtag timelines; set MASTODON_ACCESS_TOKEN" in table
