"""The YouTube adapter against a local Data API v3: through the pipeline and directly."""

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
from adapters.youtube import YouTubeAdapter, normalise_all
from monitor.config import Settings
from monitor.models import Post, Source
from monitor.services.ingest import record_posts
from monitor.services.polling import poll_all
from monitor.services.reach import compute_reach
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FOREVER, FakeServer
from tests.fakes.youtube import API_KEY, FakeYouTube, fixture

TAG = Target("", ("CEADAY21",))


@pytest.fixture
def youtube(fake_server: FakeServer) -> FakeYouTube:
    return FakeYouTube(fake_server)


@pytest.fixture
def settings_for(
    configure: Callable[..., Settings], youtube: FakeYouTube
) -> Callable[..., Settings]:
    def build(**extra: str) -> Settings:
        env = {
            "YOUTUBE_API_BASE": youtube.url,
            "YOUTUBE_API_KEY": API_KEY,
            "PLATFORMS": "youtube",
            "HASHTAGS": "CEADAY21",
        }
        return configure(**{**env, **extra})

    return build


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with HttpClient(RetryPolicy(timeout=1, attempts=2, backoff=0.01, max_retry_after=2)) as http:
        yield http


def _adapter(youtube: FakeYouTube, client: HttpClient, **extra: str) -> YouTubeAdapter:
    config = {"YOUTUBE_API_BASE": youtube.url, "YOUTUBE_API_KEY": API_KEY, **extra}
    return YouTubeAdapter(config, client)


@pytest.fixture
def adapter(youtube: FakeYouTube, client: HttpClient) -> YouTubeAdapter:
    return _adapter(youtube, client)


def _posts(engine: Engine) -> list[Post]:
    with Session(engine) as session:
        return list(session.exec(select(Post).order_by(Post.created_at)))


def _source(engine: Engine) -> Source:
    with Session(engine) as session:
        return next(s for s in session.exec(select(Source)) if s.platform == "youtube")


def _walk(adapter: YouTubeAdapter, cursor: str | None = None, **kwargs: Any) -> list[Page]:
    since = kwargs.pop("since", datetime.now(UTC) - timedelta(hours=72))
    target = kwargs.pop("target", TAG)
    return list(adapter.search(target, cursor, since=since, max_pages=kwargs.pop("max_pages", 50)))


# -- the pipeline ----------------------------------------------------------------------------


def test_first_poll_pages_back_and_later_polls_cost_one_search(
    engine: Engine, settings_for: Callable[..., Settings], youtube: FakeYouTube
) -> None:
    youtube.add("Old #CEADAY21", published_at=datetime.now(UTC) - timedelta(days=5))
    youtube.clock = datetime.now(UTC) - timedelta(hours=30)
    youtube.spacing = timedelta(minutes=5)  # an hour of overlap holds 12 videos: one page
    youtube.add_many(120)
    settings = settings_for()

    first = poll_all(engine=engine, settings=settings)[0]

    assert first.ok, first.error
    assert (first.new, first.pages, first.requests) == (120, 3, 6)  # 3 searches + 3 videos.list
    assert youtube.units == 303 + 1  # and, after the poll, channels.list for the subscribers
    assert len(_posts(engine)) == 120
    assert len(_source(engine).cursor or "") <= 600  # the width of the cursor column

    idle = poll_all(engine=engine, settings=settings)[0]
    assert idle.ok and idle.new == 0 and idle.requests == 1  # known ids: no videos.list
    assert youtube.units == 403 + 1  # the channel's count is a day fresh: not looked up again

    youtube.clock = datetime.now(UTC) - timedelta(minutes=10)
    youtube.add_many(2)
    again = poll_all(engine=engine, settings=settings)[0]
    assert (again.new, again.requests) == (2, 2)
    assert len(_posts(engine)) == 122


