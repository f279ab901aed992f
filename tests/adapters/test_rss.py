"""The RSS/Atom adapter against a local news site, directly and through polling."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters import rss as rss_module
from adapters.base import (
    AuthFailed,
    ConfigError,
    MalformedResponse,
    Page,
    RefreshResult,
    RequestRejected,
    Target,
)
from adapters.http import HttpClient, RetryPolicy
from adapters.rss import RssAdapter, read_entry
from monitor.config import Settings
from monitor.models import Post, Source
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from tests.fakes.rss import FEED_PATH, FakeFeed, fixture_bytes
from tests.fakes.server import FakeServer, Reply

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
TAGS = ("CEADAY21", "HelpingHands")
#: The fake feeds listen on 127.0.0.1, which the private-address guard refuses by default.
LOCAL = {"OUTBOUND_ALLOW_PRIVATE": "true"}


@pytest.fixture
def feed(fake_server: FakeServer) -> FakeFeed:
    return FakeFeed(fake_server)


@pytest.fixture
def http() -> Iterator[HttpClient]:
    client = HttpClient(RetryPolicy(timeout=1, attempts=3, backoff=0.01, max_retry_after=2))
    yield client
    client.close()


@pytest.fixture
def adapter(feed: FakeFeed, http: HttpClient) -> RssAdapter:
    return RssAdapter({**LOCAL, "RSS_FEEDS": feed.url}, http)


def _target(url: str) -> Target:
    return Target(url, TAGS)


def _search(adapter: RssAdapter, url: str, cursor: str | None = None, **kwargs: Any) -> Page:
    options = {"since": LONG_AGO, "max_pages": 50, **kwargs}
    [page] = adapter.search(_target(url), cursor, **options)
    return page


def _titles(page: Page) -> list[str]:
    return [post.text.split("\n")[0] for post in page.posts]


def _stored(engine: Engine) -> list[Post]:
    with Session(engine) as session:
        return list(session.exec(select(Post).where(Post.platform == "rss")))


def _sources(engine: Engine) -> dict[str, Source]:
    with Session(engine) as session:
        return {s.scope: s for s in session.exec(select(Source).where(Source.platform == "rss"))}


# --- the pipeline --------------------------------------------------------------


def test_poll_stores_matching_items_then_asks_conditionally(
    engine: Engine, feed: FakeFeed, configure: Callable[..., Settings]
) -> None:
    feed.add("Officers visit schools for #CEADAY21")
    feed.add("Category only", "<p>Nothing in the text.</p>", categories=["HelpingHands"])
    feed.add("Road closure", "<p>Diversions are in place.</p>")
    feed.add("Look-alike #CEADAY21X and #NotHelpingHands")
    settings = configure(
        OUTBOUND_ALLOW_PRIVATE="true",
        PLATFORMS="rss",
        RSS_FEEDS=feed.url,
        # The admin says this feed's categories are hashtags ("Category only" counts).
        RSS_CATEGORY_HASHTAG_FEEDS=feed.url,
        HASHTAGS="CEADAY21,HelpingHands",
    )

    [first] = poll_all(engine=engine, settings=settings)

    assert first.ok and first.new == 2, first
    assert {p.text.split("\n")[0] for p in _stored(engine)} == {
        "Officers visit schools for #CEADAY21",
        "Category only",
    }
    before = feed.server.hits()
    [idle] = poll_all(engine=engine, settings=settings)
    assert idle.ok and idle.fetched == 0 and idle.requests == 1
    assert feed.server.hits() - before == 1
    assert feed.server.requests[-1].headers.get("if-none-match")

    feed.add("Assembly photos #HelpingHands")
    [later] = poll_all(engine=engine, settings=settings)
    assert later.new == 1 and later.fetched == 1


def test_rss_is_on_by_default_only_with_feeds(configure: Callable[..., Settings]) -> None:
    assert "rss" not in configure().enabled_platforms
    assert "rss" in configure(RSS_FEEDS="https://example.org/feed").enabled_platforms
    assert RssAdapter.is_configured({**LOCAL, "RSS_FEEDS": " , "}) is False


def test_a_page_that_is_not_a_feed_fails_that_feed_only(
    sqlite_engine: Engine, feed: FakeFeed, configure: Callable[..., Settings]
) -> None:
    feed.add()
    page_url = f"{feed.server.url}/news"
    settings = configure(
        OUTBOUND_ALLOW_PRIVATE="true", PLATFORMS="rss", RSS_FEEDS=f"{feed.url},{page_url}"
    )

    summaries = {s.source: s for s in poll_all(engine=sqlite_engine, settings=settings)}

    broken = next(s for key, s in summaries.items() if key.startswith(f"rss:{page_url}|"))
    working = next(s for key, s in summaries.items() if key.startswith(f"rss:{feed.url}|"))
    assert working.ok and working.new == 1
    assert not broken.ok and "HTML page, not a feed" in (broken.error or "")
    assert "HTML page" in (_sources(sqlite_engine)[page_url].last_error or "")


# --- fetching ----------------------------------------------------------------------


def test_server_ignoring_conditional_get_still_yields_only_new_or_edited(
    adapter: RssAdapter, feed: FakeFeed
) -> None:
    feed.conditional = False
    first_item = feed.add("First #CEADAY21")
    feed.add("Second #CEADAY21")
    cursor = _search(adapter, feed.url).cursor

    feed.add("Third #CEADAY21")
    feed.edit(first_item, description="<p>Corrected text.</p>")
    page = _search(adapter, feed.url, cursor)

    assert sorted(_titles(page)) == ["First #CEADAY21", "Third #CEADAY21"]
    assert _search(adapter, feed.url, page.cursor).posts == ()


def test_304_keeps_the_cursor(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.add()
    cursor = _search(adapter, feed.url).cursor
    page = _search(adapter, feed.url, cursor)
    assert page.posts == () and page.cursor is None


def test_last_modified_alone_is_used(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.add()
    cursor = json.loads(_search(adapter, feed.url).cursor or "")
    cursor["etag"] = None
    page = _search(adapter, feed.url, json.dumps(cursor))
    assert feed.server.requests[-1].headers.get("if-modified-since") == cursor["modified"]
    assert page.cursor is None


def test_first_poll_skips_items_older_than_the_look_back(
    adapter: RssAdapter, feed: FakeFeed
) -> None:
    feed.add("Old #CEADAY21", published=datetime.now(UTC) - timedelta(days=30))
    feed.add("Recent #CEADAY21", published=datetime.now(UTC) - timedelta(hours=1))
    page = _search(adapter, feed.url, since=datetime.now(UTC) - timedelta(hours=72))
    assert _titles(page) == ["Recent #CEADAY21"]

    feed.conditional = False
    assert _search(adapter, feed.url, page.cursor).posts == ()  # the old one counts as seen


def test_redirect_is_followed(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.add()
    page = _search(adapter, f"{feed.server.url}/old-feed")
    assert len(page.posts) == 1


@pytest.mark.parametrize("location", ["", "ftp://example.org/feed", "/bad-redirect"])
def test_unusable_redirects_are_malformed(
    adapter: RssAdapter, feed: FakeFeed, location: str
) -> None:
    headers = {"Location": location} if location else {}
    feed.server.route("GET", "/bad-redirect", lambda request: Reply(301, b"", headers))
    with pytest.raises(MalformedResponse, match="redirects to an unusable address"):
        _search(adapter, f"{feed.server.url}/bad-redirect")


def test_endless_redirects_are_refused(adapter: RssAdapter, feed: FakeFeed) -> None:
    hops = iter(range(100))
    feed.server.route(
        "GET", "/hop", lambda request: Reply(302, b"", {"Location": f"/hop?n={next(hops)}"})
    )
    with pytest.raises(RequestRejected, match="redirects more than 5 times"):
        _search(adapter, f"{feed.server.url}/hop")


def test_429_and_403_and_404_are_clear(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.server.fail("status", status=403, path=FEED_PATH)
    with pytest.raises(AuthFailed, match="public feeds"):
        _search(adapter, feed.url)
    with pytest.raises(RequestRejected, match="HTTP 404"):
        _search(adapter, f"{feed.server.url}/missing.xml")


@pytest.mark.parametrize(
    ("fault", "message"),
    [("truncate", "ends early"), ("garbage", "not a feed|no RSS or Atom")],
)
def test_truncated_or_garbage_feed_is_malformed(
    adapter: RssAdapter, feed: FakeFeed, fault: str, message: str
) -> None:
    for i in range(5):
        feed.add(f"Item {i} #CEADAY21")
    feed.server.fail(fault, path=FEED_PATH)
    with pytest.raises(MalformedResponse, match=message):
        _search(adapter, feed.url)


def test_json_instead_of_a_feed_is_malformed(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.server.route("GET", "/api.json", lambda request: Reply.json({"items": []}))
    with pytest.raises(MalformedResponse, match="no RSS or Atom document"):
        _search(adapter, f"{feed.server.url}/api.json")


def test_unreadable_cursor_fetches_the_whole_feed(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.add()
    for garbage in ("nonsense", "[1]", '{"v": 1, "etag": "\\u00e9t\\n", "seen": 5}'):
        page = _search(adapter, feed.url, garbage)
        assert len(page.posts) == 1
    assert "\n" not in (feed.server.requests[-1].headers.get("if-none-match") or "")


def test_cursor_fits_the_column_for_a_big_feed(adapter: RssAdapter, feed: FakeFeed) -> None:
    for i in range(120):
        feed.add(f"Item {i} #CEADAY21")
    page = _search(adapter, feed.url)
    assert len(page.posts) == 120
    assert page.cursor is not None and len(page.cursor) <= 600
    feed.conditional = False
    again = _search(adapter, feed.url, page.cursor)
    # Digests trimmed to fit are of the oldest items: only they come again (and are upserted).
    assert 0 < len(again.posts) < 120
    assert "Item 119 #CEADAY21" not in _titles(again)


# --- items -------------------------------------------------------------------------


def test_rss_fixture_item_is_normalised(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.server.route(
        "GET",
        "/fixture.xml",
        lambda request: Reply(
            200, fixture_bytes("rss2.xml"), {"Content-Type": "application/rss+xml"}
        ),
    )
    page = _search(adapter, f"{feed.server.url}/fixture.xml")

    [post] = page.posts
    assert post.external_id == "https://www.example-police.uk/news/2021/03/ceaday21-schools"
    assert post.created_at == datetime(2021, 3, 18, 9, 0, tzinfo=UTC)
    # A news site's categories are its filing, not hashtags: only the text's count.
    assert post.hashtags == ("ceaday21", "helpinghands")
    assert "<script" not in post.html and "alert" not in post.text
    assert "<strong>criminal exploitation</strong>" in post.html
    assert post.author.name == "Press Office"
    assert post.author.handle == "www.example-police.uk"
    assert [(m.kind, m.url.rsplit("/", 1)[1]) for m in post.media] == [
        ("image", "ceaday21-assembly.jpg"),
        ("video", "ceaday21-video.mp4"),
    ]
    assert post.media[1].preview_url and post.media[1].preview_url.endswith("video-thumb.jpg")
    assert (post.media[1].width, post.media[1].height) == (1280, 720)
    assert post.engagement.likes is None and post.engagement.views is None


def test_atom_fixture_uses_updated_and_dates_undated_by_first_sight(
    adapter: RssAdapter, feed: FakeFeed
) -> None:
    before = datetime.now(UTC)
    page = _search(adapter, f"{feed.server.url}/blog/atom.xml")

    by_id = {post.external_id: post for post in page.posts}
    partners = by_id["tag:vrn.example.org,2021-03-18:/blog/helping-hands"]
    assert partners.created_at == datetime(2021, 3, 18, 11, 30, tzinfo=UTC)
    assert partners.text.startswith("Partners say #HelpingHands")  # an HTML title, as text
    assert "onerror" not in partners.html
    assert partners.url == f"{feed.server.url}/blog/2021/helping-hands"
    assert [m.kind for m in partners.media] == ["image"]
    plan = by_id["tag:vrn.example.org,2021-03-17:/blog/plan"]
    assert plan.edited_at == datetime(2021, 3, 18, 9, 30, tzinfo=UTC)
    undated = by_id["tag:vrn.example.org,2021:/blog/undated"]
    assert undated.created_at_is_first_seen and undated.created_at >= before
    assert not plan.created_at_is_first_seen
    assert page.skipped == ()


def test_ids_from_guid_or_a_hash_of_the_link(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.add("Permalink guid #CEADAY21", guid="https://example.org/a")
    feed.add("Bare guid #CEADAY21", guid="4711")
    no_guid = feed.add("No guid #CEADAY21", guid=None)
    feed.add("Nothing at all #CEADAY21", guid=None, link=None)
    feed.add("Nothing either #CEADAY21", guid=None, link=None)
    feed.add("Duplicate #CEADAY21", guid="https://example.org/a")

    page = _search(adapter, feed.url)

    ids = {post.text.split("\n")[0]: post.external_id for post in page.posts}
    # The newest of two items sharing a guid is kept (feeds list newest first).
    assert ids["Duplicate #CEADAY21"] == "https://example.org/a"
    assert ids["Bare guid #CEADAY21"] == f"{feed.url}#4711"
    expected = "sha256:" + hashlib.sha256(no_guid["link"].encode()).hexdigest()
    assert ids["No guid #CEADAY21"] == expected
    # Neither guid nor link: named by a digest of feed and content, one per item.
    assert ids["Nothing at all #CEADAY21"].startswith("sha256:")
    assert ids["Nothing at all #CEADAY21"] != ids["Nothing either #CEADAY21"]
    [again] = [p for p in _search(adapter, feed.url).posts if p.text.startswith("Nothing at")]
    assert again.external_id == ids["Nothing at all #CEADAY21"]
    assert "Permalink guid #CEADAY21" not in ids
    assert any("repeated in the feed" in reason for reason in page.skipped)


def test_html_and_scripts_in_items_are_sanitised(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.add(
        "<script>alert(1)</script> Title #CEADAY21",
        '<p onclick="x()">Hi <a href="javascript:alert(1)">link</a>'
        '<iframe src="https://evil.example"></iframe><img src=x onerror=alert(1)></p>',
    )
    [post] = _search(adapter, feed.url).posts
    for bad in ("onclick", "javascript:", "<iframe", "onerror", "<script"):
        assert bad not in post.html
    assert "&lt;script&gt;" in post.html  # the title is text, escaped when shown


@pytest.mark.parametrize(
    ("configured", "title"),
    [
        ("CEADAY21", "Party #CEADAY21🎉🎉"),
        ("مساعدة", "نص عربي #مساعدة من اليمين"),
        ("Café", "Combining accent #Cafe\u0301 here"),
        ("HelpingHands", "Fullwidth ＃ＨｅｌｐｉｎｇＨａｎｄｓ too"),
    ],
)
def test_unicode_hashtags_match(
    adapter: RssAdapter, feed: FakeFeed, configured: str, title: str
) -> None:
    feed.add(title, "<p>text</p>")
    [page] = adapter.search(Target(feed.url, (configured,)), None, since=LONG_AGO, max_pages=1)
    assert len(page.posts) == 1


def test_media_rated_adult_is_sensitive() -> None:
    entry = {
        **_GOOD,
        "media_rating": {"scheme": "urn:simple", "content": "adult"},
        "media_content": [{"url": "https://example.org/a.gif", "type": "image/gif"}],
    }
    post, _ = read_entry("https://example.org/feed", {}, entry)
    assert post is not None and post.sensitive
    assert [(m.kind, m.sensitive) for m in post.media] == [("gif", True)]


def test_refresh_learns_nothing_by_design(adapter: RssAdapter) -> None:
    assert adapter.refresh(["https://example.org/a"]) == RefreshResult()


def test_backfill_says_how_far_a_feed_reaches(adapter: RssAdapter, feed: FakeFeed) -> None:
    feed.add("Old #CEADAY21", published=datetime(2024, 1, 1, tzinfo=UTC))
    feed.add("New #CEADAY21", published=datetime(2024, 6, 1, tzinfo=UTC))
    target = _target(feed.url)

    [page] = adapter.backfill(
        target, since=datetime(2023, 1, 1, tzinfo=UTC), resume=None, max_pages=9
    )
    assert len(page.posts) == 2
    assert "2024-01-01" in (page.gap or "") and "most recent items" in (page.gap or "")

    [page] = adapter.backfill(
        target, since=datetime(2024, 3, 1, tzinfo=UTC), resume=None, max_pages=9
    )
    assert _titles(page) == ["New #CEADAY21"] and page.gap is None


# --- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["", " , ", "ftp://example.org/feed", "example.org/feed", "https://", "https://exämple.org/f"],
)
def test_bad_feed_lists_name_the_key(http: HttpClient, value: str) -> None:
    with pytest.raises(ConfigError, match="RSS_FEEDS"):
        RssAdapter({**LOCAL, "RSS_FEEDS": value}, http)


def test_one_target_per_feed_with_every_hashtag(http: HttpClient) -> None:
    adapter = RssAdapter(
        {
            **LOCAL,
            "RSS_FEEDS": "https://a.example/feed, https://b.example/rss,https://a.example/feed",
        },
        http,
    )
    assert adapter.targets(["CEADAY21", "HelpingHands"]) == [
        Target("https://a.example/feed", ("CEADAY21", "HelpingHands")),
        Target("https://b.example/rss", ("CEADAY21", "HelpingHands")),
    ]


# --- property --------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = [
    "id", "title", "title_detail", "link", "summary", "summary_detail", "content", "tags",
    "author", "published_parsed", "updated_parsed", "enclosures", "links", "media_content",
    "media_thumbnail", "media_rating",
]  # fmt: skip
_GOOD = {
    "id": "https://example.org/a",
    "title": "Hello #CEADAY21",
    "summary": "<p>Body</p>",
    "published_parsed": time.gmtime(1616058000),
}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=10), _JSON)
def test_any_json_in_any_field_gives_a_post_or_a_reason(
    overrides: dict[str, Any], feed: Any
) -> None:
    post, reason = read_entry(
        "https://example.org/feed", feed if isinstance(feed, dict) else {}, {**_GOOD, **overrides}
    )
    assert (post is None) != (reason is None)
    if post is not None:
        assert post.created_at.tzinfo is not None
        assert all(m.url.startswith(("http://", "https://")) for m in post.media)


_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
    + "".join(
        f'<!ENTITY a{i} "' + (f"&a{i - 1};" if i > 1 else "&a;") * 10 + '">' for i in range(1, 10)
    )
    + ']><rss version="2.0"><channel><title>x</title><item><title>&a9; #CEADAY21</title>'
    "<guid>https://example.org/bomb</guid><pubDate>Thu, 18 Mar 2021 09:00:00 GMT</pubDate>"
    "</item></channel></rss>"
)
_XXE = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<rss version="2.0"><channel><title>x</title><item><title>&x; #CEADAY21</title>'
    "<guid>https://example.org/xxe</guid><pubDate>Thu, 18 Mar 2021 09:00:00 GMT</pubDate>"
    "</item></channel></rss>"
)


@pytest.mark.parametrize("document", [_BOMB, _XXE], ids=["entity-bomb", "external-entity"])
def test_hostile_xml_is_not_expanded(adapter: RssAdapter, feed: FakeFeed, document: str) -> None:
    feed.server.route(
        "GET",
        "/hostile.xml",
        lambda request: Reply(200, document.encode(), {"Content-Type": "application/rss+xml"}),
    )
    page = _search(adapter, f"{feed.server.url}/hostile.xml")
    assert all(len(post.text) < 200 and "root:" not in post.text for post in page.posts)


_FRAGMENTS = [
    '<?xml version="1.0"?>',
    '<rss version="2.0">',
    "<feed xmlns='http://www.w3.org/2005/Atom'>",
    "<channel>",
    "<item>",
    "<entry>",
    "<title>#CEADAY21 &amp; more</title>",
    "<title type='html'>&lt;b&gt;#HelpingHands&lt;/b&gt;</title>",
    "<pubDate>Thu, 18 Mar 2021 09:00:00 GMT</pubDate>",
    "<pubDate>not a date</pubDate>",
    "<updated>2021-03-18T09:00:00Z</updated>",
    "<guid>1</guid>",
    "<id>https://example.org/x</id>",
    "<link>javascript:alert(1)</link>",
    "<description><![CDATA[<script>x</script>#CEADAY21]]></description>",
    "<enclosure url='data:image/png;base64,AAAA' type='image/png'/>",
    "<category>CEADAY21</category>",
    "</item>",
    "</entry>",
    "</channel>",
    "</rss>",
    "&undefined;",
    "\x00",
    "<",
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=25)
    | st.binary(max_size=300).map(lambda b: [b.decode("latin-1")])
)
def test_any_document_gives_items_or_a_malformed_error(parts: list[str]) -> None:
    url = "https://example.org/feed"
    response = httpx.Response(
        200,
        content="".join(parts).encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/xml"},
        request=httpx.Request("GET", url),
    )
    try:
        parsed = rss_module._parse(url, url, response)
    except MalformedResponse as exc:
        assert str(exc).startswith(f"rss: {url} ")
        return
    skipped: list[str] = []
    posts = list(rss_module.matching_items(Target(url, TAGS), parsed, skipped))
    assert all(post.created_at.tzinfo is not None for post in posts)
    assert all(reason.startswith("item ") for reason in skipped)


def test_refresh_through_the_pipeline_removes_nothing_that_rolled_off(
    sqlite_engine: Engine, feed: FakeFeed, configure: Callable[..., Settings]
) -> None:
    item = feed.add()
    settings = configure(OUTBOUND_ALLOW_PRIVATE="true", PLATFORMS="rss", RSS_FEEDS=feed.url)
    poll_all(engine=sqlite_engine, settings=settings)
    feed.drop(item)

    [summary] = refresh_all(engine=sqlite_engine, settings=settings)

    assert summary.ok and summary.removed == 0 and summary.requests == 0
    assert [post.status for post in _stored(sqlite_engine)] == ["pending"]
