"""The queue in Debian's Chromium: keyboard review, bulk approval, stale decisions, axe-core.

One browser and one live server serve the whole module; each test works on
its own posts. Requests that would leave 127.0.0.1 are answered locally
(platform images) or aborted, so nothing reaches the network.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import FetchedPost, Media
from monitor.config import load_settings
from monitor.db import create_db_engine, session_scope, upgrade
from monitor.models import AuditEvent, Post
from monitor.services.ingest import record_posts
from monitor.web.app import create_app
from tests.factories import make_post
from tests.web.auth_helpers import DEFAULT_PASSWORD, make_user
from tests.web.live_server import LiveServer, live_server

pytestmark = pytest.mark.browser
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
MEDIA_HOST = "https://media.test"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'monitor.db'}")
    upgrade(engine)
    make_user(engine, "mo", "moderator")
    make_user(engine, "ad", "admin")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    # Module-scoped, so before the per-test environment: image analysis off as there.
    settings = load_settings(data_dir=data_dir, media_dir=data_dir / "media", image_analysis=False)
    with live_server(create_app(settings, engine=engine)) as running:
        yield running


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url)
    image = _png()

    def stay_local(route: Route) -> None:
        url = route.request.url
        if url.startswith(MEDIA_HOST):
            route.fulfill(status=200, body=image, content_type="image/png")
        elif url.startswith(server.url):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", stay_local)
    page = context.new_page()
    yield page
    context.close()


def _store(engine: Engine, *posts: FetchedPost) -> list[int]:
    with session_scope(engine) as session:
        return record_posts(session=session, posts=list(posts)).new_ids


def _clear_queue(engine: Engine) -> None:
    """Earlier tests' leftovers leave the Pending tab, so each test sees only its posts."""
    with session_scope(engine) as session:
        for post in session.exec(select(Post).where(Post.status == "pending")):
            post.status = "rejected"


def _status(engine: Engine, post_id: int) -> str:
    with Session(engine) as session:
        return session.get_one(Post, post_id).status


def _log_in(page: Page, name: str) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/queue")


def test_a_moderator_reviews_with_the_keyboard_only(engine: Engine, page: Page) -> None:
    _clear_queue(engine)
    first, second, third = _store(engine, *(make_post(media=()) for _ in range(3)))
    _log_in(page, "mo")

    page.keyboard.press("j")
    card = page.locator(f"#post-{first}")
    expect(card).to_be_focused()
    expect(card).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("a")
    expect(page.locator("#live")).to_have_text(re.compile(r"^Approved the post by @u\d+@"))
    expect(page.locator(f"#post-{second}")).to_be_focused()
    # The counts follow the decision, and the decision stays on screen with its Undo.
    expect(page.locator('.tabs .count[data-tab="approved"]')).to_have_text("1")
    expect(page.locator("form.last-decision")).to_contain_text("Your last decision")

    page.keyboard.press("r")
    reason = page.locator(f"#reason-{second}")
    expect(reason).to_be_focused()
    reason.select_option("Spam or advertising")
    page.keyboard.press("Enter")
    expect(page.locator("#live")).to_have_text(re.compile(r"^Rejected the post by @u\d+@"))
    expect(page.locator('.tabs .count[data-tab="rejected"]')).to_have_text("1")
    expect(page.locator(f"#post-{third}")).to_be_focused()

    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()

    assert (_status(engine, first), _status(engine, second)) == ("approved", "rejected")
    assert _status(engine, third) == "pending"
    with Session(engine) as session:
        reasons = session.exec(select(AuditEvent.reason).where(AuditEvent.post_id == second)).all()
    assert reasons == ["Spam or advertising"]


def test_bulk_approval_and_a_stale_decision_in_the_browser(engine: Engine, page: Page) -> None:
    _clear_queue(engine)
    ids = _store(engine, *(make_post(media=()) for _ in range(4)))
    _log_in(page, "mo")

    page.keyboard.press("j")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    expect(page.locator("#selected-count")).to_have_text("2")
    page.get_by_role("button", name="Approve selected").click()
    expect(page.locator("#live")).to_have_text("Approved 2 of 2 selected posts.")
    assert [_status(engine, i) for i in ids[:2]] == ["approved", "approved"]

    with session_scope(engine) as session:  # another moderator decides behind this page
        session.get_one(Post, ids[2]).status = "rejected"
        session.get_one(Post, ids[2]).version += 1
    page.locator(f"#post-{ids[2]}").focus()
    page.keyboard.press("a")
    message = page.locator(f"#post-{ids[2]} .card-message")
    expect(message).to_contain_text("changed since you loaded it")
    expect(page.locator(f"#post-{ids[2]}")).to_have_class(re.compile(r"\bstale\b"))
    assert _status(engine, ids[2]) == "rejected"


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


def test_queue_pages_have_no_serious_accessibility_violations(engine: Engine, page: Page) -> None:
    _clear_queue(engine)
    media = (
        Media(kind="image", url=f"{MEDIA_HOST}/a.png", alt=None, sensitive=True),
        Media(kind="image", url=f"{MEDIA_HOST}/b.png", alt="Painted hands"),
    )
    flagged, plain = _store(engine, make_post(media=media), make_post())
    with session_scope(engine) as session:
        post = session.get_one(Post, flagged)
        post.flagged, post.flag_reasons = True, ["Personal data: looks like a UK phone number"]
    page.goto("/login")
    assert _serious(page) == []
    _log_in(page, "ad")
    for path in ("/queue", f"/queue/posts/{plain}", "/queue?tab=flagged", "/admin", "/admin/audit"):
        page.goto(path)
        assert _serious(page) == [], path
    page.goto("/queue")
    # The reveal is a form post that reloads the queue: check the page it lands on, with
    # the help dialog open, not one caught half-way through loading.
    with page.expect_navigation():
        page.get_by_role("button", name="Show media").click()
    expect(page.get_by_role("button", name="Show media")).to_have_count(0)
    page.keyboard.press("?")
    expect(page.locator("dialog#help")).to_be_visible()
    assert _serious(page) == []


def test_the_read_text_starts_the_alt_text_and_reposts_page_is_accessible(
    engine: Engine, page: Page
) -> None:
    from monitor.models import MediaItem
    from monitor.services.known_images import store_facts

    _clear_queue(engine)
    ids = _store(engine, make_post(), make_post())
    with session_scope(engine) as session:
        for post_id in ids:
            item = session.exec(select(MediaItem).where(MediaItem.post_id == post_id)).one()
            note = {"post_id": post_id, "pdq": "c" * 64, "pdq_quality": 100, "text": "Speak up"}
            store_facts(session, {item.id or 0: note})
    _log_in(page, "mo")
    page.goto(f"/queue/posts/{ids[1]}")
    assert _serious(page) == []
    page.get_by_role("button", name="Use as alt text for image 1").click()
    field = page.get_by_label("Alt text for image 1")
    assert field.input_value() == "Hand with the words “Speak up” written on it"
    assert _status(engine, ids[1]) == "pending"  # nothing is saved until a decision
    page.goto(f"/queue/posts/{ids[1]}/reposts")
    assert page.locator("article.card").count() == 2
    assert _serious(page) == []
