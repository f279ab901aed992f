"""clear_queue: a moderator clears 200 pending posts with the keyboard (safeguarding issue).

A real uvicorn server on 127.0.0.1 serves the app to Debian's Chromium. A scripted
moderator, using only the keyboard as a person would, clears a queue of
``BENCH_CLEAR_POSTS`` (default 200) pending posts: clean approvals (text, and
pictures whose alt text the platform gave), rejections with a reason from the
list, and approvals that need alt text written first. Every card's media is a
stored copy, as staging leaves it.

Reported:

- ``clear_queue`` ``decisions_per_server_s``: decisions per second of server time
  (the browser's request-to-response time of each decision), against ``/healthz``
  fetched by the same page the same number of times (requests per second of server
  time): the ratio says how much heavier a decision is than the lightest request;
- ``clear_queue_keys`` ``keys_per_decision`` for each kind of decision (typing the
  alt text itself counts as one action), against the issue's targets (2 for a
  clean approval, 3 for a rejection with a reason) as the baseline: a ratio at or
  under 1 meets the target.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter

from playwright.sync_api import Page, Request, sync_playwright

from adapters.base import Media
from benchmarks._harness import ScratchDatabase, emit
from monitor.config import load_settings
from monitor.db import session_scope
from monitor.services.ingest import record_posts
from monitor.web.app import create_app
from tests.factories import make_post
from tests.web.auth_helpers import DEFAULT_PASSWORD, make_user
from tests.web.live_server import live_server
from tests.web.staging_helpers import stage_with_local_copy

POSTS = int(os.environ.get("BENCH_CLEAR_POSTS", "200"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
#: The issue's targets; writing alt text (t, the text, Esc, a) has none there, so ours is 4.
TARGET_KEYS = {"approve": 2.0, "reject_with_reason": 3.0, "approve_with_alt": 4.0}


def _plan(number: int) -> str:
    """The decision for post ``number``: mostly approvals, one in five rejected, one in ten
    an image with no alt text yet."""
    if number % 5 == 4:
        return "reject_with_reason"
    if number % 10 == 3:
        return "approve_with_alt"
    return "approve"


def _posts(count: int) -> list[object]:
    posts = []
    for number in range(count):
        kind = _plan(number)
        if kind == "approve_with_alt":
            media = (Media(kind="image", url=f"https://media.test/{number}.jpg"),)
        elif number % 2:
            media = (Media(kind="image", url=f"https://media.test/{number}.jpg", alt="Hands"),)
        else:
            media = ()
        posts.append(make_post(media=media, text=f"Message {number} on my hands #CEADAY21"))
    return posts


class Keyboard:
    """Presses keys on the page, counting each press (a typed text counts as one action)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.count = 0

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.count += 1

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)
        self.count += 1


def _server_seconds(request: Request) -> float:
    timing = request.timing
    return max(0.0, (timing["responseStart"] - timing["requestStart"]) / 1000)


def _clear(page: Page, keys: Keyboard, plans: list[str]) -> dict[str, list[int]]:
    """Decide every card on the page in order (a decision moves on to the next card by
    itself); key presses per kind of decision."""
    presses: dict[str, list[int]] = {kind: [] for kind in TARGET_KEYS}
    for kind in plans:
        before = keys.count
        with page.expect_response("**/queue/decide") as answer:
            if kind == "approve":
                keys.press("a")
            elif kind == "reject_with_reason":
                keys.press("5")  # "Spam or advertising", then Enter
                keys.press("Enter")
            else:
                keys.press("t")
                keys.type("A hand with a written message")
                keys.press("Escape")
                keys.press("a")
        assert answer.value.json()["ok"], answer.value.json()
        presses[kind].append(keys.count - before)
    return presses


def main() -> None:
    scratch = ScratchDatabase()
    with scratch as engine:
        make_user(engine, "mo", "moderator")
        settings = load_settings(
            data_dir=scratch.path.parent / "data",
            media_dir=scratch.path.parent / "media",
            log_level="WARNING",
        )
        with session_scope(engine) as session:
            record_posts(session=session, posts=_posts(POSTS))  # type: ignore[arg-type]
        stage_with_local_copy(engine, settings)
        plans = [_plan(number) for number in range(POSTS)]

        decide_seconds: list[float] = []
        presses: dict[str, list[int]] = {kind: [] for kind in TARGET_KEYS}
        with (
            live_server(create_app(settings, engine=engine)) as server,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(
                base_url=server.url, viewport={"width": 1366, "height": 768}
            )
            context.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(server.url) else route.abort()
                ),
            )
            page = context.new_page()
            page.on(
                "requestfinished",
                lambda request: (
                    decide_seconds.append(_server_seconds(request))
                    if request.url.endswith("/queue/decide")
                    else None
                ),
            )
            page.goto("/login")
            page.get_by_label("User name").fill("mo")
            page.get_by_label("Password").fill(DEFAULT_PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url("**/queue")
            keys = Keyboard(page)
            done = 0
            while done < POSTS:
                page.goto("/queue")  # the next page of what is still pending
                on_page = page.locator("article.card").count()
                for kind, counts in _clear(page, keys, plans[done : done + on_page]).items():
                    presses[kind].extend(counts)
                done += on_page
            health_seconds = []
            for _ in range(len(decide_seconds)):  # the same page, the same timing source
                with page.expect_event("requestfinished") as finished:
                    page.evaluate("() => fetch('/healthz').then((response) => response.text())")
                health_seconds.append(_server_seconds(finished.value))
            browser.close()

    server_time = sum(decide_seconds)
    health_time = sum(health_seconds)
    emit(
        "clear_queue", "decisions_per_server_s", len(decide_seconds) / server_time,
        len(health_seconds) / health_time, POSTS,
        decisions=dict(Counter(plans)),
        median_decision_ms=round(statistics.median(decide_seconds) * 1000, 3),
    )  # fmt: skip
    for kind, counts in presses.items():
        if counts:
            emit(
                "clear_queue_keys", "keys_per_decision", statistics.mean(counts),
                TARGET_KEYS[kind], len(counts), decision=kind,
            )  # fmt: skip


if __name__ == "__main__":
    main()
