"""The queue's media and decisions in Debian's Chromium: hidden media revealed by keyboard
and on the record, flags acknowledged, a compact layout, no serious axe violations."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Media
from monitor.db import session_scope
from monitor.models import AuditEvent, Post
from tests.factories import make_post
from tests.web.live_server import LiveServer
from tests.web.staging_helpers import stage_with_local_copy
from tests.web.test_queue_browser import (
    WCAG_22_AA,
    _clear_queue,
    _log_in,
    _status,
    _store,
    engine,
    page,
    server,
)

__all__ = ["engine", "page", "server"]
pytestmark = pytest.mark.browser


def _photo_post(**overrides: object) -> object:
    media = (Media(kind="image", url="https://media.test/p.jpg", alt="Hands", sensitive=False),)
    return make_post(media=media, **overrides)


def test_hidden_media_is_revealed_by_keyboard_then_approved(
    engine: Engine, server: LiveServer, page: Page
) -> None:
    _clear_queue(engine)
    media = (Media(kind="image", url="https://media.test/s.jpg", alt="A hand", sensitive=True),)
    [post_id] = _store(engine, make_post(media=media))
    stage_with_local_copy(engine, server.app.state.settings)
    _log_in(page, "mo")
    card = page.locator(f"#post-{post_id}")
    expect(card.locator("img")).to_have_count(0)  # not even sent to the browser

    page.keyboard.press("j")
    page.keyboard.press("a")
    expect(page.locator("#live")).to_contain_text("its media is hidden")
    page.keyboard.press("m")
    expect(card.locator("img")).to_have_count(1)
    src = card.locator("img").get_attribute("src")
    assert src is not None and src.startswith("/queue/media/")
    page.locator(f"#post-{post_id}").focus()
    page.keyboard.press("a")
    expect(page.locator("#live")).to_contain_text("Approved the post by")

    assert _status(engine, post_id) == "approved"
    with Session(engine) as session:
        actions = session.exec(select(AuditEvent.action).where(AuditEvent.post_id == post_id)).all()
    assert list(actions) == ["media_revealed", "approve"]


def test_flags_are_acknowledged_before_approval(engine: Engine, page: Page) -> None:
    _clear_queue(engine)
    [post_id] = _store(engine, make_post(media=()))
    with session_scope(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        post.flagged, post.flag_reasons = True, ["Personal data: looks like a UK phone number"]
        session.add(post)
    _log_in(page, "mo")
    card = page.locator(f"#post-{post_id}")
    card.get_by_role("button", name="Approve").click()
    expect(card.locator(".card-message")).to_contain_text("acknowledge each reason")
    card.get_by_label("Personal data: looks like a UK phone number").check()
    card.get_by_role("button", name="Approve").click()
    expect(page.locator("#live")).to_contain_text("Approved the post by")
    assert _status(engine, post_id) == "approved"


def test_a_laptop_screen_shows_more_than_one_card(
    engine: Engine, server: LiveServer, page: Page
) -> None:
    _clear_queue(engine)
    _store(engine, *(_photo_post() for _ in range(4)))  # type: ignore[arg-type]
    stage_with_local_copy(engine, server.app.state.settings)
    page.set_viewport_size({"width": 1366, "height": 768})
    _log_in(page, "mo")
    # Waits on a condition, not a clock: on a loaded machine the pictures and fonts arrive
    # after the first layout, so the second card is scrolled to again on every look until
    # two whole cards show below the sticky bulk bar (or the expect timeout fails it).
    page.wait_for_function(
        """() => {
             const cards = Array.from(document.querySelectorAll('article.card'));
             if (cards.length < 2 || !Array.from(document.images).every((img) => img.complete)) {
               return false;
             }
             cards[1].scrollIntoView({block: 'end'});
             const top = document.querySelector('.bulk').getBoundingClientRect().bottom;
             return cards.filter((card) => {
               const box = card.getBoundingClientRect();
               return box.top >= top - 1 && box.bottom <= window.innerHeight + 1;  // sub-pixel
             }).length >= 2;
           }"""
    )


def test_media_and_flag_screens_have_no_serious_accessibility_violations(
    engine: Engine, server: LiveServer, page: Page
) -> None:
    _clear_queue(engine)
    hidden = (Media(kind="image", url="https://media.test/h.jpg", alt="Hand", sensitive=True),)
    video = (
        Media(kind="video", url="https://media.test/v.mp4", preview_url="https://media.test/t.jpg"),
    )
    ids = _store(engine, make_post(media=hidden), make_post(media=video), _photo_post())  # type: ignore[arg-type]
    with session_scope(engine) as session:
        post = session.get(Post, ids[2])
        assert post is not None
        post.flagged, post.flag_reasons = True, ["Blocked term: spam"]
        session.add(post)
    stage_with_local_copy(engine, server.app.state.settings)
    _log_in(page, "mo")
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_22_AA}})
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], results.generate_report()


def test_number_keys_reject_with_a_reason_and_t_writes_alt_text(
    engine: Engine, server: LiveServer, page: Page
) -> None:
    _clear_queue(engine)
    first, second = _store(engine, make_post(media=()), _photo_post())  # type: ignore[arg-type]
    stage_with_local_copy(engine, server.app.state.settings)
    _log_in(page, "mo")

    page.keyboard.press("j")
    page.keyboard.press("3")  # the third reason, then Enter: two presses for a reject
    page.keyboard.press("Enter")
    expect(page.locator("#live")).to_contain_text("Rejected the post by")
    assert _status(engine, first) == "rejected"
    with Session(engine) as session:
        [reason] = session.exec(select(AuditEvent.reason).where(AuditEvent.post_id == first)).all()
    assert reason == "Identifies a child or a school"

    expect(page.locator(f"#post-{second}")).to_be_focused()
    page.keyboard.press("t")
    expect(page.locator(f"#post-{second} .media-list textarea")).to_be_focused()