def test_a_video_search_lists_late_is_still_found_by_the_overlap(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    youtube.clock = datetime.now(UTC) - timedelta(hours=2)
    late = youtube.add("Indexed late #CEADAY21")
    youtube.unindexed.add(late["id"])
    youtube.add("Indexed at once #CEADAY21")
    cursor = _walk(adapter)[-1].cursor

    youtube.unindexed.clear()
    pages = _walk(adapter, cursor)

    assert [p.external_id for page in pages for p in page.posts] == [late["id"]]


def test_a_wrong_key_fails_the_source_clearly_while_mastodon_keeps_working(
    sqlite_engine: Engine,
    settings_for: Callable[..., Settings],
    youtube: FakeYouTube,
    mastodon: FakeMastodon,
) -> None:
    youtube.add_many(2)
    mastodon.add_many(2)
    youtube.key = "another-key"
    settings = settings_for(PLATFORMS="youtube,mastodon", MASTODON_INSTANCES=mastodon.url)

    summaries = {s.platform: s for s in poll_all(engine=sqlite_engine, settings=settings)}

    assert summaries["mastodon"].ok and summaries["mastodon"].new == 2
    failed = summaries["youtube"]
    assert not failed.ok
    assert "YOUTUBE_API_KEY was refused (badRequest: API key not valid" in (failed.error or "")
    assert _source(sqlite_engine).failures_in_row == 1


def test_api_not_enabled_is_an_auth_failure_with_the_reason(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    youtube.fail_with(403, "error_forbidden.json")
    with pytest.raises(AuthFailed, match="accessNotConfigured.*YouTube Data API v3 enabled"):
        _walk(adapter)


def test_configuration_is_checked_and_names_the_key(
    youtube: FakeYouTube, client: HttpClient
) -> None:
    with pytest.raises(ConfigError, match="YOUTUBE_API_KEY"):
        YouTubeAdapter({}, client)
    for quota in ("lots", "99", "-5", "²", "1e9"):
        with pytest.raises(ConfigError, match="YOUTUBE_DAILY_QUOTA"):
            _adapter(youtube, client, YOUTUBE_DAILY_QUOTA=quota)
    with pytest.raises(ConfigError, match="YOUTUBE_API_BASE"):
        _adapter(youtube, client, YOUTUBE_API_BASE="file:///etc")


# -- quota -----------------------------------------------------------------------------------


def test_the_budget_refuses_searches_past_it_until_midnight_pacific(
    youtube: FakeYouTube, client: HttpClient
) -> None:
    adapter = _adapter(youtube, client, YOUTUBE_DAILY_QUOTA="1000")  # 900 for searches
    noon_pacific = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # 12:00 PST
    adapter.clock = lambda: noon_pacific
    youtube.add_many(2)
    cursor = None
    for _ in range(8):
        cursor = _walk(adapter, cursor)[-1].cursor
    assert adapter.quota.spent == 8 * 100 + 1  # videos.list only once: later polls know them
    before = youtube.server.hits()

    with pytest.raises(RateLimited, match="daily quota budget reached") as caught:
        _walk(adapter)

    assert youtube.server.hits() == before
    assert caught.value.retry_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert adapter.refresh(list(youtube.videos)).posts  # refresh has its reserve
    adapter.clock = lambda: datetime(2026, 11, 24, 8, 0, 1, tzinfo=UTC)  # 00:00:01 PST
    assert _walk(adapter, cursor) and adapter.quota.spent == 100


def test_quota_exceeded_at_google_waits_for_the_reset(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], youtube: FakeYouTube
) -> None:
    youtube.daily_quota = 50
    settings = settings_for()

    summary = poll_all(engine=sqlite_engine, settings=settings)[0]

    assert not summary.ok and "quotaExceeded" in (summary.error or "")
    assert "midnight Pacific time" in (summary.error or "")
    retry_at = _source(sqlite_engine).retry_at
    assert retry_at is not None
    assert timedelta(0) < retry_at.replace(tzinfo=UTC) - datetime.now(UTC) <= timedelta(hours=25)


def test_poll_interval_fits_every_target_into_the_daily_budget(
    youtube: FakeYouTube, client: HttpClient
) -> None:
    adapter = _adapter(youtube, client)  # 10,000 units: 90 searches after the reserve
    assert adapter.poll_interval(300, 2) == 1920  # 45 searches per target a day
    assert adapter.poll_interval(3600, 2) == 3600  # never shorter than configured
    assert adapter.poll_interval(300, 0) == 300
    small = _adapter(youtube, client, YOUTUBE_DAILY_QUOTA="112")
    assert small.poll_interval(300, 1) == 86_400


def test_short_term_rate_limits_and_429(adapter: YouTubeAdapter, youtube: FakeYouTube) -> None:
    youtube.server.fail("status", status=429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as caught:
        _walk(adapter)
    assert caught.value.retry_at is not None
    assert caught.value.retry_at - datetime.now(UTC) > timedelta(seconds=100)


# -- faults ----------------------------------------------------------------------------------


def test_server_errors_timeouts_and_garbage(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], youtube: FakeYouTube
) -> None:
    youtube.add_many(2)
    settings = settings_for(HTTP_TIMEOUT_SECONDS="0.2", HTTP_RETRIES="1")
    youtube.server.fail("status", times=2, status=503)
    assert "503" in (poll_all(engine=sqlite_engine, settings=settings)[0].error or "")
    youtube.server.fail("hang", times=2, seconds=FOREVER)
    assert "no answer within" in (poll_all(engine=sqlite_engine, settings=settings)[0].error or "")
    youtube.server.fail("truncate", path="/videos")
    assert "not valid JSON" in (poll_all(engine=sqlite_engine, settings=settings)[0].error or "")
    youtube.server.fail("status", status=500)
    assert poll_all(engine=sqlite_engine, settings=settings)[0].new == 2  # one retry was enough


def test_resets_and_non_json_error_pages(adapter: YouTubeAdapter, youtube: FakeYouTube) -> None:
    youtube.server.fail("reset", times=2)
    with pytest.raises(PlatformUnavailable):
        _walk(adapter)
    youtube.server.fail("garbage")
    with pytest.raises(MalformedResponse):
        _walk(adapter)


def test_a_page_token_the_server_rejects_is_a_clear_refusal(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    youtube.add_many(60)
    pages = adapter.search(TAG, None, since=datetime.now(UTC) - timedelta(days=3), max_pages=5)
    first = next(pages)
    assert first.cursor is None  # newest first: nothing is stored mid-walk
    youtube.fail_with(400, "error_invalid_page_token.json")
    with pytest.raises(RequestRejected, match="invalidPageToken"):
        next(pages)


def test_max_pages_cut_reports_a_gap(adapter: YouTubeAdapter, youtube: FakeYouTube) -> None:
    youtube.add_many(120)
    pages = _walk(adapter, max_pages=2)
    assert len(pages) == 2 and "stopped after 2 pages" in (pages[-1].gap or "")
    assert pages[-1].cursor is not None


# -- hostile payloads ----------------------------------------------------------------------------


def test_unreadable_and_unrelated_videos(adapter: YouTubeAdapter, youtube: FakeYouTube) -> None:
    good = youtube.add("Good #CEADAY21")
    youtube.add("No snippet #CEADAY21", snippet=None)
    youtube.add("Search only matched a word", terms=("ceaday21",), description="CEADAY21 day")
    youtube.add("Longer tag #CEADAY21X", terms=("ceaday21",))
    keyword = youtube.add("Only in keywords", tags=["CEADAY21"], description="")
    odd = youtube.add(
        "Odd #CEADAY21",
        statistics={"viewCount": "many", "likeCount": -3, "commentCount": ["1"]},
    )
    odd["snippet"]["thumbnails"] = {"maxres": {"url": "javascript:alert(1)"}, "default": 7}
    odd["snippet"]["tags"] = "not a list"
    del good["statistics"]["likeCount"]  # hidden likes

    pages = _walk(adapter)

    posts = {p.external_id: p for page in pages for p in page.posts}
    # A hashtag only in the hidden keyword tags is nowhere a viewer sees it: not a match.
    assert set(posts) == {good["id"], odd["id"]}
    assert keyword["id"] not in posts
    assert posts[good["id"]].engagement.likes is None
    assert posts[good["id"]].engagement.views == 1532
    assert posts[odd["id"]].engagement == posts[odd["id"]].engagement.__class__()
    assert posts[odd["id"]].media == ()
    assert any("no snippet" in reason for page in pages for reason in page.skipped)


def test_search_results_without_ids_are_skipped(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    youtube.add("Fine #CEADAY21")
    youtube.odd_results = [
        {"id": {"kind": "youtube#channel", "channelId": "UC1"}, "snippet": {}},
        {"id": {"videoId": "../../x"}},
        {"id": {"videoId": "abc"}, "snippet": {"publishedAt": 5}},
        "not an object",
    ]

    pages = _walk(adapter)

    assert len(pages[0].posts) == 1
    assert len(pages[0].skipped) == 4


def test_emoji_rtl_combining_and_markup(adapter: YouTubeAdapter, youtube: FakeYouTube) -> None:
    emoji = youtube.add("Hands #HelpingHands🙌", terms=("helpinghands",))
    youtube.add("Not ours #HelpingHandsX", terms=("helpinghands",))
    arabic = youtube.add("أيادي #مساعدة", terms=("مساعدة",))
    cafe = youtube.add("Combining #Cafe\u0301", terms=("café",))
    script = youtube.add(
        "<script>alert(1)</script> #HelpingHands", description="<b onclick=x>bold</b>"
    )

    def found(tag: str) -> dict[str, Any]:
        pages = _walk(adapter, target=Target("", (tag,)))
        return {p.external_id: p for page in pages for p in page.posts}

    helping = found("HelpingHands")
    assert set(helping) == {emoji["id"], script["id"]}
    assert set(found("مساعدة")) == {arabic["id"]}
    assert set(found("café")) == {cafe["id"]}
    marked = helping[script["id"]]
    assert "<script" not in marked.html and "<b " not in marked.html
    assert "&lt;script&gt;" in marked.html
    assert marked.media[0].alt == "<script>alert(1)</script> #HelpingHands"


def test_the_normalised_video_follows_the_documentation(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    video = youtube.add("Assembly #CEADAY21", description="More #HelpingHands", tags=["CEADAY21"])
    video["contentDetails"]["contentRating"] = {"ytRating": "ytAgeRestricted"}

    post = _walk(adapter)[0].posts[0]

    assert post.url == f"https://www.youtube.com/watch?v={video['id']}"
    assert post.hashtags == ("ceaday21", "helpinghands")
    assert post.text == "Assembly #CEADAY21\n\nMore #HelpingHands"
    assert post.author.name == "Northtown Academy"
    assert post.author.url == "https://www.youtube.com/channel/UCuAXFkgsw1L7xaCfnd5JJOw"
    assert (post.engagement.likes, post.engagement.replies, post.engagement.views) == (87, 12, 1532)
    assert post.sensitive and post.media[0].sensitive
    assert post.media[0].url.endswith(f"{video['id']}/maxresdefault.jpg")
    assert post.media[0].preview_url and post.media[0].preview_url.endswith("mqdefault.jpg")
    assert (post.media[0].width, post.media[0].height) == (1280, 720)
    assert post.created_at.tzinfo is not None


def test_a_publication_time_in_the_future_does_not_blind_later_polls(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    youtube.add("From the future #CEADAY21", published_at=datetime(2100, 1, 1, tzinfo=UTC))
    cursor = _walk(adapter)[-1].cursor
    youtube.clock = datetime.now(UTC) - timedelta(minutes=5)
    fresh = youtube.add("Published just now #CEADAY21")

    pages = _walk(adapter, cursor)

    assert [p.external_id for page in pages for p in page.posts] == [fresh["id"]]


def test_duplicate_ids_across_pages_are_read_once(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    videos = youtube.add_many(60)
    # Same publication time for a run of videos: a page boundary may repeat one.
    for video in videos[40:60]:
        video["snippet"]["publishedAt"] = videos[40]["snippet"]["publishedAt"]

    ids = [p.external_id for page in _walk(adapter) for p in page.posts]

    assert len(ids) == len(set(ids)) == 60


def test_an_unreadable_cursor_is_a_first_poll(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    youtube.add_many(2)
    junk = ("{", "[]", json.dumps({"newest": "yesterday"}), json.dumps({"newest": "0001-01-01"}))
    for cursor in junk:
        assert sum(len(p.posts) for p in _walk(adapter, cursor)) == 2


# -- refresh and backfill --------------------------------------------------------------------


def test_refresh_updates_counts_detects_edits_and_deletions(
    sqlite_engine: Engine, adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    kept, edited, gone = youtube.add_many(3)
    with Session(sqlite_engine) as session:
        record_posts(session=session, posts=[p for page in _walk(adapter) for p in page.posts])
        session.commit()
    kept["statistics"]["viewCount"] = "9000"
    edited["snippet"]["title"] = "New title #CEADAY21"
    youtube.delete(gone["id"])
    before = youtube.units

    result = adapter.refresh([kept["id"], edited["id"], gone["id"], "bad id!"])

    assert youtube.units - before == 1  # one videos.list for all
    assert result.deleted == (gone["id"],)
    with Session(sqlite_engine) as session:
        outcome = record_posts(session=session, posts=result.posts)
        session.commit()
    assert (outcome.updated, outcome.edited) == (1, 1)


def test_backfill_resumes_from_the_oldest_video_reached(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    youtube.clock = datetime.now(UTC) - timedelta(days=20)
    youtube.add_many(120)
    since = datetime.now(UTC) - timedelta(days=30)

    first = list(adapter.backfill(TAG, since=since, resume=None, max_pages=1))
    rest = list(adapter.backfill(TAG, since=since, resume=first[-1].cursor, max_pages=10))

    ids = [p.external_id for page in first + rest for p in page.posts]
    assert len(set(ids)) == 120
    assert len(ids) <= 121  # at most the boundary video again
    assert all(page.gap is None for page in rest)


# -- the normaliser never raises ------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_PATHS = [
    ("id",),
    ("snippet",),
    ("statistics",),
    ("contentDetails",),
    ("snippet", "publishedAt"),
    ("snippet", "title"),
    ("snippet", "description"),
    ("snippet", "tags"),
    ("snippet", "channelId"),
    ("snippet", "channelTitle"),
    ("snippet", "thumbnails"),
    ("statistics", "likeCount"),
    ("contentDetails", "contentRating"),
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(_PATHS), value=_JSON, drop=st.booleans())
def test_any_json_in_any_field_gives_a_post_or_a_skipped_reason(
    path: tuple[str, ...], value: Any, drop: bool
) -> None:
    item = fixture("videos_list.json")["items"][0]
    parent = item
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value

    posts, skipped = normalise_all([item])

    assert len(posts) + len(skipped) == 1


# -- subscriber counts (potential reach) -------------------------------------------------------


def test_subscriber_counts_are_looked_up_by_channel_50_a_unit(
    adapter: YouTubeAdapter, youtube: FakeYouTube
) -> None:
    """The handle is the channel's title; its id comes from the address held. Hidden
    and unknown counts, and handles without a channel address, are left out."""
    channels = {f"Channel {i}": f"UCchannel{i:04d}" for i in range(60)}
    youtube.subscribers |= {cid: 100 + i for i, cid in enumerate(channels.values())}
    youtube.subscribers["UCchannel0003"] = None  # hidden by its owner
    del youtube.subscribers["UCchannel0004"]  # unknown to YouTube
    urls = {title: f"https://www.youtube.com/channel/{cid}" for title, cid in channels.items()}
    urls["Elsewhere"] = "https://example.org/channel/UCchannel0005"
    before = youtube.units

    counts = adapter.follower_counts([*channels, "Elsewhere", "No address"], urls)

    assert [len(ids) for ids in youtube.channel_calls] == [50, 10]
    assert youtube.units - before == 2 == adapter.quota.spent
    assert counts == {title: 100 + i for i, title in enumerate(channels) if i not in (3, 4)}


def test_subscriber_lookups_come_out_of_the_refresh_reserve(
    youtube: FakeYouTube, client: HttpClient
) -> None:
    """Searches stop at their budget; the lookups (like refresh) still have theirs."""
    adapter = _adapter(youtube, client, YOUTUBE_DAILY_QUOTA="1000")  # 900 for searches
    adapter.quota.spend(900, limit=900, what="search.list")
    url = "https://www.youtube.com/channel/UCuAXFkgsw1L7xaCfnd5JJOw"
    assert adapter.follower_counts(["Northtown Academy"], {"Northtown Academy": url}) == {
        "Northtown Academy": 12300
    }
    adapter.quota.spend(99, limit=1000, what="videos.list")
    with pytest.raises(RateLimited, match="daily quota budget reached"):
        adapter.follower_counts(["Northtown Academy"], {"Northtown Academy": url})


def test_a_poll_stores_the_channels_subscribers_for_reach(
    engine: Engine, settings_for: Callable[..., Settings], youtube: FakeYouTube
) -> None:
    youtube.clock = datetime.now(UTC) - timedelta(hours=1)  # authors of the last day are due
    youtube.add_many(3)
    assert poll_all(engine=engine, settings=settings_for())[0].ok
    with Session(engine) as session:
        (platform,) = compute_reach(
            session, datetime.now(UTC) - timedelta(days=3), datetime.now(UTC) + timedelta(hours=1)
        ).platforms
    assert (platform.platform, platform.authors, platform.counted) == ("youtube", 1, 1)
    assert platform.reach == 12300
