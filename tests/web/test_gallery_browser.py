"""The public gallery in Debian's Chromium: what renders, what runs, what loads, axe-core.

A real uvicorn server serves the app; a second local server (another origin)
plays the force's website that embeds the gallery with one script tag.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Request, expect
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.base import Author
from monitor.config import Settings
from monitor.services.static_export import export_site
from monitor.web.app import create_app
from tests.fakes.server import FakeServer, Reply
from tests.monitor.test_gallery import publish, tiny_png
from tests.processes import wait_until
from tests.web.live_server import LiveServer, live_server

pytestmark = pytest.mark.browser

#: Scripts a hostile post might carry; each would set ``window.__pwned`` if it ever ran.
INJECTED_TEXT = (
    "<script>window.__pwned = 'text'</script> <img src=x onerror=\"window.__pwned='img'\">"
    " javascript:window.__pwned='link' \u202eoverride\u202c " + "W" * 10_000
)
INJECTED_NAME = "<script>window.__pwned='author'</script>"


@pytest.fixture
def force_site(fake_server: FakeServer) -> FakeServer:
    """The force's website: another origin (its own port) that embeds the gallery."""
    return fake_server


@pytest.fixture
def settings(
    configure: Callable[..., Settings], force_site: FakeServer, tmp_path: Path
) -> Settings:
    return configure(
        MEDIA_DIR=str(tmp_path / "media"),
        DATA_DIR=str(tmp_path / "data"),
        GALLERY_FRAME_ANCESTORS=f"'self' {force_site.url}",
    )


@pytest.fixture
def gallery(gallery_engine: Engine, settings: Settings) -> Iterator[LiveServer]:
    with live_server(create_app(settings, engine=gallery_engine)) as server:
        yield server


@pytest.fixture
def published(gallery_engine: Engine, settings: Settings) -> list[int]:
    """Approved posts (one hostile), plus posts that must never appear."""
    ids = [
        publish(
            gallery_engine,
            settings,
            text=f"Approved message {n}",
            image=tiny_png(),
            alt=f"Sign {n}",
        )
        for n in range(3)
    ]
    ids.append(
        publish(
            gallery_engine,
            settings,
            text=INJECTED_TEXT,
            url="javascript:window.__pwned='href'",
            author=Author(handle="@x@y", name=INJECTED_NAME, url="javascript:alert(1)"),
        )
    )
    publish(gallery_engine, settings, status="pending", text="Pending message")
    publish(gallery_engine, settings, status="rejected", text="Rejected message")
    return ids


def _record(page: Page) -> tuple[list[str], list[str]]:
    """Every URL the page requests, and every dialog an injected script would open."""
    requests: list[str] = []
    dialogs: list[str] = []

    def on_request(request: Request) -> None:
        requests.append(request.url)

    page.on("request", on_request)
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return requests, dialogs


def _assert_accessible(page: Page) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def test_gallery_shows_approved_posts_only_and_runs_no_injected_script(
    browser: Browser, gallery: LiveServer, published: list[int]
) -> None:
    context = browser.new_context()
    page = context.new_page()
    requests, dialogs = _record(page)

    page.goto(gallery.url + "/gallery", wait_until="networkidle")

    articles = page.locator("article.post")
    assert articles.count() == 4
    text = page.locator("main").inner_text()
    assert "Approved message 0" in text and INJECTED_NAME in text
    assert "Pending message" not in text and "Rejected message" not in text
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.locator("a[href^='javascript']").count() == 0
    first_image = page.locator("article.post img").first
    assert first_image.get_attribute("alt") == "Sign 2"
    assert first_image.evaluate("img => img.complete && img.naturalWidth") == 64
    assert all(url.startswith(gallery.url + "/") for url in requests), requests
    assert context.cookies() == []
    _assert_accessible(page)
    context.close()


def test_keyboard_focus_is_visible_and_text_reflows_at_320px(
    browser: Browser, gallery: LiveServer, published: list[int]
) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 640})
    page = context.new_page()
    page.goto(gallery.url + "/gallery")

    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.tagName, s.outlineStyle, s.outlineWidth]; })()"
    )
    assert focused[0] == "SELECT" and focused[1] == "solid" and focused[2] == "3px"
    context.close()


