"""The Bluesky adapter against a local PDS/AppView speaking the documented XRPC methods."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters import bluesky as bluesky_module
from adapters.base import AuthFailed, ConfigError, CredentialCache, Target, UnreadableRecord
from adapters.bluesky import BlueskyAdapter, normalise_post
from adapters.http import HttpClient, RetryPolicy
from monitor.config import Settings
from monitor.models import MediaItem, Post, PostHashtag, PostStatus, Source
from monitor.services.backfill import backfill_target
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from tests.fakes.bluesky import APP_PASSWORD, HANDLE, FakeBluesky, fixture
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FakeServer

SEARCH = "/xrpc/app.bsky.feed.searchPosts"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions live for the process; a test must not meet one from a server on a reused port."""
    monkeypatch.setattr(bluesky_module, "_SESSIONS", CredentialCache())
    monkeypatch.setattr(bluesky_module, "_REFUSED", {})


@pytest.fixture
def bluesky(fake_server: FakeServer) -> FakeBluesky:
    return FakeBluesky(fake_server)


@pytest.fixture
def settings_for(
    configure: Callable[..., Settings], bluesky: FakeBluesky
) -> Callable[..., Settings]:
    def build(**env: str) -> Settings:
        values = {
            "PLATFORMS": "bluesky",
            "BLUESKY_API_BASE": bluesky.url,
            "BLUESKY_HANDLE": HANDLE,
            "BLUESKY_APP_PASSWORD": APP_PASSWORD,
            "HASHTAGS": "CEADAY21,HelpingHands",
        }
        return configure(**{**values, **env})

    return build


@pytest.fixture
def adapter(bluesky: FakeBluesky) -> Iterator[BlueskyAdapter]:
    config = {
        "BLUESKY_API_BASE": bluesky.url,
        "BLUESKY_HANDLE": HANDLE,
        "BLUESKY_APP_PASSWORD": APP_PASSWORD,
    }
    with HttpClient(RetryPolicy(timeout=1, attempts=2, backoff=0.001)) as http:
        yield BlueskyAdapter(config, http)


def _posts(engine: Engine) -> list[Post]:
    with Session(engine) as session:
        return list(session.exec(select(Post).order_by(Post.created_at)))


def _source(engine: Engine, tag: str = "CEADAY21") -> Source:
    with Session(engine) as session:
        return session.exec(select(Source).where(Source.key == f"bluesky:|{tag}")).one()


def _view(**overrides: Any) -> dict[str, Any]:
    view = fixture("post_view.json")
    view.update(overrides)
    return view


# --- normalising ------------------------------------------------------------------


def test_normalise_maps_the_documented_post_view() -> None:
    post = normalise_post(_view())

    assert post.external_id == (
        "at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3l6oveex3ii2l"
    )
    assert post.url == "https://bsky.app/profile/bsky.app/post/3l6oveex3ii2l"
    assert post.author.handle == "@bsky.app" and post.author.name == "Bluesky"
    assert post.created_at == datetime(2024, 10, 10, 17, 0, 21, 101000, tzinfo=UTC)
    assert post.hashtags == ("ceaday21",)
    assert post.engagement.likes == 208 and post.engagement.shares == 41
    assert post.engagement.replies == 12 and post.engagement.quotes == 3
    assert post.engagement.views is None
    [image] = post.media
    assert image.alt == "Two hands painted with the campaign logo"
    assert image.url.startswith("https://cdn.bsky.app/img/feed_fullsize/")
    assert (image.width, image.height) == (1920, 1080)
    assert '<a href="https://bsky.app/hashtag/CEADAY21"' in post.html
    assert 'href="https://example.org/campaign"' in post.html
    assert not post.sensitive


def test_facet_byte_offsets_survive_emoji_rtl_and_combining_marks() -> None:
    text = "🙌🏽 نحن هنا #CEADAY21 and #Cafe\u0301 #HelpingHandsX"
    record = dict(fixture("post_view.json")["record"], text=text)
    record["facets"] = FakeBluesky.tag_facets(text)
    post = normalise_post(_view(record=record))

    assert '<a href="https://bsky.app/hashtag/CEADAY21"' in post.html
    assert ">#CEADAY21</a>" in post.html  # the link covers exactly the tag, not a byte off
    assert "🙌🏽 نحن هنا" in post.html
    assert post.hashtags[:2] == ("ceaday21", "café")
    assert "helpinghands" not in post.hashtags and "helpinghandsx" in post.hashtags


