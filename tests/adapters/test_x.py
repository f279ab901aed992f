"""The X adapter against a local server speaking the documented API v2."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import ConfigError, MalformedResponse, Target, UnreadableRecord
from adapters.http import HttpClient, RetryPolicy
from adapters.x import XAdapter, normalise_tweet, snowflake_time
from monitor.config import Settings
from monitor.models import MediaItem, Post, PostHashtag, PostStatus, Source
from monitor.services.backfill import backfill_target
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from tests.fakes.bluesky import APP_PASSWORD, HANDLE, FakeBluesky
from tests.fakes.server import FOREVER, FakeServer, Reply
from tests.fakes.x import TOKEN, FakeX, fixture, snowflake

SEARCH = "/2/tweets/search/recent"
TARGET = Target("", ("CEADAY21",))


@pytest.fixture
def x(fake_server: FakeServer) -> FakeX:
    return FakeX(fake_server)


@pytest.fixture
def settings_for(configure: Callable[..., Settings], x: FakeX) -> Callable[..., Settings]:
    def build(**env: str) -> Settings:
        values = {
            "PLATFORMS": "x",
            "X_API_BASE": x.url,
            "X_BEARER_TOKEN": TOKEN,
            "HASHTAGS": "CEADAY21",
        }
        return configure(**{**values, **env})

    return build


@pytest.fixture
def adapter(x: FakeX) -> Iterator[XAdapter]:
    config = {"X_API_BASE": x.url, "X_BEARER_TOKEN": TOKEN}
    with HttpClient(RetryPolicy(timeout=1, attempts=2, backoff=0.001)) as http:
        yield XAdapter(config, http)


def _posts(engine: Engine) -> list[Post]:
    with Session(engine) as session:
        return list(session.exec(select(Post).order_by(Post.created_at)))


def _source(engine: Engine, tag: str = "CEADAY21") -> Source:
    with Session(engine) as session:
        return session.exec(select(Source).where(Source.key == f"x:|{tag}")).one()


def _example() -> tuple[dict[str, Any], dict[str, Any]]:
    body = fixture("search_recent.json")
    return body["data"][0], body["includes"]


# --- normalising ------------------------------------------------------------------


def test_normalise_maps_the_documented_post() -> None:
    tweet, includes = _example()
    post = normalise_tweet(tweet, includes)

    assert post.external_id == "1860000000000000000" == post.ref
    assert post.url == "https://x.com/XDevelopers/status/1860000000000000000"
    assert post.author.handle == "@XDevelopers" and post.author.name == "Developers"
    assert post.text.startswith("Our hands say it together & loud #CEADAY21")
    assert "&amp; loud" in post.html
    assert post.created_at == datetime(2024, 11, 22, 17, 0, 21, tzinfo=UTC)
    assert post.hashtags == ("ceaday21",)
    assert post.engagement.likes == 208 and post.engagement.shares == 41
    assert post.engagement.replies == 12 and post.engagement.quotes == 3
    assert post.engagement.views == 10231
    [photo] = post.media
    assert photo.alt == "Two hands painted with the campaign logo" and photo.kind == "image"
    assert (photo.width, photo.height, photo.key) == (1920, 1080, "3_1860000000000000001")
    assert post.edited_at is None and not post.sensitive


def test_an_edited_version_keeps_the_chain_s_first_id_and_creation_time() -> None:
    tweet, includes = _example()
    first = snowflake(datetime(2024, 11, 22, 17, 0, tzinfo=UTC), 1)
    tweet.update(id="1860000000000000999", edit_history_tweet_ids=[first, "1860000000000000999"])

    post = normalise_tweet(tweet, includes)

    assert post.external_id == first and post.ref == "1860000000000000999"
    assert post.created_at == datetime(2024, 11, 22, 17, 0, tzinfo=UTC)
    assert post.edited_at == datetime(2024, 11, 22, 17, 0, 21, tzinfo=UTC)


def test_long_posts_videos_and_sensitive_media() -> None:
    tweet, includes = _example()
    tweet.update(
        possibly_sensitive=True,
        note_tweet={"text": "A long post " * 40 + "#HelpingHands", "entities": {}},
        attachments={"media_keys": ["7_1", "missing", 5]},
    )
    includes["media"] = [
        {
            "media_key": "7_1",
            "type": "video",
            "preview_image_url": "https://pbs.twimg.com/v.jpg",
            "alt_text": "A march",
            "variants": [
                {"content_type": "application/x-mpegURL", "url": "https://video.twimg.com/v.m3u8"},
                {
                    "bit_rate": 256000,
                    "content_type": "video/mp4",
                    "url": "https://video.twimg.com/lo.mp4",
                },
                {
                    "bit_rate": 2176000,
                    "content_type": "video/mp4",
                    "url": "https://video.twimg.com/hi.mp4",
                },
            ],
        }
    ]
    post = normalise_tweet(tweet, includes)

    assert post.text.endswith("#HelpingHands") and "helpinghands" in post.hashtags
    [video] = post.media
    assert video.kind == "video" and video.url == "https://video.twimg.com/hi.mp4"
    assert video.sensitive and post.sensitive and video.alt == "A march"


def test_hashtags_with_emoji_rtl_and_combining_marks() -> None:
    tweet, includes = _example()
    tweet.update(text="🙌🏽 نحن هنا #حملة #Cafe\u0301 #HelpingHandsX", entities={})
    post = normalise_tweet(tweet, includes)
    assert post.hashtags == ("حملة", "café", "helpinghandsx")


def test_html_and_scripts_in_text_are_escaped() -> None:
    tweet, includes = _example()
    tweet["text"] = "&lt;script&gt;alert(1)&lt;/script&gt; <b onclick=x>hi</b> #CEADAY21"
    post = normalise_tweet(tweet, includes)
    assert "<script" not in post.html and "<b" not in post.html
    assert "&lt;script&gt;" in post.html
    assert post.text.startswith("<script>alert(1)</script>")


def test_missing_null_and_wrongly_typed_fields() -> None:
    tweet, includes = _example()
    tweet.update(
        public_metrics={"like_count": "lots", "retweet_count": None, "repost_count": 4},
        entities=None,
        attachments=[],
        text=None,
        edit_history_tweet_ids="nope",
        possibly_sensitive="yes",
    )
    post = normalise_tweet(tweet, {"users": "none", "media": {}})
    assert post.engagement.likes is None and post.engagement.shares == 4
    assert post.author.handle == "id:2244994945" and post.author.url is None
    assert post.url == "https://x.com/i/web/status/1860000000000000000"
    assert post.text == "" and post.media == () and not post.sensitive

    for field, value, reason in [
        ("id", 1860000000000000000, "id"),
        ("id", "12a", "id"),
        ("created_at", "soon", "created_at"),
        ("author_id", None, "author_id"),
    ]:
        broken = dict(tweet, **{field: value})
        with pytest.raises(UnreadableRecord, match=reason):
            normalise_tweet(broken, includes)


def test_snowflake_time_reads_the_id() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert snowflake_time(snowflake(moment, 7)) == moment
    assert snowflake_time("20") is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(
        [
            "id",
            "text",
            "created_at",
            "author_id",
            "edit_history_tweet_ids",
            "entities",
            "attachments",
            "public_metrics",
            "possibly_sensitive",
            "note_tweet",
            "users",
            "media",
        ]
    ),
    value=_json,
)
def test_any_json_in_any_field_gives_a_post_or_a_reason(field: str, value: Any) -> None:
    tweet, includes = _example()
    if field in ("users", "media"):
        includes[field] = value
    else:
        tweet[field] = value
    try:
        post = normalise_tweet(tweet, includes)
    except UnreadableRecord as exc:
        assert str(exc)
    else:
        assert post.created_at.tzinfo is not None and "<script" not in post.html


# --- configuration and credentials --------------------------------------------------


def test_config_errors_name_the_key() -> None:
    http = HttpClient()
    with pytest.raises(ConfigError, match="X_BEARER_TOKEN"):
        XAdapter({}, http)
    with pytest.raises(ConfigError, match="X_BEARER_TOKEN"):
        XAdapter({"X_BEARER_TOKEN": "two words"}, http)
    with pytest.raises(ConfigError, match="X_API_BASE"):
        XAdapter({"X_BEARER_TOKEN": TOKEN, "X_API_BASE": "api.x.com"}, http)
    assert XAdapter({"X_BEARER_TOKEN": TOKEN}, http).base == "https://api.x.com"
    http.close()


def test_app_without_search_access_says_which_package_is_needed(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    x.enrolled = False
    [summary] = poll_all(engine=sqlite_engine, settings=settings_for())
    error = summary.error or ""
    assert not summary.ok and "client-not-enrolled" in error
    assert "pay-per-use" in error and "X_BEARER_TOKEN" in error


def test_wrong_token_fails_x_while_bluesky_keeps_working(
    sqlite_engine: Engine,
    settings_for: Callable[..., Settings],
    x: FakeX,
) -> None:
    other = FakeServer().start()
    try:
        bluesky = FakeBluesky(other)
        bluesky.add_many(2)
        x.add_many(2)
        settings = settings_for(
            PLATFORMS="x,bluesky",
            X_BEARER_TOKEN="revoked-token",
            BLUESKY_API_BASE=bluesky.url,
            BLUESKY_HANDLE=HANDLE,
            BLUESKY_APP_PASSWORD=APP_PASSWORD,
        )
        summaries = {s.platform: s for s in poll_all(engine=sqlite_engine, settings=settings)}
    finally:
        other.stop()

    assert not summaries["x"].ok and "X_BEARER_TOKEN was refused" in (summaries["x"].error or "")
    assert summaries["bluesky"].ok and summaries["bluesky"].new == 2
    assert "401" in (_source(sqlite_engine).last_error or "")


# --- polling through the pipeline ---------------------------------------------------


def test_poll_stores_tagged_posts_once_with_media(
    engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    both = x.add("Both #CEADAY21 #HelpingHands", photos=2)
    x.add_many(120)
    x.add("Lookalike #CEADAY21X")

    summaries = poll_all(engine=engine, settings=settings_for(HASHTAGS="CEADAY21,HelpingHands"))

    assert all(s.ok for s in summaries), summaries
    assert len(_posts(engine)) == 121
    with Session(engine) as session:
        stored = session.exec(select(Post).where(Post.external_id == both["id"])).one()
        tags = set(session.exec(select(PostHashtag.tag).where(PostHashtag.post_id == stored.id)))
        media = list(session.exec(select(MediaItem).where(MediaItem.post_id == stored.id)))
    assert tags == {"ceaday21", "helpinghands"}
    assert [m.alt for m in media] == ["Photo 0 alt", "Photo 1 alt"]
    assert "-is:retweet" in (x.server.requests[0].arg("query") or "")


def test_later_polls_use_since_id_and_an_idle_poll_is_one_request(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    settings = settings_for()
    first = x.add_many(5)
    poll_all(engine=sqlite_engine, settings=settings)
    x.add_many(3)

    second = poll_all(engine=sqlite_engine, settings=settings)[0]
    before = x.server.hits(SEARCH)
    idle = poll_all(engine=sqlite_engine, settings=settings)[0]

    assert second.ok and second.new == 3 and second.fetched == 3
    assert x.server.requests[before - 1].arg("since_id") == first[-1]["id"]
    assert idle.ok and idle.fetched == 0 and idle.requests == 1
    assert x.server.hits(SEARCH) - before == 1


def test_first_poll_with_no_posts_moves_its_start_forward(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    settings = settings_for()
    poll_all(engine=sqlite_engine, settings=settings)
    x.add_many(2, created_at=None)
    x.clock = datetime.now(UTC) - timedelta(minutes=2)
    x.add()

    summary = poll_all(engine=sqlite_engine, settings=settings)[0]

    start = x.server.requests[-1].arg("start_time") or ""
    assert summary.ok and summary.new == 1  # only the post newer than the idle search
    assert datetime.fromisoformat(start.replace("Z", "+00:00")) > datetime.now(UTC) - timedelta(
        minutes=10
    )


def test_walk_cut_short_by_max_pages_resumes_with_until_id(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    settings = settings_for(POLL_MAX_PAGES="2")
    x.add_many(250)

    first = poll_all(engine=sqlite_engine, settings=settings)[0]
    assert first.ok and first.new == 200 and first.gap is None
    x.add_many(2)
    second = poll_all(engine=sqlite_engine, settings=settings)[0]

    assert second.ok and second.new == 52
    assert any(r.arg("until_id") for r in x.server.requests)
    assert len(_posts(sqlite_engine)) == 252
    assert '"upper"' not in (_source(sqlite_engine).cursor or "")


def test_a_source_down_for_more_than_7_days_reports_the_gap(adapter: XAdapter, x: FakeX) -> None:
    x.add_many(2, created_at=None)
    old_id = snowflake(datetime.now(UTC) - timedelta(days=9), 1)
    cursor = f'{{"v": 1, "newest": "{old_id}"}}'

    pages = list(adapter.search(TARGET, cursor, since=datetime.now(UTC), max_pages=5))

    assert pages[0].gap and "only 7 days" in pages[0].gap
    assert x.server.requests[-1].arg("since_id") is None
    assert x.server.requests[-1].arg("start_time")


def test_since_id_refused_by_x_s_clock_reads_the_window_with_a_gap_note(
    adapter: XAdapter, x: FakeX
) -> None:
    x.window = timedelta(days=7) - timedelta(minutes=10)  # X's clock runs 10 minutes ahead
    x.clock = datetime.now(UTC) - timedelta(days=1)
    x.add_many(2, created_at=None)
    old_id = snowflake(datetime.now(UTC) - timedelta(days=7) + timedelta(minutes=7), 1)
    cursor = f'{{"v": 1, "newest": "{old_id}"}}'

    pages = list(adapter.search(TARGET, cursor, since=datetime.now(UTC), max_pages=5))

    assert pages[0].gap and "refused the stored since_id" in pages[0].gap
    assert "must be a tweet id created after" in pages[0].gap
    assert sum(len(p.posts) for p in pages) == 2
    assert x.server.requests[0].arg("since_id") == old_id


def test_next_token_rejected_by_the_server_restarts_from_until_id(
    adapter: XAdapter, x: FakeX
) -> None:
    x.add_many(150)
    original = x._search

    def bad_tokens(request: Any) -> Reply:
        reply = original(request)
        return Reply(
            reply.status, reply.body.replace(b'"next_token": "', b'"next_token": "!'), reply.headers
        )

    x.server.routes = [(m, p, bad_tokens if h == original else h) for m, p, h in x.server.routes]
    pages = list(
        adapter.search(TARGET, None, since=datetime.now(UTC) - timedelta(days=3), max_pages=5)
    )

    assert len({p.external_id for page in pages for p in page.posts}) == 150
    assert x.server.requests[-1].arg("until_id") and not x.server.requests[-1].arg("next_token")


def test_unreadable_stored_cursor_restarts_with_a_gap_note(adapter: XAdapter, x: FakeX) -> None:
    x.add_many(3)
    since = datetime.now(UTC) - timedelta(days=3)
    pages = list(adapter.search(TARGET, '["garbage"]', since=since, max_pages=5))
    assert pages[0].gap and "unreadable" in pages[0].gap
    assert sum(len(p.posts) for p in pages) == 3


def test_posts_repeated_across_pages_are_stored_once(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    x.add_many(150)
    original = x._search

    def search_while_people_post(request: Any) -> Reply:
        reply = original(request)
        if request.arg("next_token") is None and not request.arg("since_id"):
            x.add_many(7)  # the offset token now repeats 7 posts on the next page
        return reply

    x.server.routes = [
        (m, p, search_while_people_post if h == original else h) for m, p, h in x.server.routes
    ]
    summary = poll_all(engine=sqlite_engine, settings=settings_for())[0]
    assert summary.ok and summary.new == 150
    again = poll_all(engine=sqlite_engine, settings=settings_for())[0]
    assert again.ok and again.new == 7
    assert len(_posts(sqlite_engine)) == 157


def test_unreadable_records_are_skipped_with_a_reason(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    x.add_many(2)
    x.add(created_at=None)["created_at"] = "not a time"
    summary = poll_all(engine=sqlite_engine, settings=settings_for())[0]
    assert summary.ok and summary.new == 2 and summary.skipped == 1


def test_an_edit_found_by_search_updates_the_same_post(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    settings = settings_for()
    original = x.add("First words #CEADAY21")
    poll_all(engine=sqlite_engine, settings=settings)
    x.edit(original["id"], "Better words #CEADAY21")

    summary = poll_all(engine=sqlite_engine, settings=settings)[0]

    assert summary.ok and summary.new == 0 and summary.edited == 1
    [post] = _posts(sqlite_engine)
    assert post.external_id == original["id"] and post.text == "Better words #CEADAY21"
    assert post.edited_at is not None


# --- HTTP faults ----------------------------------------------------------------------


def test_429_with_a_far_reset_marks_the_source_rate_limited(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    reset = str(int(time.time()) + 900)
    x.server.fail(
        "status",
        status=429,
        path=SEARCH,
        headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": reset},
    )
    summary = poll_all(engine=sqlite_engine, settings=settings_for())[0]

    assert not summary.ok and "rate limited until" in (summary.error or "")
    retry_at = _source(sqlite_engine).retry_at
    assert retry_at is not None
    assert retry_at.replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(minutes=14)


def test_429_with_a_near_reset_waits_and_carries_on(adapter: XAdapter, x: FakeX) -> None:
    x.add_many(2)
    x.server.fail(
        "status", status=429, path=SEARCH, headers={"x-rate-limit-reset": str(int(time.time()))}
    )
    since = datetime.now(UTC) - timedelta(days=3)
    pages = list(adapter.search(TARGET, None, since=since, max_pages=2))
    assert sum(len(p.posts) for p in pages) == 2


def test_spent_request_window_stops_after_the_page_and_resumes(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    settings = settings_for()
    x.add_many(150)
    x.remaining = 0

    first = poll_all(engine=sqlite_engine, settings=settings)[0]
    assert not first.ok and first.new == 100 and "spent until" in (first.error or "")
    assert _source(sqlite_engine).retry_at is not None

    x.remaining = 100
    with Session(sqlite_engine) as session:
        source = session.exec(select(Source)).one()
        source.retry_at = None
        session.add(source)
        session.commit()
    second = poll_all(engine=sqlite_engine, settings=settings)[0]
    assert second.ok and second.new == 50


@pytest.mark.parametrize(
    ("fault", "options", "message"),
    [
        ("status", {"status": 503}, "503"),
        ("hang", {"seconds": FOREVER}, "no answer within"),
        ("truncate", {}, "not valid JSON"),
        ("garbage", {}, "not valid JSON"),
    ],
)
def test_platform_faults_fail_the_poll_with_a_clear_reason(
    sqlite_engine: Engine,
    settings_for: Callable[..., Settings],
    x: FakeX,
    fault: str,
    options: dict[str, Any],
    message: str,
) -> None:
    x.add_many(2)
    x.server.fail(fault, path=SEARCH, **options)

    # One attempt only: retrying is tested on its own, this is about the message.
    summary = poll_all(engine=sqlite_engine, settings=settings_for(HTTP_RETRIES="0"))[0]

    assert not summary.ok and message in (summary.error or "")
    assert _source(sqlite_engine).cursor is None
    assert poll_all(engine=sqlite_engine, settings=settings_for())[0].new == 2


def test_answer_that_is_not_an_object_is_malformed(adapter: XAdapter, x: FakeX) -> None:
    x.server.routes.insert(0, ("GET", re.compile(f"^{SEARCH}$"), lambda r: Reply.json([1, 2])))
    with pytest.raises(MalformedResponse, match="JSON object"):
        list(adapter.search(TARGET, None, since=datetime.now(UTC), max_pages=1))


# --- refresh and backfill ---------------------------------------------------------------


def test_refresh_updates_engagement_and_detects_edits_deletions_and_protection(
    engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    settings = settings_for()
    tweets = x.add_many(120, created_at=None)
    poll_all(engine=engine, settings=settings)
    tweets[0]["public_metrics"]["like_count"] = 40
    x.edit(tweets[1]["id"], "Changed at source #CEADAY21")
    x.delete(tweets[2]["id"])
    x.protect(tweets[3]["id"])
    with Session(engine) as session:
        edited = session.exec(select(Post).where(Post.external_id == tweets[1]["id"])).one()
        edited.status = PostStatus.APPROVED
        session.add(edited)
        session.commit()

    [summary] = refresh_all(engine=engine, settings=settings)

    assert summary.ok and summary.checked == 120
    assert summary.removed == 2 and summary.edited == 1 and summary.updated >= 1
    by_id = {p.external_id: p for p in _posts(engine)}
    assert by_id[tweets[0]["id"]].likes == 40
    assert by_id[tweets[1]["id"]].status == PostStatus.PENDING
    assert by_id[tweets[1]["id"]].text == "Changed at source #CEADAY21"
    assert by_id[tweets[2]["id"]].status == PostStatus.REMOVED
    assert by_id[tweets[3]["id"]].status == PostStatus.REMOVED
    lookups = [r for r in x.server.requests if r.path == "/2/tweets"]
    assert max(len((r.arg("ids") or "").split(",")) for r in lookups) == 100


def test_refresh_of_a_deleted_edit_chain_and_bad_refs(adapter: XAdapter, x: FakeX) -> None:
    tweet = x.add()
    newer = x.edit(tweet["id"], "Edited #CEADAY21")
    x.tweets.pop(newer["id"])  # the latest version is gone, the old one still answers

    result = adapter.refresh([tweet["id"], "not-an-id"])

    assert result.posts == () and result.deleted == (tweet["id"],)
    assert len(result.skipped) == 1 and "not-an-id" in result.skipped[0]


def test_backfill_resumes_and_says_how_far_x_reaches(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], x: FakeX
) -> None:
    settings = settings_for()
    x.clock = datetime.now(UTC) - timedelta(days=6)
    x.add_many(250, created_at=None)
    since = datetime.now(UTC) - timedelta(days=30)
    x.server.fail("reset", path=SEARCH, after=1)
    x.server.fail("reset", times=2, path=SEARCH)

    with HttpClient(RetryPolicy(timeout=1, attempts=3, backoff=0.001)) as http:
        adapter = XAdapter(settings.raw, http)
        first = backfill_target(engine=sqlite_engine, adapter=adapter, target=TARGET, since=since)
        assert not first.ok and first.new == 100
        before = len(x.server.requests)
        second = backfill_target(engine=sqlite_engine, adapter=adapter, target=TARGET, since=since)

    assert second.ok and second.new == 150
    assert second.gap and "only 7 days" in second.gap
    assert x.server.requests[before].arg("until_id") is not None
    assert len(_posts(sqlite_engine)) == 250
