"""The Reddit adapter against a local fake of the documented API, directly and through polling."""

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

from adapters import reddit as reddit_module
from adapters.base import (
    AuthFailed,
    ConfigError,
    MalformedResponse,
    Page,
    RateLimited,
    Target,
)
from adapters.http import HttpClient, RetryPolicy
from adapters.reddit import RedditAdapter, normalise_post, read_post
from monitor.config import Settings
from monitor.models import Post, Source
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.reddit import FakeReddit, fixture
from tests.fakes.server import FakeServer, Reply

TAG = Target("", ("CEADAY21",))
LONG_AGO = datetime.now(UTC) - timedelta(days=30)


@pytest.fixture(autouse=True)
def fresh_token_cache() -> Iterator[None]:
    """Tokens are cached per process; every test starts without one."""
    reddit_module._TOKENS.clear()
    yield
    reddit_module._TOKENS.clear()


@pytest.fixture
def reddit(fake_server: FakeServer) -> FakeReddit:
    return FakeReddit(fake_server)


@pytest.fixture
def http() -> Iterator[HttpClient]:
    client = HttpClient(RetryPolicy(timeout=1, attempts=3, backoff=0.01, max_retry_after=2))
    yield client
    client.close()


@pytest.fixture
def adapter(reddit: FakeReddit, http: HttpClient) -> RedditAdapter:
    return RedditAdapter(reddit.config(), http)


@pytest.fixture
def settings_for(configure: Callable[..., Settings], reddit: FakeReddit) -> Callable[..., Settings]:
    def build(**overrides: str) -> Settings:
        env = {"PLATFORMS": "reddit", "HASHTAGS": "CEADAY21", **reddit.config(), **overrides}
        return configure(**env)

    return build


def _pages(adapter: RedditAdapter, cursor: str | None = None, **kwargs: Any) -> list[Page]:
    options = {"since": LONG_AGO, "max_pages": 50, **kwargs}
    return list(adapter.search(TAG, cursor, **options))


def _ids(pages: list[Page]) -> list[str]:
    return [post.external_id for page in pages for post in page.posts]


def _stored(engine: Engine) -> list[Post]:
    with Session(engine) as session:
        return list(session.exec(select(Post).where(Post.platform == "reddit")))


def _source(engine: Engine, platform: str = "reddit") -> Source:
    with Session(engine) as session:
        return next(
            s
            for s in session.exec(select(Source).where(Source.platform == platform))
            if s.scope != "*"
        )


# --- the pipeline --------------------------------------------------------------


def test_poll_pages_back_then_fetches_only_new_posts(
    engine: Engine, reddit: FakeReddit, settings_for: Callable[..., Settings]
) -> None:
    reddit.add_many(150)
    reddit.add("Mentions CEADAY21 but no hashtag")
    reddit.add("Look-alike tag #CEADAY21X")
    settings = settings_for()

    first = poll_all(engine=engine, settings=settings)

    assert [s.ok for s in first] == [True], first
    assert first[0].new == 150 and first[0].pages == 2
    assert reddit.tokens_issued == 1

    reddit.add_many(3)
    before = reddit.server.hits("/search")
    second = poll_all(engine=engine, settings=settings)

    assert second[0].new == 3 and second[0].fetched == 3
    assert reddit.server.hits("/search") - before == 1
    assert len(_stored(engine)) == 153

    before = reddit.server.hits()
    idle = poll_all(engine=engine, settings=settings)
    assert idle[0].fetched == 0 and idle[0].requests == 1
    assert reddit.server.hits() - before == 1  # the token is cached: one search, nothing else