def test_facets_out_of_range_or_inside_a_character_are_not_linked() -> None:
    text = "🙌 #CEADAY21"
    record = dict(fixture("post_view.json")["record"], text=text)
    tag = [{"$type": "app.bsky.richtext.facet#tag", "tag": "CEADAY21"}]
    record["facets"] = [
        {"index": {"byteStart": 1, "byteEnd": 3}, "features": tag},  # inside the emoji
        {"index": {"byteStart": 5, "byteEnd": 500}, "features": tag},  # past the end
        {"index": {"byteStart": "x", "byteEnd": None}, "features": tag},
        {"index": None, "features": "nope"},
        "garbage",
    ]
    post = normalise_post(_view(record=record))

    assert "<a" not in post.html and "🙌 #CEADAY21" in post.html
    assert post.hashtags == ("ceaday21",)


def test_html_and_scripts_in_text_are_escaped_and_bad_links_dropped() -> None:
    text = "<script>alert(1)</script> <img src=x onerror=alert(2)> #CEADAY21 click"
    record = dict(fixture("post_view.json")["record"], text=text)
    start = len(text.encode()) - len("click")
    record["facets"] = FakeBluesky.tag_facets(text) + [
        {
            "index": {"byteStart": start, "byteEnd": start + 5},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "javascript:alert(3)"}],
        }
    ]
    post = normalise_post(_view(record=record))

    assert "<script" not in post.html and "<img" not in post.html
    assert "&lt;script&gt;" in post.html
    assert "javascript" not in post.html
    assert post.text == text  # plain text keeps what was written; templates escape it


def test_moderation_labels_make_the_post_and_its_media_sensitive() -> None:
    labelled = normalise_post(_view(labels=[{"val": "graphic-media", "src": "did:plc:x"}]))
    self_labelled = normalise_post(
        _view(
            record=dict(
                fixture("post_view.json")["record"],
                labels={"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "porn"}]},
            )
        )
    )
    negated = normalise_post(
        _view(labels=[{"val": "nudity"}, {"val": "nudity", "neg": True}, {"val": "harmless"}])
    )

    assert labelled.sensitive and labelled.media[0].sensitive
    assert labelled.content_warning == "Labelled: graphic-media"
    assert self_labelled.sensitive
    assert not negated.sensitive and negated.content_warning is None


def test_quote_with_media_video_and_gallery_embeds_keep_alt_text() -> None:
    image_view = fixture("post_view.json")["embed"]
    quote = normalise_post(
        _view(
            embed={
                "$type": "app.bsky.embed.recordWithMedia#view",
                "record": {"record": {}},
                "media": image_view,
            }
        )
    )
    video = normalise_post(
        _view(
            embed={
                "$type": "app.bsky.embed.video#view",
                "cid": "bafyvideo",
                "playlist": "https://video.bsky.app/watch/x/playlist.m3u8",
                "thumbnail": "https://video.bsky.app/watch/x/thumbnail.jpg",
                "alt": "A march",
                "presentation": "gif",
            }
        )
    )
    gallery = normalise_post(
        _view(
            embed={
                "$type": "app.bsky.embed.gallery#view",
                "items": [
                    {
                        "$type": "app.bsky.embed.gallery#viewImage",
                        "thumbnail": "https://cdn.bsky.app/t.jpg",
                        "fullsize": "https://cdn.bsky.app/f.jpg",
                        "alt": "Gallery alt",
                        "aspectRatio": {"width": 4, "height": 3},
                    },
                    {"fullsize": "javascript:alert(1)", "alt": "dropped"},
                ],
            }
        )
    )

    assert quote.media[0].alt == "Two hands painted with the campaign logo"
    assert video.media[0].kind == "gif" and video.media[0].alt == "A march"
    assert video.media[0].key == "bafyvideo"
    assert [m.alt for m in gallery.media] == ["Gallery alt"]


def test_missing_null_and_wrongly_typed_fields() -> None:
    odd = normalise_post(
        _view(
            likeCount="many",
            repostCount=-1,
            replyCount=None,
            author={"did": "did:plc:abc", "handle": "<b>evil</b>", "displayName": 42},
            record={"text": 7, "createdAt": "yesterday", "facets": {"not": "a list"}},
            embed="image",
            labels="porn",
        )
    )
    assert odd.engagement.likes is None and odd.engagement.shares is None
    assert odd.author.handle == "@did:plc:abc" and odd.author.name == "did:plc:abc"
    assert odd.created_at == datetime(2024, 10, 10, 17, 0, 22, 532000, tzinfo=UTC)
    assert odd.text == "" and odd.media == () and not odd.sensitive

    for broken, reason in [
        (_view(uri="https://bsky.app/x"), "uri"),
        (_view(uri=None), "uri"),
        (_view(record=None), "record"),
        (_view(author=[]), "author"),
        (_view(indexedAt=None, record={"createdAt": None}), "createdAt"),
    ]:
        with pytest.raises(UnreadableRecord, match=reason):
            normalise_post(broken)


def test_created_at_in_the_future_is_clamped_to_indexed_at() -> None:
    record = dict(fixture("post_view.json")["record"], createdAt="2999-01-01T00:00:00Z")
    post = normalise_post(_view(record=record))
    assert post.created_at == datetime(2024, 10, 10, 17, 0, 22, 532000, tzinfo=UTC)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(
        [
            "uri",
            "record",
            "author",
            "embed",
            "labels",
            "likeCount",
            "indexedAt",
            "text",
            "facets",
            "createdAt",
            "tags",
            "handle",
        ]
    ),
    value=_json,
)
def test_any_json_in_any_field_gives_a_post_or_a_reason(field: str, value: Any) -> None:
    view = fixture("post_view.json")
    if field in ("text", "facets", "createdAt", "tags"):
        view["record"][field] = value
    elif field == "handle":
        view["author"][field] = value
    else:
        view[field] = value
    try:
        post = normalise_post(view)
    except UnreadableRecord as exc:
        assert str(exc)
    else:
        assert post.created_at.tzinfo is not None and "<script" not in post.html


