"""Real-world payload shapes every normaliser must read right (issue 17).

Each payload is written here from the platform's own documentation (the shape
of a Mastodon boost, a Reddit gallery GIF, a YouTube snippet...), not copied
from our fakes, so the fakes' assumptions are not what is being tested.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters import bluesky, instagram, reddit, rss, x, youtube
from adapters.base import Target
from adapters.http import HttpClient, RetryPolicy
from adapters.mastodon import normalise_status
from adapters.text import extract_hashtags
from tests.fakes.server import FakeServer, Reply

INSTANCE = "https://example.social"
NOW = datetime(2021, 3, 19, 12, tzinfo=UTC)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


# --- hashtags ----------------------------------------------------------------


def test_number_only_tags_are_not_hashtags() -> None:
    # X, Mastodon and Instagram all need a non-digit in a hashtag: "#1" is a list item.
    text = "#1 step, #2022 was long, #2022Goals and #CEADAY21 #１２"
    assert extract_hashtags(text) == ("2022goals", "ceaday21")


def test_number_only_tags_the_platform_parsed_are_not_hashtags_either() -> None:
    """Tags handed over as data (Bluesky facets and record tags, X entities, Mastodon's
    parsed tags) follow the same rule as tags found in text."""
    bluesky_view = {  # app.bsky.feed.defs#postView with a #tag facet and record tags
        "uri": "at://did:plc:abc123/app.bsky.feed.post/3kabc",
        "author": {"did": "did:plc:abc123", "handle": "someone.bsky.social"},
        "indexedAt": "2024-01-01T00:00:00.000Z",
        "record": {
            "text": "Looking back on #2022 #CEADAY21",
            "createdAt": "2024-01-01T00:00:00.000Z",
            "tags": ["1", "HelpingHands"],
            "facets": [
                {
                    "index": {"byteStart": 16, "byteEnd": 21},
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "2022"}],
                }
            ],
        },
    }
    assert bluesky.normalise_post(bluesky_view).hashtags == ("helpinghands", "ceaday21")
    tweet = {  # a v2 post whose entities list a number-only tag
        "id": "1460323737035677698",
        "text": "Top 10 of #2022 #CEADAY21",
        "created_at": "2021-11-15T19:08:05.000Z",
        "author_id": "2244994945",
        "entities": {"hashtags": [{"tag": "2022"}, {"tag": "CEADAY21"}]},
    }
    assert x.normalise_tweet(tweet, {}).hashtags == ("ceaday21",)
    status = {  # a Mastodon status whose parsed tags include a number-only one
        "id": "109000000000000700",
        "uri": "https://other.example/users/orig/statuses/7",
        "created_at": "2021-03-18T08:00:00.000Z",
        "content": "<p>Top 10 of 2022 <a href='https://other.example/tags/CEADAY21'>#CEADAY21</a></p>",
        "account": _account("orig@other.example"),
        "tags": [{"name": "2022"}, {"name": "ceaday21"}],
    }
    assert normalise_status(INSTANCE, status).hashtags == ("ceaday21",)


def test_reddit_markdown_headings_code_and_anchors_are_not_hashtags() -> None:
    selftext = (
        "#Update\n\n## Second heading\n\nJoin us for #CEADAY21 today.\n\n"
        "```\n#include <stdio.h>\n# a comment in code\n```\n\n"
        "    #indented_code_comment\n\n"
        "Read [the details](#details) and run `#inline_code`.\n\n"
        "###HelpingHands is a heading too, but #HelpingHands here is a tag."
    )
    post = reddit.normalise_post(_reddit_post(selftext=selftext, title="Our #Campaign day"))
    assert post.hashtags == ("campaign", "ceaday21", "helpinghands")


# --- YouTube -----------------------------------------------------------------


def _video(**snippet: Any) -> dict[str, Any]:
    base = {
        "publishedAt": "2021-03-18T09:00:00Z",
        "channelId": "UC1234567890123456789012",
        "channelTitle": "A channel",
        "title": "Assembly",
        "description": "",
    }
    return {"kind": "youtube#video", "id": "dQw4w9WgXcQ", "snippet": {**base, **snippet}}


def test_youtube_keyword_tags_are_not_hashtags() -> None:
    post = youtube.normalise_video(_video(tags=["CEADAY21", "HelpingHands"]))
    assert post.hashtags == ()


def test_youtube_hashtags_come_from_title_and_description() -> None:
    post = youtube.normalise_video(
        _video(title="Assembly #CEADAY21", description="More #HelpingHands", tags=["Other"])
    )
    assert post.hashtags == ("ceaday21", "helpinghands")


# --- Reddit ------------------------------------------------------------------


def _reddit_post(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "lmn0pq",
        "name": "t3_lmn0pq",
        "created_utc": 1616058000.0,
        "author": "someone",
        "title": "A post #CEADAY21",
        "selftext": "",
        "permalink": "/r/test/comments/lmn0pq/a_post/",
        "removed_by_category": None,
    }
    data.update(overrides)
    return data


def test_reddit_post_of_a_deleted_account_is_live() -> None:
    # The author deleted their account; the post itself stays up (removed_by_category null).
    data = _reddit_post(author="[deleted]", selftext="Still here #CEADAY21")
    assert not reddit.is_removed(data)
    post, reason = reddit.read_post(data)
    assert reason is None and post is not None
    assert post.author.handle == "u/[deleted]" and post.author.url is None
    assert post.hashtags == ("ceaday21",)


@pytest.mark.parametrize(
    "overrides",
    [
        {"author": "[deleted]", "selftext": "[deleted]"},
        {"author": "[deleted]", "removed_by_category": "deleted"},
        {"selftext": "[removed]", "removed_by_category": "moderator"},
    ],
)
def test_reddit_posts_really_deleted_or_removed_still_count_as_gone(
    overrides: dict[str, Any],
) -> None:
    assert reddit.is_removed(_reddit_post(**overrides))


def test_reddit_gallery_gif_gets_its_preview() -> None:
    gallery = _reddit_post(
        is_gallery=True,
        gallery_data={"items": [{"media_id": "abc123", "id": 1, "caption": "Hands"}]},
        media_metadata={
            "abc123": {
                "status": "valid",
                "e": "AnimatedImage",
                "m": "image/gif",
                "p": [
                    {
                        "y": 108,
                        "x": 108,
                        "u": "https://preview.redd.it/abc123.gif?width=108&amp;s=1",
                    },
                    {
                        "y": 216,
                        "x": 216,
                        "u": "https://preview.redd.it/abc123.gif?width=216&amp;s=2",
                    },
                ],
                "s": {
                    "y": 480,
                    "x": 480,
                    "gif": "https://i.redd.it/abc123.gif",
                    "mp4": "https://preview.redd.it/abc123.gif?format=mp4&amp;s=3",
                },
                "id": "abc123",
            }
        },
    )
    [media] = reddit.normalise_post(gallery).media
    assert media.kind == "gif" and media.url == "https://i.redd.it/abc123.gif"
    assert media.preview_url == "https://preview.redd.it/abc123.gif?width=216&s=2"


# --- Instagram ---------------------------------------------------------------


def test_instagram_requests_and_reads_video_thumbnails() -> None:
    assert "thumbnail_url" in instagram.MEDIA_FIELDS.split("children")[0]
    assert "thumbnail_url" in instagram.MEDIA_FIELDS.split("children")[1]
    item = {
        "id": "17900000000000001",
        "caption": "Film #CEADAY21",
        "media_type": "VIDEO",
        "media_url": "https://video.cdninstagram.com/v.mp4?oe=60000000",
        "thumbnail_url": "https://scontent.cdninstagram.com/t.jpg?oe=60000000",
        "permalink": "https://www.instagram.com/reel/abc/",
        "timestamp": "2021-03-18T09:00:00+0000",
    }
    [media] = instagram.normalise_media(item, now=NOW).media
    assert media.kind == "video"
    assert media.preview_url == "https://scontent.cdninstagram.com/t.jpg?oe=60000000"


def test_instagram_carousel_video_child_gets_its_thumbnail() -> None:
    item = {
        "id": "17900000000000002",
        "caption": "#CEADAY21",
        "media_type": "CAROUSEL_ALBUM",
        "permalink": "https://www.instagram.com/p/abc/",
        "timestamp": "2021-03-18T09:00:00+0000",
        "children": {
            "data": [
                {
                    "id": "1",
                    "media_type": "VIDEO",
                    "media_url": "https://video.cdninstagram.com/c.mp4",
                    "thumbnail_url": "https://scontent.cdninstagram.com/c.jpg",
                }
            ]
        },
    }
    [media] = instagram.normalise_media(item, now=NOW).media
    assert media.preview_url == "https://scontent.cdninstagram.com/c.jpg"


# --- Mastodon ----------------------------------------------------------------


def _account(acct: str) -> dict[str, Any]:
    return {"id": "1", "acct": acct, "display_name": acct, "url": f"{INSTANCE}/@{acct}"}


def test_a_boost_is_stored_as_the_original_post() -> None:
    original = {
        "id": "109000000000000500",
        "uri": "https://other.example/users/orig/statuses/5",
        "url": "https://other.example/@orig/5",
        "created_at": "2021-03-18T08:00:00.000Z",
        "content": "<p>Original words <a href='https://other.example/tags/CEADAY21'>#CEADAY21</a></p>",
        "account": _account("orig@other.example"),
        "tags": [{"name": "ceaday21", "url": "https://example.social/tags/ceaday21"}],
        "reblog": None,
    }
    boost = {
        "id": "109000000000000900",
        "uri": f"{INSTANCE}/users/booster/statuses/9/activity",
        "url": None,
        "created_at": "2021-03-18T09:00:00.000Z",
        "content": "",
        "account": _account("booster"),
        "tags": [],
        "reblog": original,
    }
    post = normalise_status(INSTANCE, boost)
    assert post.external_id == "https://other.example/users/orig/statuses/5"
    assert post.author.handle == "@orig@other.example"
    assert post.text == "Original words #CEADAY21"
    assert post.hashtags == ("ceaday21",)
    assert post.ref == f"{INSTANCE}|109000000000000500"


# --- RSS and Atom ------------------------------------------------------------


def _entry(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "title": "Our day",
        "summary": "<p>Nothing tagged in the words.</p>",
        "tags": [{"term": "CEADAY21", "scheme": None, "label": None}],
        "published_parsed": time.struct_time((2021, 3, 18, 9, 0, 0, 3, 77, 0)),
    }
    entry.update(fields)
    return entry


def test_blog_categories_are_not_hashtags() -> None:
    entry = _entry(id="https://blog.example/p/1", link="https://blog.example/p/1")
    post, reason = rss.read_entry("https://blog.example/feed", {}, entry)
    assert reason is None and post is not None
    assert post.hashtags == ()


def test_categories_are_hashtags_in_a_hashtag_feed_or_by_setting() -> None:
    entry = _entry(id="https://blog.example/p/1", link="https://blog.example/p/1")
    post, _ = rss.read_entry("https://blog.example/feed", {}, entry, categories_are_hashtags=True)
    assert post is not None and post.hashtags == ("ceaday21",)
    assert rss.is_hashtag_feed("https://mastodon.social/tags/CEADAY21.rss")
    assert rss.is_hashtag_feed("https://mastodon.social/tags/ceaday21")
    assert not rss.is_hashtag_feed("https://blog.example/tags/ceaday21/feed.xml")
    assert not rss.is_hashtag_feed("https://blog.example/feed")


def test_the_admin_setting_makes_a_feeds_categories_count() -> None:
    adapter = rss.RssAdapter(
        {
            "RSS_FEEDS": "https://blog.example/feed,https://mastodon.social/tags/x.rss,https://b.example/rss",
            "RSS_CATEGORY_HASHTAG_FEEDS": "https://b.example/rss",
        },
        HttpClient(),
    )
    assert [adapter.categories_are_hashtags(feed) for feed in adapter.feeds] == [False, True, True]


def test_an_item_with_neither_guid_nor_link_gets_a_stable_content_id() -> None:
    entry = _entry(title="No id #CEADAY21")
    first, reason = rss.read_entry("https://blog.example/feed", {}, entry)
    again, _ = rss.read_entry("https://blog.example/feed", {}, dict(entry))
    other, _ = rss.read_entry("https://blog.example/feed", {}, _entry(title="Another #CEADAY21"))
    assert reason is None and first is not None and again is not None and other is not None
    assert first.external_id == again.external_id != other.external_id
    assert first.external_id.startswith("sha256:")


def test_an_item_with_no_date_takes_the_first_seen_time_marked_as_such() -> None:
    entry = _entry(id="https://blog.example/p/2", title="Undated #CEADAY21")
    del entry["published_parsed"]
    post, reason = rss.read_entry("https://blog.example/feed", {}, entry, now=NOW)
    assert reason is None and post is not None
    assert post.created_at == NOW and post.created_at_is_first_seen
    dated, _ = rss.read_entry("https://blog.example/feed", {}, _entry(id="x:1"), now=NOW)
    assert dated is not None and not dated.created_at_is_first_seen


RUSSIAN = "Помогающие руки: кампания продолжается по всей стране, присоединяйтесь"


@pytest.mark.parametrize("encoding", ["koi8-r", "cp1251"])
def test_an_undeclared_legacy_encoding_is_detected(fake_server: FakeServer, encoding: str) -> None:
    items = "".join(
        f"<item><guid>https://news.example/{n}</guid><title>{RUSSIAN} {n} #CEADAY21</title>"
        f"<description>{RUSSIAN}. {RUSSIAN}.</description>"
        "<pubDate>Thu, 18 Mar 2021 09:00:00 GMT</pubDate></item>"
        for n in range(3)
    )
    document = (
        '<?xml version="1.0"?><rss version="2.0"><channel>'
        f"<title>Новости</title>{items}</channel></rss>"
    )
    fake_server.route(
        "GET",
        "/legacy.xml",
        lambda _r: Reply(200, document.encode(encoding), {"Content-Type": "application/rss+xml"}),
    )
    url = fake_server.url + "/legacy.xml"
    adapter = rss.RssAdapter(
        {"RSS_FEEDS": url, "OUTBOUND_ALLOW_PRIVATE": "true"},
        HttpClient(RetryPolicy(timeout=1, attempts=1)),
    )
    [page] = adapter.search(Target(url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=1)
    assert len(page.posts) == 3
    assert page.posts[0].text.startswith(RUSSIAN)


def test_a_declared_encoding_is_left_to_the_declaration(fake_server: FakeServer) -> None:
    document = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>x</title>'
        "<item><guid>https://n.example/1</guid><title>Caf\xe9 #CEADAY21</title>"
        "<pubDate>Thu, 18 Mar 2021 09:00:00 GMT</pubDate></item></channel></rss>"
    )
    fake_server.route("GET", "/latin.xml", lambda _r: Reply(200, document.encode("latin-1"), {}))
    url = fake_server.url + "/latin.xml"
    adapter = rss.RssAdapter(
        {"RSS_FEEDS": url, "OUTBOUND_ALLOW_PRIVATE": "true"},
        HttpClient(RetryPolicy(timeout=1, attempts=1)),
    )
    [page] = adapter.search(Target(url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=1)
    assert [p.text for p in page.posts] == ["Café #CEADAY21"]