def test_wrong_secret_fails_reddit_only_and_names_the_keys(
    sqlite_engine: Engine,
    reddit: FakeReddit,
    settings_for: Callable[..., Settings],
    fake_server: FakeServer,
) -> None:
    mastodon = FakeMastodon(fake_server)
    mastodon.add()
    reddit.add()
    settings = settings_for(
        PLATFORMS="reddit,mastodon",
        MASTODON_INSTANCES=mastodon.url,
        REDDIT_CLIENT_SECRET="not-the-secret",
    )

    summaries = {s.platform: s for s in poll_all(engine=sqlite_engine, settings=settings)}

    assert summaries["mastodon"].ok and summaries["mastodon"].new == 1
    assert not summaries["reddit"].ok
    assert "REDDIT_CLIENT_SECRET" in (summaries["reddit"].error or "")
    assert "prefs/apps" in (summaries["reddit"].error or "")
    assert "REDDIT_CLIENT_SECRET" in (_source(sqlite_engine).last_error or "")


def test_missing_credentials_disable_the_source_with_a_reason(
    sqlite_engine: Engine, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(REDDIT_CLIENT_SECRET="", REDDIT_USER_AGENT="")

    [summary] = poll_all(engine=sqlite_engine, settings=settings)

    assert not summary.ok
    assert "REDDIT_CLIENT_SECRET" in (summary.error or "")
    assert "REDDIT_USER_AGENT" in (summary.error or "")


def test_expired_token_is_renewed_once(adapter: RedditAdapter, reddit: FakeReddit) -> None:
    reddit.add()
    _pages(adapter)
    reddit.revoke_tokens()
    reddit.add("Another #CEADAY21")

    pages = _pages(adapter)

    assert len(_ids(pages)) == 2
    assert reddit.tokens_issued == 2


def test_token_revoked_for_good_is_an_auth_failure(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    reddit.add()
    _pages(adapter)
    reddit.revoke_tokens()
    reddit.client_secret = "rotated"

    with pytest.raises(AuthFailed, match="REDDIT_CLIENT_SECRET"):
        _pages(adapter)


@pytest.mark.parametrize(
    ("expires_in", "still_valid_after", "renewed_after"),
    [
        (86400, 86000, 86350),
        (30, 14, 16),
        ("soon", 3500, 3550),
        (-5, 3500, 3550),
        (10**400, 3500, 3550),
        (None, 3500, 3550),
    ],
)
def test_token_is_reused_until_shortly_before_it_expires(
    adapter: RedditAdapter,
    reddit: FakeReddit,
    monkeypatch: pytest.MonkeyPatch,
    expires_in: Any,
    still_valid_after: float,
    renewed_after: float,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(reddit_module, "_clock", lambda: now[0])
    reddit.expires_in = expires_in
    reddit.add()
    _pages(adapter)
    now[0] += still_valid_after
    _pages(adapter)
    assert reddit.tokens_issued == 1
    now[0] += renewed_after - still_valid_after
    _pages(adapter)
    assert reddit.tokens_issued == 2


def test_generic_user_agent_refusal_is_explained(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    reddit.server.fail("status", status=403, path="/search")
    with pytest.raises(AuthFailed, match="REDDIT_USER_AGENT"):
        _pages(adapter)


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        ({"error": "invalid_grant"}, AuthFailed, "invalid_grant"),
        ({"token_type": "bearer"}, MalformedResponse, "no access_token"),
        ({"access_token": "abc\r\nX-Evil: 1"}, MalformedResponse, "no access_token"),
        (["token"], MalformedResponse, "JSON object"),
    ],
)
def test_odd_token_answers_are_clear_errors(
    adapter: RedditAdapter, reddit: FakeReddit, body: Any, error: type[Exception], message: str
) -> None:
    reddit.answer_with("POST", "/api/v1/access_token", Reply.json(body))
    with pytest.raises(error, match=message):
        _pages(adapter)


def test_429_with_reset_header_sets_retry_time(
    sqlite_engine: Engine, reddit: FakeReddit, settings_for: Callable[..., Settings]
) -> None:
    reddit.add()
    reddit.server.fail("status", status=429, headers={"X-Ratelimit-Reset": "540"}, path="/search")

    [summary] = poll_all(engine=sqlite_engine, settings=settings_for())

    assert not summary.ok and "rate limited" in (summary.error or "")
    retry_at = _source(sqlite_engine).retry_at
    assert retry_at is not None
    assert retry_at.replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(minutes=8)


def test_quota_used_up_stops_before_the_next_request_keeping_the_page(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    reddit.add_many(150)
    reddit.remaining = 1  # the first search spends the last request of the window
    reddit.reset_seconds = 400

    pages = adapter.search(TAG, None, since=LONG_AGO, max_pages=50)
    first = next(pages)
    assert len(first.posts) == 100
    with pytest.raises(RateLimited, match="X-Ratelimit-Remaining") as caught:
        next(pages)
    assert caught.value.retry_at is not None
    assert reddit.server.hits("/search") == 1


def test_short_quota_reset_waits_and_carries_on(adapter: RedditAdapter, reddit: FakeReddit) -> None:
    reddit.add_many(150)
    reddit.remaining = 1
    reddit.reset_seconds = 0

    assert len(_ids(_pages(adapter))) == 150


def test_truncated_json_fails_the_poll_and_keeps_the_cursor(
    sqlite_engine: Engine, reddit: FakeReddit, settings_for: Callable[..., Settings]
) -> None:
    reddit.add()
    settings = settings_for()
    poll_all(engine=sqlite_engine, settings=settings)
    cursor = _source(sqlite_engine).cursor
    reddit.add("New #CEADAY21")
    reddit.server.fail("truncate", path="/search")

    [summary] = poll_all(engine=sqlite_engine, settings=settings)

    assert not summary.ok and "not valid JSON" in (summary.error or "")
    assert _source(sqlite_engine).cursor == cursor
    [again] = poll_all(engine=sqlite_engine, settings=settings)
    assert again.ok and again.new == 1


def test_a_body_that_is_not_a_listing_is_malformed(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    reddit.answer_with("GET", "/search", Reply.json([1, 2]))
    with pytest.raises(MalformedResponse, match="Listing"):
        _pages(adapter)


# --- records ----------------------------------------------------------------------


def test_missing_null_and_wrong_fields_are_skipped_with_reasons(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    good = reddit.add()
    reddit.add(created_utc=None)
    reddit.add(author=None)
    reddit.add(created_utc="yesterday")
    reddit.add(title=None, selftext=None)
    reddit.add(ups="many", num_comments=-3, preview="x", edited="sometimes", over_18="yes")
    reddit.add(id=None)

    [page] = _pages(adapter)

    ids = [post.external_id for post in page.posts]
    assert good["id"] in ids and len(ids) == 2
    odd = next(post for post in page.posts if post.external_id != good["id"])
    assert odd.engagement.likes == 42  # falls back to score
    assert odd.engagement.replies is None and odd.media == () and not odd.sensitive
    reasons = " | ".join(page.skipped)
    assert "created_utc" in reasons and "no author" in reasons and "no usable id" in reasons


def test_duplicates_across_pages_are_yielded_once(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    reddit.add_many(100)
    pages = adapter.search(TAG, None, since=LONG_AGO, max_pages=50)
    first = next(pages)
    reddit.add_many(5)  # the listing shifts: page two starts with five repeats

    rest = list(pages)

    ids = [p.external_id for p in first.posts] + _ids(rest)
    assert len(ids) == len(set(ids)) == 100


def test_html_and_script_are_sanitised(adapter: RedditAdapter, reddit: FakeReddit) -> None:
    reddit.add(
        "<b>Bold</b> title #CEADAY21",
        "hello",
        selftext_html=(
            '&lt;div class="md"&gt;&lt;p&gt;hi&lt;script&gt;alert(1)&lt;/script&gt;'
            '&lt;a href="javascript:x()"&gt;x&lt;/a&gt;&lt;/p&gt;&lt;/div&gt;'
        ),
    )
    [post] = _ids_posts(_pages(adapter))

    assert "<script" not in post.html and "javascript:" not in post.html
    assert "&lt;b&gt;Bold&lt;/b&gt;" in post.html  # the title is text, shown as typed
    assert post.text.startswith("<b>Bold</b> title")


def _ids_posts(pages: list[Page]) -> list[Any]:
    return [post for page in pages for post in page.posts]


@pytest.mark.parametrize(
    ("configured", "text"),
    [
        ("CEADAY21", "Ends in emoji #CEADAY21🎉🎉"),
        ("مساعدة", "نص عربي #مساعدة من اليمين"),
        ("Café", "Combining accent #Cafe\u0301 here"),
        ("HelpingHands", "Fullwidth sign ＃ＨｅｌｐｉｎｇＨａｎｄｓ works"),
    ],
)
def test_unicode_hashtags_match(
    adapter: RedditAdapter, reddit: FakeReddit, configured: str, text: str
) -> None:
    reddit.add(text)
    target = Target("", (configured,))
    pages = list(adapter.search(target, None, since=LONG_AGO, max_pages=5))
    assert len(_ids(pages)) == 1


def test_media_from_gallery_image_and_preview() -> None:
    gallery = normalise_post(fixture("gallery_post.json")["data"])
    image = normalise_post(fixture("image_post.json")["data"])

    assert [m.kind for m in gallery.media] == ["image", "gif"]
    assert gallery.media[0].alt == "Volunteers at the start line"
    assert "&amp;" not in gallery.media[0].url and "&format=pjpg" in gallery.media[0].url
    assert gallery.sensitive and all(m.sensitive for m in gallery.media)
    assert gallery.content_warning == "spoiler"
    [picture] = image.media
    assert picture.url == "https://i.redd.it/k2mural9x1c61.jpg"
    assert picture.preview_url and "&s=" in picture.preview_url
    assert (picture.width, picture.height) == (3024, 4032)
    assert image.engagement.likes == 310 and image.engagement.replies == 12
    assert image.engagement.shares is None and image.engagement.views is None


def test_self_post_fixture_normalises() -> None:
    post = normalise_post(fixture("self_post.json")["data"])

    assert post.external_id == "1ab2cd" and post.ref == "t3_1ab2cd"
    assert post.hashtags == ("ceaday21", "helpinghands")
    assert post.created_at == datetime(2021, 3, 18, 9, 0, tzinfo=UTC)
    assert post.author.handle == "u/helping_hands_uk"
    assert post.url.startswith("https://www.reddit.com/r/unitedkingdom/comments/1ab2cd/")
    assert "<div" not in post.html and "SC_OFF" not in post.html


# --- cursors -----------------------------------------------------------------------


def test_walk_stops_by_time_when_the_cursor_post_is_deleted(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    old = reddit.add_many(250)
    cursor = _pages(adapter)[-1].cursor
    reddit.delete(old[-1]["id"])
    reddit.clock += timedelta(hours=1)
    new = reddit.add("After the gap #CEADAY21")

    before = reddit.server.hits("/search")
    pages = _pages(adapter, cursor)

    assert _ids(pages) == [new["id"]]
    assert reddit.server.hits("/search") - before == 1
    assert pages[-1].cursor is not None and pages[-1].gap is None


def test_late_indexed_post_inside_the_overlap_is_caught(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    reddit.add_many(3)
    cursor = _pages(adapter)[-1].cursor
    late = reddit.add("Indexed late #CEADAY21", created_at=reddit.clock - timedelta(minutes=5))

    assert _ids(_pages(adapter, cursor)) == [late["id"]]


def test_unreadable_cursor_rereads_the_look_back_and_says_so(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    reddit.add_many(2)
    for garbage in ("not json", '{"v": 2}', '{"v": 1, "t": "x", "ids": ""}', "[]"):
        pages = _pages(adapter, garbage)
        assert len(_ids(pages)) == 2
        assert "unreadable" in (pages[-1].gap or "")


def test_cursor_fits_the_column_on_a_busy_tag(adapter: RedditAdapter, reddit: FakeReddit) -> None:
    start = reddit.clock
    for i in range(120):  # 120 posts in one second: every id is inside the overlap
        reddit.add(f"Busy {i} #CEADAY21", created_at=start)
    cursor = _pages(adapter)[-1].cursor
    assert cursor is not None and len(cursor) <= 600
    assert json.loads(cursor)["v"] == 1


def test_max_pages_cut_is_reported_as_a_gap(adapter: RedditAdapter, reddit: FakeReddit) -> None:
    reddit.add_many(250)
    pages = _pages(adapter, max_pages=2)
    assert [p.cursor is None for p in pages] == [True, False]
    assert "stopped after 2 pages" in (pages[-1].gap or "")


def test_empty_search_keeps_no_cursor(adapter: RedditAdapter) -> None:
    [page] = _pages(adapter)
    assert page.posts == () and page.cursor is None and page.gap is None


# --- refresh and backfill ---------------------------------------------------------


def test_refresh_updates_detects_edits_and_deletions(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    kept, edited, removed, purged = reddit.add_many(4)
    kept["ups"], kept["num_comments"] = 99, 5
    reddit.edit(edited["id"], "Changed text")
    reddit.remove(removed["id"])
    reddit.delete(purged["id"])
    refs = [f"t3_{p['id']}" for p in (kept, edited, removed, purged)] + ["bogus"]

    result = adapter.refresh(refs)

    by_id = {post.external_id: post for post in result.posts}
    assert set(by_id) == {kept["id"], edited["id"]}
    assert by_id[kept["id"]].engagement.likes == 99
    assert by_id[kept["id"]].engagement.replies == 5
    assert by_id[edited["id"]].edited_at is not None
    assert "Changed text" in by_id[edited["id"]].text
    assert set(result.deleted) == {f"t3_{removed['id']}", f"t3_{purged['id']}"}
    assert result.skipped == ("'bogus' is not a Reddit post fullname",)


def test_refresh_keeps_a_post_whose_author_deleted_their_account(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    [orphan] = reddit.add_many(1)
    orphan["author"] = "[deleted]"  # the account is gone; removed_by_category stays null

    result = adapter.refresh([f"t3_{orphan['id']}"])

    assert [post.external_id for post in result.posts] == [orphan["id"]]
    assert result.deleted == ()


def test_refresh_asks_100_ids_a_call(adapter: RedditAdapter, reddit: FakeReddit) -> None:
    posts = reddit.add_many(150)
    result = adapter.refresh([f"t3_{p['id']}" for p in posts])
    assert len(result.posts) == 150
    assert reddit.server.hits("/api/info") == 2


def test_backfill_resumes_without_repeats(adapter: RedditAdapter, reddit: FakeReddit) -> None:
    reddit.add_many(250)
    first = list(adapter.backfill(TAG, since=LONG_AGO, resume=None, max_pages=1))
    rest = list(adapter.backfill(TAG, since=LONG_AGO, resume=first[-1].cursor, max_pages=50))

    ids = _ids(first) + _ids(rest)
    assert len(ids) == len(set(ids)) == 250
    assert rest[-1].gap is None
    assert list(adapter.backfill(TAG, since=LONG_AGO, resume=rest[-1].cursor, max_pages=5)) == []


def test_backfill_resume_at_a_deleted_post_restarts_by_time(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    posts = reddit.add_many(250)
    [first] = adapter.backfill(TAG, since=LONG_AGO, resume=None, max_pages=1)
    after = json.loads(first.cursor or "")["after"]
    reddit.delete(after.removeprefix("t3_"))  # Reddit now answers that `after` with nothing

    rest = list(adapter.backfill(TAG, since=LONG_AGO, resume=first.cursor, max_pages=50))

    ids = _ids([first]) + _ids(rest)
    assert set(ids) == {p["id"] for p in posts}
    assert len(ids) <= 251  # at most the one post sharing the boundary second comes twice


def test_backfill_reports_the_listing_depth_limit(
    adapter: RedditAdapter, reddit: FakeReddit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reddit_module, "LISTING_DEPTH", 120)
    reddit.add_many(130)
    pages = list(adapter.backfill(TAG, since=LONG_AGO, resume=None, max_pages=50))
    assert "at most about 120 results" in (pages[-1].gap or "")


# --- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"REDDIT_API_BASE": "ftp://x"}, "REDDIT_API_BASE"),
        ({"REDDIT_AUTH_BASE": "nonsense"}, "REDDIT_AUTH_BASE"),
        ({"REDDIT_USER_AGENT": "bot\r\nX-Injected: 1"}, "REDDIT_USER_AGENT"),
        ({"REDDIT_USER_AGENT": "bøt"}, "REDDIT_USER_AGENT"),
        ({"REDDIT_CLIENT_ID": " "}, "REDDIT_CLIENT_ID"),
    ],
)
def test_bad_configuration_names_the_key(
    reddit: FakeReddit, http: HttpClient, override: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        RedditAdapter(reddit.config(**override), http)


# --- property --------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = list(fixture("gallery_post.json")["data"]) + list(fixture("image_post.json")["data"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=12))
def test_any_json_in_any_field_gives_a_post_or_a_reason(overrides: dict[str, Any]) -> None:
    data = {**fixture("gallery_post.json")["data"], **overrides}
    post, reason = read_post(data)
    assert post is not None or reason is not None or reddit_module.is_removed(data)
    if post is not None:
        assert post.created_at.tzinfo is not None
        assert all(m.url.startswith(("http://", "https://")) for m in post.media)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_any_listing_child_gives_a_post_or_a_reason(child: Any) -> None:
    data, _, fullname, problem = reddit_module._identify(child)
    if problem is None:
        post, reason = read_post(data)
        assert fullname.startswith("t3_")
        assert post is not None or reason is not None or reddit_module.is_removed(data)
    else:
        assert isinstance(problem, str) and problem


def test_a_listing_entry_that_is_not_a_post_is_skipped(
    adapter: RedditAdapter, reddit: FakeReddit
) -> None:
    good = reddit.add()
    listing = {
        "kind": "Listing",
        "data": {
            "after": None,
            "children": [
                {"kind": "t1", "data": {"id": "c1"}},
                "junk",
                {"kind": "t3", "data": good},
                {"kind": "t3", "data": {**good, "id": "NOT base36!"}},
            ],
        },
    }
    reddit.answer_with("GET", "/search", Reply.json(listing))
    [page] = _pages(adapter)
    assert _ids([page]) == [good["id"]]
    assert page.skipped == (
        "a listing entry is not a post (kind t3)",
        "a listing entry is not a post (kind t3)",
        "a post has no usable id",
    )


def test_refresh_through_the_pipeline_marks_removed_and_edited(
    sqlite_engine: Engine, reddit: FakeReddit, settings_for: Callable[..., Settings]
) -> None:
    kept, edited, removed = reddit.add_many(3)
    settings = settings_for()
    poll_all(engine=sqlite_engine, settings=settings)
    kept["ups"] = 1234
    reddit.edit(edited["id"], "Now with different words")
    reddit.remove(removed["id"])

    [summary] = refresh_all(engine=sqlite_engine, settings=settings)

    assert summary.ok and summary.checked == 3, summary
    assert summary.removed == 1 and summary.edited == 1
    by_id = {post.external_id: post for post in _stored(sqlite_engine)}
    assert by_id[removed["id"]].status == "removed"
    assert by_id[kept["id"]].likes == 1234
    assert "different words" in by_id[edited["id"]].text
