"""Staff and public pages in Debian's Chromium: axe-core finds nothing, of any impact,
with the training banner on; table headers never break inside a word.

The pages run in training mode (``DEMO_MODE``) so the banner is there: it is on
every page of the demo, and it must sit in a landmark like everything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page
from sqlalchemy.engine import Engine

from adapters.base import Target
from monitor.config import load_settings
from monitor.db import create_db_engine, session_scope, upgrade
from monitor.models import utcnow
from monitor.services.sources import ensure_source, record_disabled
from monitor.web.app import create_app
from tests.web.auth_helpers import DEFAULT_PASSWORD, make_user
from tests.web.live_server import LiveServer, live_server

pytestmark = pytest.mark.browser
STAFF_PAGES = (
    "/queue",
    "/stats",
    "/admin",
    "/admin/sources",
    "/admin/campaigns",
    "/admin/audit",
    "/account/password",
    "/account/totp",
)
PUBLIC_PAGES = ("/", "/login", "/gallery")

#: Each header word's text, and whether the browser drew it on more than one line.
_BROKEN_WORDS = """() => {
  const broken = [];
  for (const th of document.querySelectorAll("th")) {
    for (const node of th.querySelectorAll("*").length ? [th] : [th]) {
      const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
      for (let text = walker.nextNode(); text; text = walker.nextNode()) {
        const re = /[^\\s-]+/g;  // a break after a hyphen ("7-period") is fine
        for (let m = re.exec(text.data); m; m = re.exec(text.data)) {
          const range = document.createRange();
          range.setStart(text, m.index);
          range.setEnd(text, m.index + m[0].length);
          const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
          if (lines.size > 1) broken.push(m[0]);
        }
      }
    }
  }
  return broken;
}"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('pages') / 'monitor.db'}")
    upgrade(engine)
    make_user(engine, "ad", "admin")
    with session_scope(engine) as session:
        source = ensure_source(
            session, "mastodon", Target("https://mastodon.social", ("CEADAY21",))
        )
        source.last_success_at = source.last_poll_at = utcnow()
        failing = ensure_source(session, "bluesky", Target("", ("CEADAY21", "HelpingHands")))
        failing.failures_in_row, failing.failing_since = 3, utcnow()
        failing.last_error = "HTTP 503 from the platform"
        record_disabled(session, "x", "X_BEARER_TOKEN is not set", utcnow())
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    settings = load_settings(
        data_dir=data_dir,
        media_dir=data_dir / "media",
        demo_mode=True,
        platforms=["mastodon"],
        image_analysis=False,  # module-scoped: set here, as the per-test environment does
    )
    with live_server(create_app(settings, engine=engine)) as running:
        yield running


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url)
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(server.url) else route.abort()
        ),
    )
    page = context.new_page()
    yield page
    context.close()


def _log_in(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill("ad")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/queue")


def _violations(page: Page) -> list[str]:
    """Every axe rule, best practices included (``region`` is one), at any impact."""
    results = Axe().run(page, options={"resultTypes": ["violations"]})
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


def test_public_and_staff_pages_have_no_axe_violations(page: Page) -> None:
    for path in PUBLIC_PAGES:
        page.goto(path)
        assert page.get_by_text("Training data.").is_visible(), path
        assert _violations(page) == [], path
    _log_in(page)
    for path in STAFF_PAGES:
        page.goto(path)
        assert _violations(page) == [], path


def test_the_home_page_leads_to_the_gallery_and_the_login(page: Page) -> None:
    page.goto("/")
    page.get_by_role("link", name="See the approved posts").click()
    page.wait_for_url("**/gallery")
    page.goto("/")
    page.get_by_role("link", name="log in").click()
    page.wait_for_url("**/login")


def test_no_page_asks_for_a_missing_favicon(page: Page, server: LiveServer) -> None:
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto("/")
    page.goto("/gallery")
    assert page.request.get("/favicon.ico").status == 200
    assert missing == []


@pytest.mark.parametrize("width", [360, 768])
def test_table_headers_break_between_words_only(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    _log_in(page)
    for path in ("/admin/sources", "/stats"):
        page.goto(path)
        assert page.evaluate(_BROKEN_WORDS) == [], path


def test_sources_are_named_as_people_say_them(page: Page) -> None:
    _log_in(page)
    page.goto("/admin/sources")
    for name in ("Mastodon: mastodon.social, #CEADAY21", "Bluesky: #CEADAY21, #HelpingHands"):
        assert page.get_by_role("rowheader", name=name).count() == 1, name
    assert page.get_by_role("heading", name="Mastodon: what is watched").count() == 1