def test_embed_works_in_an_iframe_on_another_origin(
    browser: Browser, gallery: LiveServer, force_site: FakeServer, published: list[int]
) -> None:
    host_page = (
        "<!doctype html><html lang='en'><head><title>Force news</title></head><body>"
        "<main><h1>Our campaign</h1>"
        f"<script src='{gallery.url}/embed.js' data-title='Messages of support'></script>"
        "</main></body></html>"
    ).encode()
    force_site.route(
        "GET", "/news", lambda _r: Reply(200, host_page, {"Content-Type": "text/html"})
    )
    context = browser.new_context()
    page = context.new_page()
    requests, dialogs = _record(page)

    page.goto(force_site.url + "/news", wait_until="networkidle")

    frame_element = page.locator("iframe[title='Messages of support']")
    frame = page.frame_locator("iframe[title='Messages of support']")
    # The script inserts the iframe and sizes it from the frame's messages: wait for
    # each condition (a busy machine renders late), then assert it.
    expect(frame.locator("article.post")).to_have_count(4)
    assert frame.locator("article.post").count() == 4
    page.wait_for_function("document.querySelector('iframe').getBoundingClientRect().height > 400")

    def height_gap() -> float:
        inner = frame.locator("body").evaluate("b => Math.ceil(b.getBoundingClientRect().height)")
        return abs(frame_element.evaluate("f => f.getBoundingClientRect().height") - inner)

    wait_until(lambda: height_gap() <= 1, "the iframe to fit its content")
    assert height_gap() <= 1
    allowed = (force_site.url + "/", gallery.url + "/")
    assert all(url.startswith(allowed) for url in requests), requests
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert context.cookies() == []
    context.close()


def test_an_origin_not_listed_cannot_frame_the_gallery(
    browser: Browser, gallery: LiveServer, published: list[int]
) -> None:
    other = FakeServer().start()
    try:
        host_page = f"<!doctype html><iframe src='{gallery.url}/gallery/embed'></iframe>".encode()
        other.route("GET", "/", lambda _r: Reply(200, host_page, {"Content-Type": "text/html"}))
        context = browser.new_context()
        page = context.new_page()
        page.goto(other.url + "/", wait_until="networkidle")

        frame = page.frames[-1]
        assert frame is not page.main_frame
        assert "Approved message" not in frame.content()
        context.close()
    finally:
        other.stop()


def test_embed_and_report_form_pass_axe(
    browser: Browser, gallery: LiveServer, published: list[int]
) -> None:
    context = browser.new_context()
    page = context.new_page()

    page.goto(gallery.url + "/gallery/embed", wait_until="networkidle")
    _assert_accessible(page)
    page.goto(f"{gallery.url}/gallery/report/{published[0]}")
    _assert_accessible(page)
    page.get_by_label("It shows me or my child").check()
    page.get_by_label("More details (optional)").fill("<script>window.__pwned=1</script>")
    page.get_by_role("button", name="Send request").click()
    # The click starts a navigation; wait for its page, not for the one it leaves.
    expect(page.locator("main")).to_contain_text("A moderator will review")
    assert "A moderator will review" in page.locator("main").inner_text()
    _assert_accessible(page)
    assert context.cookies() == []
    context.close()


def test_static_export_opens_from_file_url(
    browser: Browser,
    gallery_engine: Engine,
    settings: Settings,
    published: list[int],
    tmp_path: Path,
) -> None:
    out = tmp_path / "site"
    with Session(gallery_engine) as session:
        export_site(session=session, settings=settings, out=out)
    context = browser.new_context()
    page = context.new_page()
    requests, dialogs = _record(page)

    page.goto((out / "index.html").as_uri(), wait_until="load")

    assert page.locator("article.post").count() == 4
    image = page.locator("article.post img").first
    image.scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('article.post img').naturalWidth > 0")
    background = page.evaluate(
        "getComputedStyle(document.querySelector('.gallery-header')).backgroundColor"
    )
    assert background == "rgb(11, 61, 107)"  # the stylesheet loaded from the export folder
    assert all(url.startswith("file://") for url in requests), requests
    assert page.evaluate("window.__pwned") is None and dialogs == []
    _assert_accessible(page)
    feed = json.loads((out / "gallery.json").read_text())
    assert len(feed["posts"]) == 4
    context.close()
