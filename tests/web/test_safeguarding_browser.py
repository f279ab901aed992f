"""Takedowns and escalation in Debian's Chromium, with axe on the new screens.

Shares the queue browser tests' browser, live server and database fixtures.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.db import session_scope
from monitor.models import Escalation, Post
from tests.factories import make_post
from tests.web.auth_helpers import make_user
from tests.web.test_queue_browser import (
    _clear_queue,
    _log_in,
    _serious,
    _store,
    engine,
    page,
    server,
)

__all__ = ["engine", "page", "server"]  # fixtures shared with the queue tests
pytestmark = pytest.mark.browser


def _approve(engine: Engine, post_id: int) -> None:
    with session_scope(engine) as session:
        session.get_one(Post, post_id).status = "approved"


def _post(engine: Engine, post_id: int) -> Post:
    with Session(engine) as session:
        return session.get_one(Post, post_id)


def test_a_parents_request_reaches_the_moderator_who_takes_the_post_down(
    engine: Engine, page: Page
) -> None:
    _clear_queue(engine)
    (post_id,) = _store(engine, make_post(media=()))
    _approve(engine, post_id)

    page.goto(f"/gallery/report/{post_id}")
    page.get_by_label("It shows me or my child").check()
    page.get_by_label("More details (optional)").fill("That is my daughter")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_text("It is hidden from the gallery until then.")).to_be_visible()
    assert _post(engine, post_id).takedown_hold

    _log_in(page, "mo")
    nav = page.get_by_role("navigation", name="Staff pages")
    expect(nav.get_by_role("link", name="Takedown requests 1")).to_be_visible()
    expect(
        page.get_by_role("heading", name="Takedown requests waiting for review (1)")
    ).to_be_visible()
    nav.get_by_role("link", name="Takedown requests 1").click()
    review = page.get_by_role("region", name="Takedown request on post")
    expect(review).to_contain_text("It shows me or my child")
    expect(review).to_contain_text("That is my daughter")
    assert _serious(page) == []
    page.get_by_label("Note (kept in the audit log)").fill("Parent's request")
    page.get_by_role("button", name="Take down").press("Enter")

    expect(page.locator("#live")).to_contain_text("taken down")
    expect(nav.get_by_role("link", name="Takedown requests 0")).to_be_visible()
    assert _post(engine, post_id).status == "rejected"


def test_a_moderator_escalates_with_the_keyboard_and_the_lead_closes_it(
    engine: Engine, page: Page
) -> None:
    _clear_queue(engine)
    (post_id,) = _store(engine, make_post(media=(), text="this is happening to me #CEADAY21"))
    make_user(engine, f"lead{post_id}", "safeguarding")

    _log_in(page, "mo")
    summary = page.locator(f"#post-{post_id} summary", has_text="Escalate to safeguarding lead")
    summary.focus()
    page.keyboard.press("Enter")
    page.get_by_label("What the safeguarding lead needs to know").fill("Disclosure in the text")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#live")).to_contain_text("off the public gallery for good")
    assert _post(engine, post_id).escalated

    page.context.clear_cookies()
    _log_in(page, f"lead{post_id}")
    page.goto("/queue/escalations")
    expect(page.get_by_text("Disclosure in the text")).to_be_visible()
    assert _serious(page) == []
    with Session(engine) as session:
        escalation = session.exec(select(Escalation).where(Escalation.post_id == post_id)).one()
    page.get_by_label("Outcome (kept in the audit log)").fill("Referred to the MASH")
    page.get_by_role("button", name=f"Close escalation {escalation.id}").click()
    expect(page.locator("#live")).to_contain_text(f"Closed escalation {escalation.id}")
    with Session(engine) as session:
        assert session.get_one(Escalation, escalation.id).closed_by == f"lead{post_id}"
