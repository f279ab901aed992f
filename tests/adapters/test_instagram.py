"""The Instagram adapter against a local Graph API: through the pipeline and directly."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import (
    AuthFailed,
    ConfigError,
    MalformedResponse,
    Page,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
    Target,
)
from adapters.http import HttpClient, RetryPolicy
from adapters.instagram import InstagramAdapter, normalise_all
from adapters.text import as_count, parse_time
from monitor.config import Settings
from monitor.models import Post, Source
from monitor.services.ingest import content_hash, record_posts
from monitor.services.polling import poll_all
from tests.fakes.instagram import TOKEN, USER_ID, FakeInstagram, fixture
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FOREVER, FakeServer

TAG = Target("", ("CEADAY21",))


@pytest.fixture
def instagram(fake_server: FakeServer) -> FakeInstagram:
    return FakeInstagram(fake_server)


@pytest.fixture
def settings_for(
    configure: Callable[..., Settings], instagram: FakeInstagram
) -> Callable[..., Settings]:
    def build(**extra: str) -> Settings:
        env = {
            "INSTAGRAM_API_BASE": instagram.url,
            "INSTAGRAM_ACCESS_TOKEN": TOKEN,
            "INSTAGRAM_USER_ID": USER_ID,
            "PLATFORMS": "instagram",
            "HASHTAGS": "CEADAY21",
        }
        return configure(**{**env, **extra})

    return build


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with HttpClient(RetryPolicy(timeout=1, attempts=2, backoff=0.01, max_retry_after=2)) as http:
        yield http


@pytest.fixture
def adapter(instagram: FakeInstagram, client: HttpClient) -> InstagramAdapter:
    config = {
        "INSTAGRAM_API_BASE": instagram.url,
        "INSTAGRAM_ACCESS_TOKEN": TOKEN,
        "INSTAGRAM_USER_ID": USER_ID,
    }
    return InstagramAdapter(config, client)


def _posts(engine: Engine) -> list[Post]:
    with Session(engine) as session:
        return list(session.exec(select(Post).order_by(Post.created_at)))


def _source(engine: Engine) -> Source:
    with Session(engine) as session:
        return next(s for s in session.exec(select(Source)) if s.platform == "instagram")


def _walk(adapter: InstagramAdapter, cursor: str | None = None, **kwargs: Any) -> list[Page]:
    since = kwargs.pop("since", datetime.now(UTC) - timedelta(hours=72))
    return list(adapter.search(TAG, cursor, since=since, max_pages=kwargs.pop("max_pages", 50)))


# -- the pipeline ----------------------------------------------------------------------------


def test_first_poll_reads_every_page_and_says_the_api_reaches_only_24_hours(
    engine: Engine, settings_for: Callable[..., Settings], instagram: FakeInstagram
) -> None:
    instagram.add(
        "Too old for recent_media #CEADAY21", created_at=instagram.now - timedelta(hours=30)
    )
    instagram.clock = instagram.now - timedelta(hours=20)
    instagram.add_many(60)

    summary = poll_all(engine=engine, settings=settings_for())[0]

    assert summary.ok, summary.error
    assert (summary.new, summary.pages, summary.requests) == (60, 3, 4)  # 1 hashtag lookup
    assert "only reach 24 hours back" in (summary.gap or "")
    assert len(_posts(engine)) == 60
    stored = _source(engine).cursor or ""
    assert json.loads(stored)["hashtag_id"] == instagram.hashtag_ids["ceaday21"]
    assert len(stored) < 600  # the width of the cursor column


def test_later_polls_read_only_new_media_and_never_search_the_hashtag_again(
    engine: Engine, settings_for: Callable[..., Settings], instagram: FakeInstagram
) -> None:
    instagram.add_many(30)
    settings = settings_for()
    poll_all(engine=engine, settings=settings)
    before = instagram.server.hits()

    idle = poll_all(engine=engine, settings=settings)[0]

    assert idle.ok and idle.new == 0 and idle.gap is None
    assert instagram.server.hits() - before == 1  # one page, the hashtag id from the cursor

    instagram.clock = instagram.now - timedelta(minutes=5)
    instagram.add_many(3)
    again = poll_all(engine=engine, settings=settings)[0]
    # Order is "not always chronological": the walk stops at the first page that is all old.
    assert again.new == 3 and again.pages == 2
    assert instagram.hashtag_queries == ["ceaday21"]
    assert len(_posts(engine)) == 33


def test_a_poll_that_fell_more_than_a_day_behind_reports_a_gap(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add_many(2)
    first = _walk(adapter)
    stored = json.loads(first[-1].cursor or "")
    stored["covered"] = (datetime.now(UTC) - timedelta(hours=30)).isoformat()

    pages = _walk(adapter, json.dumps(stored))

    assert "fell behind" in (pages[-1].gap or "")
    assert json.loads(pages[-1].cursor or "")["covered"] > stored["covered"]


def test_an_expired_token_fails_the_source_clearly_while_mastodon_keeps_working(
    sqlite_engine: Engine,
    settings_for: Callable[..., Settings],
    instagram: FakeInstagram,
    mastodon: FakeMastodon,
) -> None:
    instagram.add_many(2)
    mastodon.add_many(2)
    instagram.token = "a-newer-token"
    settings = settings_for(PLATFORMS="instagram,mastodon", MASTODON_INSTANCES=mastodon.url)

    summaries = {s.platform: s for s in poll_all(engine=sqlite_engine, settings=settings)}

    assert summaries["mastodon"].ok and summaries["mastodon"].new == 2
    failed = summaries["instagram"]
    assert not failed.ok
    assert "INSTAGRAM_ACCESS_TOKEN" in (failed.error or "")
    assert "long-lived user access token" in (failed.error or "")
    assert "Session has expired" in (_source(sqlite_engine).last_error or "")


def test_missing_permission_names_the_feature_to_request(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.fail_with(400, "error_permission.json")
    with pytest.raises(AuthFailed, match="Instagram Public Content Access"):
        _walk(adapter)


def test_a_user_id_meta_does_not_know_is_named_in_the_error(
    instagram: FakeInstagram, client: HttpClient
) -> None:
    config = {
        "INSTAGRAM_API_BASE": instagram.url,
        "INSTAGRAM_ACCESS_TOKEN": TOKEN,
        "INSTAGRAM_USER_ID": "123",
    }
    with pytest.raises(RequestRejected, match="check that INSTAGRAM_USER_ID"):
        _walk(InstagramAdapter(config, client))


def test_missing_keys_and_bad_values_name_the_key(client: HttpClient) -> None:
    with pytest.raises(ConfigError, match="INSTAGRAM_USER_ID"):
        InstagramAdapter({"INSTAGRAM_ACCESS_TOKEN": "x"}, client)
    with pytest.raises(ConfigError, match="INSTAGRAM_USER_ID: must be the numeric id"):
        InstagramAdapter({"INSTAGRAM_ACCESS_TOKEN": "x", "INSTAGRAM_USER_ID": "@force"}, client)
    with pytest.raises(ConfigError, match="INSTAGRAM_API_BASE"):
        config = {
            "INSTAGRAM_ACCESS_TOKEN": "x",
            "INSTAGRAM_USER_ID": "1",
            "INSTAGRAM_API_BASE": "ftp://x",
        }
        InstagramAdapter(config, client)


# -- rate limits and faults --------------------------------------------------------------------


def test_throttling_error_waits_for_the_business_use_case_header(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], instagram: FakeInstagram
) -> None:
    usage = json.dumps(fixture("business_use_case_usage.json"))
    instagram.fail_with(400, "error_rate_limit.json", {"X-Business-Use-Case-Usage": usage})
    settings = settings_for()

    summary = poll_all(engine=sqlite_engine, settings=settings)[0]

    assert not summary.ok and "Application request limit reached" in (summary.error or "")
    retry_at = _source(sqlite_engine).retry_at
    assert retry_at is not None
    wait = retry_at.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(minutes=15) < wait <= timedelta(minutes=17)
    before = instagram.server.hits()
    assert not poll_all(engine=sqlite_engine, settings=settings)[0].ok
    assert instagram.server.hits() == before  # the source waits; nothing is sent


def test_http_429_reads_the_reset_from_the_usage_header(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    usage = json.dumps(fixture("business_use_case_usage.json"))
    instagram.server.fail("status", status=429, headers={"X-Business-Use-Case-Usage": usage})
    with pytest.raises(RateLimited) as caught:
        _walk(adapter)
    assert caught.value.retry_at is not None
    assert caught.value.retry_at - datetime.now(UTC) > timedelta(minutes=15)


def test_usage_at_100_percent_stops_before_the_next_request(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add_many(2)
    _walk(adapter)
    instagram.headers["X-App-Usage"] = json.dumps(
        {"call_count": 100, "total_cputime": 10, "total_time": 10}
    )
    assert len(_walk(adapter)[0].posts) == 2  # this answer still counts
    before = instagram.server.hits()
    with pytest.raises(RateLimited, match="usage limit to reset"):
        _walk(adapter)
    assert instagram.server.hits() == before


def test_a_hanging_server_times_out(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], instagram: FakeInstagram
) -> None:
    instagram.server.fail("hang", seconds=FOREVER)
    summary = poll_all(
        engine=sqlite_engine, settings=settings_for(HTTP_TIMEOUT_SECONDS="0.2", HTTP_RETRIES="0")
    )[0]
    assert not summary.ok and "no answer within" in (summary.error or "")


def test_truncated_json_is_reported_and_nothing_is_stored(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add_many(3)
    instagram.server.fail("truncate", path="/ig_hashtag_search")
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        _walk(adapter)
    instagram.server.fail("garbage", path="/17841593698074073/recent_media")
    with pytest.raises(MalformedResponse):
        _walk(adapter)


def test_a_connection_reset_on_every_try_is_platform_unavailable(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.server.fail("reset", times=2)
    with pytest.raises(PlatformUnavailable, match="connection failed"):
        _walk(adapter)


# -- hostile payloads ----------------------------------------------------------------------------


def test_unreadable_records_are_skipped_with_a_reason_and_the_rest_kept(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    good = instagram.add("Fine #CEADAY21")
    instagram.add("No time #CEADAY21", timestamp=None)
    instagram.add("Bad id #CEADAY21", id=["17"])
    instagram.add("Year one #CEADAY21", timestamp="0001-01-01T00:00:00+0100")
    instagram.add("No link #CEADAY21", permalink="javascript:alert(1)")
    odd = instagram.add(
        "Odd fields #CEADAY21",
        like_count="lots",
        comments_count=10**30,
        media_type=["IMAGE"],
        children={"data": "nope"},
    )

    pages = _walk(adapter)

    posts = {p.external_id: p for page in pages for p in page.posts}
    assert set(posts) == {good["id"], odd["id"]}
    assert posts[odd["id"]].engagement.likes is None
    assert posts[odd["id"]].engagement.replies is None
    assert posts[odd["id"]].media == ()
    reasons = " | ".join(r for page in pages for r in page.skipped)
    assert "no readable timestamp" in reasons and "no id" in reasons
    assert "no permalink" in reasons


def test_a_post_without_a_caption_or_with_hidden_likes_is_kept_honestly(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    hidden = instagram.add("Likes hidden #CEADAY21")
    del hidden["like_count"]
    instagram.add(None, tags=("ceaday21",))  # type: ignore[arg-type]

    posts = [p for page in _walk(adapter) for p in page.posts]

    assert [p.engagement.likes for p in posts] == [None]
    assert posts[0].engagement.replies == 2
    assert posts[0].author.handle == "instagram-user"


def test_media_tagged_only_in_a_comment_or_with_a_longer_tag_is_dropped(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add("Tagged in a comment", tags=("ceaday21",))
    instagram.add("Longer tag #CEADAY21X", tags=("ceaday21",))
    kept = instagram.add("Right one #ceaday21 🙌")

    posts = [p for page in _walk(adapter) for p in page.posts]

    assert [p.external_id for p in posts] == [kept["id"]]


def test_emoji_rtl_and_combining_characters_in_hashtags(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    emoji = instagram.add("Hands #HelpingHands🙌 up", tags=("helpinghands",))
    wide = instagram.add("Full width #ＨｅｌｐｉｎｇＨａｎｄｓ", tags=("helpinghands",))
    arabic = instagram.add("أيادي #مساعدة‏ نعم", tags=("مساعدة",))
    cafe = instagram.add("Combining #Cafe\u0301 time", tags=("café",))

    def tags_of(tag: str) -> dict[str, tuple[str, ...]]:
        pages = adapter.search(Target("", (tag,)), None, since=datetime.now(UTC), max_pages=5)
        return {p.external_id: p.hashtags for page in pages for p in page.posts}

    assert set(tags_of("HelpingHands")) == {emoji["id"], wide["id"]}
    assert tags_of("مساعدة") == {arabic["id"]: ("مساعدة",)}
    assert tags_of("café") == {cafe["id"]: ("café",)}


def test_html_and_scripts_in_captions_are_escaped(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add('<script>alert("x")</script><img src=x onerror=alert(1)> #CEADAY21')

    post = _walk(adapter)[0].posts[0]

    assert "<script" not in post.html and "<img" not in post.html
    assert "&lt;script&gt;" in post.html
    assert post.text.startswith("<script>")  # plain text stays what the person wrote


def test_duplicates_across_pages_and_a_server_repeating_itself_end_the_walk(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], instagram: FakeInstagram
) -> None:
    first = instagram.add_many(60)[0]
    instagram.repeat_on_every_page = first

    summary = poll_all(engine=sqlite_engine, settings=settings_for())[0]

    assert summary.ok and summary.new == 60
    assert len(_posts(sqlite_engine)) == 60


def test_a_stored_hashtag_id_the_server_rejects_is_looked_up_again(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add_many(2)
    stale = json.dumps({"v": 1, "hashtag_id": "999"})

    pages = _walk(adapter, stale)

    assert sum(len(p.posts) for p in pages) == 2
    assert json.loads(pages[-1].cursor or "")["hashtag_id"] == instagram.hashtag_ids["ceaday21"]


def test_an_unreadable_or_foreign_cursor_is_treated_as_a_first_poll(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add_many(2)
    year_one = json.dumps({"hashtag_id": "1", "covered": "0001-01-01T00:00:00+00:00"})
    for cursor in ("not json", "[]", json.dumps({"hashtag_id": ["1"]}), year_one):
        assert sum(len(p.posts) for p in _walk(adapter, cursor)) == 2


def test_an_unknown_hashtag_yields_an_empty_page(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    pages = list(adapter.search(Target("", ("",)), None, since=datetime.now(UTC), max_pages=3))
    assert pages == [Page(())]


def test_carousels_and_signed_urls(adapter: InstagramAdapter, instagram: FakeInstagram) -> None:
    album = instagram.add_carousel()

    post = _walk(adapter)[0].posts[0]

    children = album["children"]["data"]
    assert [m.key for m in post.media] == [c["id"] for c in children]
    assert [m.kind for m in post.media] == ["image", "video"]
    assert post.media[0].expires_at == datetime.fromtimestamp(int(instagram.expiry, 16), UTC)
    assert post.url == album["permalink"]


# -- refresh and backfill ------------------------------------------------------------------------


def test_refresh_updates_counts_detects_edits_and_deletions(
    sqlite_engine: Engine, adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    kept, edited, gone = instagram.add_many(3)
    seen = {p.external_id: p for page in _walk(adapter) for p in page.posts}
    with Session(sqlite_engine) as session:
        record_posts(session=session, posts=list(seen.values()))
        session.commit()
    kept["like_count"] = 99
    kept["media_url"] = "https://scontent.cdninstagram.com/v/re-signed.jpg?oe=6650FFFF"
    edited["caption"] = "Changed my words #CEADAY21"
    instagram.delete(gone["id"])

    result = adapter.refresh([kept["id"], edited["id"], gone["id"], kept["id"], "../x", "1,2"])

    assert result.deleted == (gone["id"],)
    by_id = {p.external_id: p for p in result.posts}
    assert by_id[kept["id"]].engagement.likes == 99
    # A new signed URL for the same media is not an edit: the media id is its key.
    assert content_hash(by_id[kept["id"]]) == content_hash(seen[kept["id"]])
    assert content_hash(by_id[edited["id"]]) != content_hash(seen[edited["id"]])
    with Session(sqlite_engine) as session:
        outcome = record_posts(session=session, posts=result.posts)
        session.commit()
    assert (outcome.updated, outcome.edited) == (1, 1)


def test_refresh_uses_one_bulk_request_when_nothing_was_deleted(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    ids = [m["id"] for m in instagram.add_many(60)]
    before = instagram.server.hits()

    result = adapter.refresh(ids)

    assert len(result.posts) == 60 and result.deleted == ()
    assert instagram.server.hits() - before == 2  # 50 + 10 ids


def test_backfill_resumes_after_the_last_committed_page(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add_many(60)
    since = datetime.now(UTC) - timedelta(days=3)

    first = list(adapter.backfill(TAG, since=since, resume=None, max_pages=1))
    assert len(first) == 1 and len(first[0].posts) == 25 and first[0].cursor
    rest = list(adapter.backfill(TAG, since=since, resume=first[0].cursor, max_pages=10))

    ids = [p.external_id for page in first + rest for p in page.posts]
    assert len(ids) == len(set(ids)) == 60
    assert "only reach 24 hours back" in (rest[-1].gap or "")
    assert instagram.hashtag_queries == ["ceaday21"]


def test_backfill_with_a_position_the_server_rejects_starts_again(
    adapter: InstagramAdapter, instagram: FakeInstagram
) -> None:
    instagram.add_many(30)
    since = datetime.now(UTC) - timedelta(hours=23)
    list(adapter.backfill(TAG, since=since, resume=None, max_pages=1))
    hashtag_id = instagram.hashtag_ids["ceaday21"]
    bad = json.dumps({"hashtag_id": hashtag_id, "after": "expired"})

    pages = list(adapter.backfill(TAG, since=since, resume=bad, max_pages=10))

    assert sum(len(p.posts) for p in pages) == 30


# -- the normaliser never raises ------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = [
    "id",
    "caption",
    "media_type",
    "media_url",
    "permalink",
    "timestamp",
    "like_count",
    "comments_count",
    "children",
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(_FIELDS), value=_JSON, drop=st.booleans())
def test_any_json_in_any_field_gives_a_post_or_a_skipped_reason(
    field: str, value: Any, drop: bool
) -> None:
    item = dict(fixture("recent_media.json")["data"][1])
    if drop:
        item.pop(field, None)
    else:
        item[field] = value

    posts, skipped = normalise_all([item], now=datetime.now(UTC))

    assert len(posts) + len(skipped) == 1


def test_shared_readers_refuse_out_of_range_values() -> None:
    """Regression for adapters/text.py: these used to raise or overflow BIGINT."""
    assert parse_time("0001-01-01T00:00:00+01:00") is None
    assert as_count(2**63) is None and as_count("²") is None and as_count("9" * 5000) is None
    assert as_count("12") == 12
