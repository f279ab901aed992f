"""The live wall, the event screen and the live queue in Debian's Chromium: changes made by
another process appear without a reload, reduced motion is respected, axe-core finds
nothing serious, the page stays bounded, and a restarted server is found again."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright
from sqlalchemy.engine import Engine

from adapters.base import Media
from monitor.config import Settings
from monitor.db import session_scope
from monitor.services.app_settings import GALLERY_PAUSED, set_app_setting
from monitor.web.app import create_app
from tests.web.auth_helpers import DEFAULT_PASSWORD, make_user
from tests.web.live_helpers import approve, other_process, pending_post, ref_of, set_status
from tests.web.live_server import LiveServer
from tests.web.staging_helpers import stage_with_local_copy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
#: A live change shows within seconds; this bounds the wait for it (a condition, not a pause).
SHOWN_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(MEDIA_DIR=str(tmp_path / "media"), DATA_DIR=str(tmp_path / "data"))


@pytest.fixture
def server(gallery_engine: Engine, settings: Settings) -> Iterator[LiveServer]:
    make_user(gallery_engine, "mod", "moderator")
    make_user(gallery_engine, "alice", "moderator")
    running = LiveServer(create_app(settings, engine=gallery_engine)).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def reduced(browser: Browser, server: LiveServer) -> Iterator[Page]:
    """A reader who asked for reduced motion; any request off 127.0.0.1 is recorded."""
    context = browser.new_context(base_url=server.url, reduced_motion="reduce")
    page = context.new_page()
    page.outside = []  # type: ignore[attr-defined]

    def watch(request: Request) -> None:
        if not request.url.startswith(("http://127.0.0.1", "data:", "about:")):
            page.outside.append(request.url)  # type: ignore[attr-defined]

    page.on("request", watch)
    yield page
    assert page.outside == [], "the page made third-party requests"  # type: ignore[attr-defined]
    context.close()


def _serious(page: Page) -> list[str]:
    results = Axe().run(
        page,
        options={"runOnly": {"type": "tag", "values": WCAG_22_AA}, "resultTypes": ["violations"]},
    )
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _card(page: Page, engine: Engine, post_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f'li[data-id="{ref_of(engine, post_id)}"]')


def test_the_wall_shows_approvals_and_drops_removals_without_a_reload(
    reduced: Page, server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    shown = pending_post(gallery_engine, text="Already on the wall")
    approve(gallery_engine, settings, shown)
    reduced.goto("/gallery")
    reduced.evaluate("window.__sameDocument = true")
    expect(_card(reduced, gallery_engine, shown)).to_be_visible()
    assert _serious(reduced) == []
    arriving = pending_post(gallery_engine, text="Arrived while the wall was open")
    with other_process(gallery_engine) as replica:
        approve(replica, settings, arriving)
    card = _card(reduced, gallery_engine, arriving)
    expect(card).to_be_visible(timeout=SHOWN_MS)
    expect(reduced.locator(".gallery-stream > li").first).to_have_attribute(
        "data-id", ref_of(gallery_engine, arriving)
    )
    # Announced politely, once; no motion for a reader who asked for none.
    expect(reduced.locator(".gallery-announce")).to_have_text("1 new message.", timeout=SHOWN_MS)
    assert reduced.locator(".gallery-announce").get_attribute("aria-live") == "polite"
    assert card.locator(".post").evaluate("e => getComputedStyle(e).animationName") == "none"
    assert _serious(reduced) == []
    set_status(gallery_engine, shown, status="rejected")
    expect(_card(reduced, gallery_engine, shown)).to_have_count(0, timeout=SHOWN_MS)
    assert reduced.evaluate("window.__sameDocument") is True  # never reloaded


def test_cards_arrive_with_a_fade_only_for_readers_who_allow_motion(
    browser: Browser, server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    context = browser.new_context(base_url=server.url, reduced_motion="no-preference")
    page = context.new_page()
    page.goto("/gallery/embed")
    post_id = pending_post(gallery_engine)
    approve(gallery_engine, settings, post_id)
    card = _card(page, gallery_engine, post_id)
    expect(card).to_be_visible(timeout=SHOWN_MS)
    assert card.locator(".post").evaluate("e => getComputedStyle(e).animationName") == "post-arrive"
    assert card.locator("a").first.get_attribute("target") == "_blank"  # the embed's links
    context.close()


def test_a_wall_left_open_keeps_one_page_of_cards_and_the_readers_place(
    reduced: Page, server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    for _ in range(6):
        approve(gallery_engine, settings, pending_post(gallery_engine))
    # One column: every card moves alike when one arrives above.
    reduced.set_viewport_size({"width": 400, "height": 500})
    reduced.goto("/gallery?limit=6")
    stream = reduced.locator(".gallery-stream > li")
    expect(stream).to_have_count(6)
    # The reader scrolls to the third card and reads it; posts keep arriving above.
    third = stream.nth(2)
    third.scroll_into_view_if_needed()
    before = third.evaluate("e => e.getBoundingClientRect().top")
    watched = third.get_attribute("data-id")
    last = 0
    for _ in range(3):
        last = pending_post(gallery_engine)
        approve(gallery_engine, settings, last)
        expect(_card(reduced, gallery_engine, last)).to_have_count(1, timeout=SHOWN_MS)
    # The reader's card did not move, or has gone off the bottom of the bounded list.
    place = reduced.locator(f'li[data-id="{watched}"]')
    if place.count():
        assert abs(place.evaluate("e => e.getBoundingClientRect().top") - before) < 2
    for _ in range(20):
        last = pending_post(gallery_engine)
        approve(gallery_engine, settings, last)
    expect(_card(reduced, gallery_engine, last)).to_have_count(1, timeout=SHOWN_MS)
    expect(stream).to_have_count(6)
    assert reduced.evaluate("document.getElementsByTagName('*').length") < 400


def test_a_restarted_server_is_found_again_with_back_off(
    reduced: Page, server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    attempts: list[str] = []
    reduced.on("request", lambda r: attempts.append(r.url) if "/gallery/events" in r.url else None)
    reduced.goto("/gallery")
    expect(reduced.locator(".gallery-empty")).to_be_visible()
    port = server.port
    server.stop()
    # Restarted: a new process knows nothing of the old one's event ids.
    restarted = LiveServer(create_app(settings, engine=gallery_engine), port=port).start()
    try:
        post_id = pending_post(gallery_engine, text="After the restart")
        approve(gallery_engine, settings, post_id)
        expect(_card(reduced, gallery_engine, post_id)).to_be_visible(timeout=20_000)
        # Reconnections were spaced out, not a storm (EventSource alone retries at once).
        assert 2 <= len(attempts) <= 5
    finally:
        restarted.stop()


def test_the_event_screen_follows_the_kill_switch_and_survives_an_outage(
    reduced: Page, server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    stage = pending_post(
        gallery_engine,
        text="Seen from across the room",
        media=(Media(kind="image", url="https://cdn.example/a.jpg", alt="Hands"),),
    )
    stage_with_local_copy(gallery_engine, settings)
    approve(gallery_engine, settings, stage)
    reduced.set_viewport_size({"width": 1280, "height": 720})
    reduced.goto("/gallery/screen")
    screen = reduced.locator(".screen-list")
    expect(screen.locator(".screen-post.is-current")).to_contain_text("Seen from across the room")
    assert _serious(reduced) == []
    assert reduced.locator(".screen-qr svg").count() == 1
    size = reduced.locator(".screen-text").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 32  # readable across a room
    arriving = pending_post(gallery_engine, text="A new slide")
    approve(gallery_engine, settings, arriving)
    expect(screen.locator(".screen-post.is-current")).to_contain_text(
        "A new slide", timeout=SHOWN_MS
    )
    with session_scope(gallery_engine) as session:
        set_app_setting(session, GALLERY_PAUSED, True, actor="mod")
    expect(screen.locator(".screen-post")).to_have_count(0, timeout=SHOWN_MS)
    with session_scope(gallery_engine) as session:
        set_app_setting(session, GALLERY_PAUSED, False, actor="mod")
    expect(screen.locator(".screen-post")).to_have_count(2, timeout=SHOWN_MS)
    with reduced.expect_event(
        "requestfailed", lambda r: "/gallery/events" in r.url, timeout=SHOWN_MS
    ):
        server.stop()
    # The server is gone: the screen keeps the last approved set and says nothing alarming.
    expect(screen.locator(".screen-post")).to_have_count(2)
    text = reduced.locator("body").inner_text().lower()
    assert not re.search(r"error|offline|unreachable|lost|failed", text)


def test_the_live_queue_shows_others_decisions_and_keeps_typed_alt_text(
    browser: Browser, server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    first = pending_post(
        gallery_engine, media=(Media(kind="image", url="https://cdn.example/b.jpg", alt=""),)
    )
    second = pending_post(gallery_engine, media=())
    stage_with_local_copy(gallery_engine, settings)
    context = browser.new_context(base_url=server.url, reduced_motion="reduce")
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill("mod")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/queue")
    alt = page.locator(f"#post-{first} .media-list textarea").first
    alt.fill("Two hands holding a paper heart")
    page.locator(f"#post-{second}").focus()
    # Alice approves the second post in her own browser (here: her own process).
    approve(gallery_engine, settings, second, actor="alice")
    note = page.locator(f"#post-{second} .live-change")
    expect(note).to_contain_text("alice: approved", timeout=SHOWN_MS)
    expect(page.locator('.tabs .count[data-tab="approved"]')).to_have_text("1", timeout=SHOWN_MS)
    expect(alt).to_have_value("Two hands holding a paper heart")
    # A post that arrives while the page is open is added below, where nothing moves.
    arrived = pending_post(gallery_engine, media=(), text="Arrived during review")
    expect(page.locator(f"#post-{arrived}")).to_be_visible(timeout=SHOWN_MS)
    assert page.locator("section.cards article.card").last.get_attribute("id") == f"post-{arrived}"
    expect(page.locator("#queue-live")).to_contain_text("1 new post added", timeout=SHOWN_MS)
    # A takedown request reaches the open page.
    with session_scope(gallery_engine) as session:
        from monitor.models import TakedownRequest, utcnow

        session.add(TakedownRequest(post_id=first, at=utcnow(), category="other", client_key="k"))
    expect(page.locator(f"#post-{first} .live-takedown")).to_be_visible(timeout=SHOWN_MS)
    expect(alt).to_have_value("Two hands holding a paper heart")
    assert _serious(page) == []
    context.close()