# --- configuration ----------------------------------------------------------------


def test_config_errors_name_the_key() -> None:
    http = HttpClient()
    base = {"BLUESKY_HANDLE": HANDLE, "BLUESKY_APP_PASSWORD": APP_PASSWORD}
    with pytest.raises(ConfigError, match="BLUESKY_APP_PASSWORD"):
        BlueskyAdapter({"BLUESKY_HANDLE": HANDLE}, http)
    with pytest.raises(ConfigError, match="BLUESKY_HANDLE"):
        BlueskyAdapter({**base, "BLUESKY_HANDLE": "my name"}, http)
    with pytest.raises(ConfigError, match="BLUESKY_API_BASE"):
        BlueskyAdapter({**base, "BLUESKY_API_BASE": "ftp://bsky.social"}, http)
    assert BlueskyAdapter(base, http).base == "https://bsky.social"
    http.close()


# --- polling through the pipeline ---------------------------------------------------


def test_poll_stores_tagged_posts_once_with_media_and_labels(
    engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    both = bluesky.add("Both #CEADAY21 #HelpingHands", images=2, labels=("graphic-media",))
    bluesky.add_many(120)
    bluesky.add("Only mentions CEADAY21 without a hashtag")
    bluesky.add("Hijacked lookalike #CEADAY21X")

    summaries = poll_all(engine=engine, settings=settings_for())

    assert all(s.ok for s in summaries), summaries
    posts = _posts(engine)
    assert len(posts) == 121
    with Session(engine) as session:
        stored = session.exec(select(Post).where(Post.external_id == both["uri"])).one()
        tags = set(session.exec(select(PostHashtag.tag).where(PostHashtag.post_id == stored.id)))
        media = list(session.exec(select(MediaItem).where(MediaItem.post_id == stored.id)))
    assert tags == {"ceaday21", "helpinghands"}
    assert stored.sensitive and [m.alt for m in media] == ["Image 0 alt", "Image 1 alt"]
    assert bluesky.logins == 1


def test_later_polls_fetch_only_new_posts_with_one_request_when_idle(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    settings = settings_for(HASHTAGS="CEADAY21")
    bluesky.add_many(5)
    poll_all(engine=sqlite_engine, settings=settings)
    bluesky.add_many(3)

    second = poll_all(engine=sqlite_engine, settings=settings)[0]
    before = bluesky.server.hits(SEARCH)
    idle = poll_all(engine=sqlite_engine, settings=settings)[0]

    assert second.ok and second.new == 3
    assert idle.ok and idle.new == 0 and idle.requests == 1
    assert bluesky.server.hits(SEARCH) - before == 1
    assert len(_posts(sqlite_engine)) == 8
    assert bluesky.logins == 1  # one session for the whole process, not one per poll
    since = bluesky.server.requests[-1].arg("since")
    assert since is not None and since.endswith("Z")


def test_walk_cut_short_by_max_pages_resumes_from_the_stored_cursor(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    settings = settings_for(HASHTAGS="CEADAY21", POLL_MAX_PAGES="2")
    bluesky.add_many(250)

    first = poll_all(engine=sqlite_engine, settings=settings)[0]
    assert first.ok and first.new == 200 and first.gap is None
    assert '"upper"' in (_source(sqlite_engine).cursor or "")
    bluesky.add_many(2)

    second = poll_all(engine=sqlite_engine, settings=settings)[0]

    assert second.ok and second.new == 52 and second.gap is None
    assert len(_posts(sqlite_engine)) == 252
    assert '"upper"' not in (_source(sqlite_engine).cursor or "")


def test_posts_repeated_across_pages_are_stored_once(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    bluesky.add_many(150)
    original = bluesky._search

    def search_while_people_post(request: Any) -> Any:
        reply = original(request)
        if request.arg("cursor") is None:
            bluesky.add_many(7)  # offsets shift: the next page repeats 7 posts
        return reply

    bluesky.server.routes = [
        (m, p, search_while_people_post if h == original else h)
        for m, p, h in bluesky.server.routes
    ]
    summary = poll_all(engine=sqlite_engine, settings=settings_for(HASHTAGS="CEADAY21"))[0]

    assert summary.ok and summary.new == 150
    again = poll_all(engine=sqlite_engine, settings=settings_for(HASHTAGS="CEADAY21"))[0]
    assert again.ok and again.new == 7
    assert len(_posts(sqlite_engine)) == 157


def test_cursor_rejected_by_the_server_re_anchors_on_until(
    adapter: BlueskyAdapter, bluesky: FakeBluesky
) -> None:
    bluesky.add_many(150)
    original = bluesky._search

    def bad_cursors(request: Any) -> Any:
        reply = original(request)
        return reply.__class__(
            reply.status, reply.body.replace(b'"cursor": "', b'"cursor": "x'), reply.headers
        )

    bluesky.server.routes = [
        (m, p, bad_cursors if h == original else h) for m, p, h in bluesky.server.routes
    ]
    pages = list(adapter.search(Target("", ("CEADAY21",)), None, since=LONG_AGO, max_pages=10))

    assert len({p.external_id for page in pages for p in page.posts}) == 150
    rejected = [r for r in bluesky.server.requests if (r.arg("cursor") or "").startswith("x")]
    assert rejected and bluesky.server.requests[-1].arg("until")


def test_unreadable_stored_cursor_restarts_with_a_gap_note(
    adapter: BlueskyAdapter, bluesky: FakeBluesky
) -> None:
    bluesky.add_many(3)
    pages = list(
        adapter.search(Target("", ("CEADAY21",)), "{not json", since=LONG_AGO, max_pages=5)
    )
    assert pages[0].gap and "unreadable" in pages[0].gap
    assert sum(len(p.posts) for p in pages) == 3


def test_unreadable_records_are_skipped_with_a_reason(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    bluesky.add_many(2)
    broken = bluesky.add("Broken #CEADAY21")
    broken["author"] = None

    summary = poll_all(engine=sqlite_engine, settings=settings_for(HASHTAGS="CEADAY21"))[0]

    assert summary.ok and summary.new == 2 and summary.skipped == 1


# --- credentials --------------------------------------------------------------------


def test_wrong_app_password_fails_bluesky_while_mastodon_keeps_working(
    sqlite_engine: Engine,
    settings_for: Callable[..., Settings],
    bluesky: FakeBluesky,
    mastodon: FakeMastodon,
) -> None:
    mastodon.add_many(2)
    bluesky.add_many(2)
    settings = settings_for(
        PLATFORMS="bluesky,mastodon",
        BLUESKY_APP_PASSWORD="wrong-pass-word-here",
        MASTODON_INSTANCES=mastodon.url,
        HASHTAGS="CEADAY21",
    )

    summaries = {s.platform: s for s in poll_all(engine=sqlite_engine, settings=settings)}

    assert not summaries["bluesky"].ok
    error = summaries["bluesky"].error or ""
    assert "BLUESKY_APP_PASSWORD" in error and "Invalid identifier or password" in error
    assert summaries["mastodon"].ok and summaries["mastodon"].new == 2
    assert "BLUESKY_APP_PASSWORD" in (_source(sqlite_engine).last_error or "")


def test_a_refused_login_is_not_retried_by_every_target_and_poll(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    settings = settings_for(BLUESKY_APP_PASSWORD="wrong-pass-word-here")
    first = poll_all(engine=sqlite_engine, settings=settings)
    second = poll_all(engine=sqlite_engine, settings=settings)

    assert [s.ok for s in first + second] == [False] * 4
    assert all("BLUESKY_APP_PASSWORD" in (s.error or "") for s in first + second)
    assert "not retried before" in (second[0].error or "")
    assert bluesky.server.hits("/xrpc/com.atproto.server.createSession") == 1

    fixed = poll_all(engine=sqlite_engine, settings=settings_for())
    assert all(s.ok for s in fixed) and bluesky.logins == 1


def test_missing_credentials_disable_the_source_with_a_reason(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(PLATFORMS="bluesky", HASHTAGS="CEADAY21")
    [summary] = poll_all(engine=sqlite_engine, settings=settings)
    assert not summary.ok and "BLUESKY_HANDLE" in (summary.error or "")


def test_expired_token_is_refreshed_once_for_concurrent_targets(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    settings = settings_for()
    bluesky.add_many(2)
    poll_all(engine=sqlite_engine, settings=settings)
    bluesky.expire_sessions()
    bluesky.add_many(2)

    summaries = poll_all(engine=sqlite_engine, settings=settings)

    assert all(s.ok for s in summaries) and sum(s.new for s in summaries) == 2
    assert bluesky.logins == 1 and bluesky.refreshes == 1


def test_refused_refresh_token_logs_in_again(adapter: BlueskyAdapter, bluesky: FakeBluesky) -> None:
    bluesky.add_many(1)
    target = Target("", ("CEADAY21",))
    list(adapter.search(target, None, since=LONG_AGO, max_pages=1))
    bluesky.expire_sessions()
    bluesky.refresh_tokens.clear()

    pages = list(adapter.search(target, None, since=LONG_AGO, max_pages=1))

    assert len(pages[0].posts) == 1 and bluesky.logins == 2


def test_session_revoked_mid_poll_is_an_auth_failure(
    adapter: BlueskyAdapter, bluesky: FakeBluesky
) -> None:
    bluesky.add_many(1)
    bluesky.server.fail("status", times=2, status=401, path=SEARCH)
    with pytest.raises(AuthFailed, match="BLUESKY_APP_PASSWORD"):
        list(adapter.search(Target("", ("CEADAY21",)), None, since=LONG_AGO, max_pages=1))


# --- HTTP faults ----------------------------------------------------------------------


def test_429_with_a_far_reset_marks_the_source_rate_limited(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    reset = str(int(time.time()) + 3600)
    bluesky.server.fail(
        "status",
        status=429,
        path=SEARCH,
        headers={"RateLimit-Remaining": "0", "RateLimit-Reset": reset},
    )
    summary = poll_all(engine=sqlite_engine, settings=settings_for(HASHTAGS="CEADAY21"))[0]

    assert not summary.ok and "rate limited until" in (summary.error or "")
    retry_at = _source(sqlite_engine).retry_at
    assert retry_at is not None
    assert retry_at.replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(minutes=55)


def test_429_with_a_near_reset_waits_and_carries_on(
    adapter: BlueskyAdapter, bluesky: FakeBluesky
) -> None:
    bluesky.add_many(2)
    bluesky.server.fail(
        "status", status=429, path=SEARCH, headers={"RateLimit-Reset": str(int(time.time()))}
    )
    pages = list(adapter.search(Target("", ("CEADAY21",)), None, since=LONG_AGO, max_pages=2))
    assert sum(len(p.posts) for p in pages) == 2


def test_spent_request_budget_stops_after_the_page_and_resumes(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    settings = settings_for(HASHTAGS="CEADAY21")
    bluesky.add_many(150)
    bluesky.remaining = 0

    first = poll_all(engine=sqlite_engine, settings=settings)[0]
    assert not first.ok and first.new == 100 and "budget spent" in (first.error or "")
    assert _source(sqlite_engine).retry_at is not None

    bluesky.remaining = 100
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
        ("hang", {"seconds": 1.5}, "no answer within"),
        ("reset", {}, "connection failed"),
        ("truncate", {}, "not valid JSON"),
        ("garbage", {}, "not valid JSON"),
    ],
)
def test_platform_faults_fail_the_poll_with_a_clear_reason(
    sqlite_engine: Engine,
    settings_for: Callable[..., Settings],
    bluesky: FakeBluesky,
    fault: str,
    options: dict[str, Any],
    message: str,
) -> None:
    bluesky.add_many(2)
    bluesky.server.fail(fault, path=SEARCH, **options)

    # One attempt only: retrying is tested on its own, this is about the message.
    settings = settings_for(HASHTAGS="CEADAY21", HTTP_RETRIES="0")
    summary = poll_all(engine=sqlite_engine, settings=settings)[0]

    assert not summary.ok and message in (summary.error or "")
    assert _source(sqlite_engine).cursor is None
    assert poll_all(engine=sqlite_engine, settings=settings_for(HASHTAGS="CEADAY21"))[0].new == 2


# --- refresh and backfill ---------------------------------------------------------------


def test_refresh_updates_engagement_detects_edits_and_deletions(
    engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    settings = settings_for(HASHTAGS="CEADAY21")
    now = datetime.now(UTC)
    views = bluesky.add_many(30, created_at=now - timedelta(hours=1))
    poll_all(engine=engine, settings=settings)
    views[0]["likeCount"] = 40
    views[1]["record"]["text"] = "Changed at source #CEADAY21"
    bluesky.delete(views[2]["uri"])
    with Session(engine) as session:
        edited = session.exec(select(Post).where(Post.external_id == views[1]["uri"])).one()
        edited.status = PostStatus.APPROVED
        session.add(edited)
        session.commit()

    [summary] = refresh_all(engine=engine, settings=settings)

    assert summary.ok and summary.checked == 30
    assert summary.removed == 1 and summary.edited == 1 and summary.updated >= 1
    assert bluesky.server.hits("/xrpc/app.bsky.feed.getPosts") == 2  # 25 + 5
    by_uri = {p.external_id: p for p in _posts(engine)}
    assert by_uri[views[0]["uri"]].likes == 40
    assert by_uri[views[1]["uri"]].status == PostStatus.PENDING
    assert by_uri[views[2]["uri"]].status == PostStatus.REMOVED


def test_refresh_ignores_posts_that_were_not_asked_for(
    adapter: BlueskyAdapter, bluesky: FakeBluesky
) -> None:
    asked, intruder = bluesky.add(), bluesky.add()
    original = bluesky._get_posts

    def with_intruder(request: Any) -> Any:
        request.query["uris"] = [*request.query.get("uris", []), intruder["uri"]]
        return original(request)

    bluesky.server.routes = [
        (m, p, with_intruder if h == original else h) for m, p, h in bluesky.server.routes
    ]
    result = adapter.refresh([asked["uri"]])
    assert [p.external_id for p in result.posts] == [asked["uri"]] and result.deleted == ()


def test_refresh_skips_refs_that_are_not_post_uris(adapter: BlueskyAdapter) -> None:
    result = adapter.refresh(
        ["https://bsky.app/profile/x/post/y", "at://did:plc:x/app.bsky.feed.like/1"]
    )
    assert result.posts == () and result.deleted == () and len(result.skipped) == 2


def test_backfill_resumes_where_an_interrupted_run_stopped(
    sqlite_engine: Engine, settings_for: Callable[..., Settings], bluesky: FakeBluesky
) -> None:
    settings = settings_for(HASHTAGS="CEADAY21")
    start = datetime.now(UTC) - timedelta(days=400)
    for day in range(250):
        bluesky.add(f"Day {day} #CEADAY21", created_at=start + timedelta(days=day))
    target = Target("", ("CEADAY21",))
    bluesky.server.fail("reset", path=SEARCH, after=1)
    bluesky.server.fail("reset", times=2, path=SEARCH)

    with HttpClient(RetryPolicy(timeout=1, attempts=3, backoff=0.001)) as http:
        adapter = BlueskyAdapter(settings.raw, http)
        first = backfill_target(engine=sqlite_engine, adapter=adapter, target=target, since=start)
        assert not first.ok and first.new == 100
        requests_before = len(bluesky.server.requests)
        second = backfill_target(engine=sqlite_engine, adapter=adapter, target=target, since=start)

    assert second.ok and second.new == 150 and second.gap is None
    assert bluesky.server.requests[requests_before].arg("until") is not None
    assert len(_posts(sqlite_engine)) == 250
