"""Take the README's screenshots (queue, gallery, digest) from a running demo, in Chromium.

    .venv/bin/python docs/screenshots.py [--out docs/images]

Starts ``hashtag-monitor demo`` on a free port, logs in with the login it
prints, photographs the moderation queue, approves a few genuine posts (the
same form a moderator submits), photographs the public gallery and the digest
preview, then stops the demo with Ctrl-C (SIGINT), which removes its files.
The browser may only talk to the demo: any other request is refused.
"""

from __future__ import annotations

import argparse
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
DEFAULT_OUT = Path(__file__).resolve().parent / "images"
VIEWPORT = {"width": 1280, "height": 900}
APPROVALS = 6
WAIT_SECONDS = 60
_URL = re.compile(r"Queue\s+(http://127\.0\.0\.1:\d+)/queue")
_LOGIN = re.compile(r"Log in\s+user (\S+)\s+password (\S+)")


class Demo:
    """``hashtag-monitor demo`` in a child process; its printed address and login."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from monitor.cli import main; main()", "demo", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url, self.user, self.password = self._welcome()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def _welcome(self) -> tuple[str, str, str]:
        url = login = None
        seen: list[str] = []
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline and (url is None or login is None):
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            url = url or _URL.search(line)
            login = login or _LOGIN.search(line)
        if url is None or login is None:
            self.stop()
            raise SystemExit("the demo did not start:\n" + "".join(seen))
        return url.group(1), login.group(1), login.group(2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=WAIT_SECONDS)


def _local_only(base: str) -> object:
    def handle(route: Route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            route.abort()

    return handle


def _log_in(page: Page, demo: Demo) -> None:
    page.goto("/login")
    page.fill("#login-name", demo.user)
    page.fill("#login-password", demo.password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if "/login" in page.url:
        raise SystemExit("the printed login was refused")


def _wait_for_cards(page: Page, count: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while page.locator("article.card").count() < count:
        if time.monotonic() > deadline:
            raise SystemExit("the queue never filled")
        time.sleep(0.5)
        page.reload()


def _approve_genuine_posts(page: Page) -> int:
    """Approve posts a trained moderator would: not flagged, not hidden, every image described."""
    token = page.request.get("/auth/session").json()["csrf_token"]
    approved = 0
    for card in page.locator("article.card").all():
        if approved == APPROVALS:
            break
        if card.locator(".flags, .blurred").count():
            continue
        alts = [area.input_value() for area in card.locator("textarea[name^=alt_]").all()]
        if not alts or not all(alts):
            continue
        response = page.request.post(
            "/queue/decide",
            form={
                "csrf_token": token,
                "post_id": card.get_attribute("data-post-id") or "",
                "version": card.get_attribute("data-version") or "",
                "action": "approve",
                "return_to": "/queue",
            },
            max_redirects=0,
        )
        if response.status == 303:
            approved += 1
    return approved


def take_screenshots(browser: Browser, demo: Demo, out: Path) -> list[Path]:
    """queue.png, gallery.png and digest.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(base_url=demo.url, viewport=VIEWPORT)
    context.route("**/*", _local_only(demo.url))
    page = context.new_page()
    _log_in(page, demo)
    page.goto("/queue")
    _wait_for_cards(page, 10)
    page.wait_for_load_state("networkidle")
    shots = [out / "queue.png"]
    page.screenshot(path=shots[-1])
    if _approve_genuine_posts(page) == 0:
        raise SystemExit("no post could be approved")
    page.goto("/gallery")
    page.wait_for_load_state("networkidle")
    shots.append(out / "gallery.png")
    page.screenshot(path=shots[-1])
    page.set_viewport_size({"width": 760, "height": 1100})
    page.goto("/demo/digest")
    page.wait_for_load_state("networkidle")
    shots.append(out / "digest.png")
    page.screenshot(path=shots[-1])
    context.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    args = parser.parse_args()
    demo = Demo()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                shots = take_screenshots(browser, demo, args.out)
            finally:
                browser.close()
    finally:
        demo.stop()
    for shot in shots:
        sys.stdout.write(f"wrote {shot}\n")


if __name__ == "__main__":
    main()
