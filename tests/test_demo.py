"""``hashtag-monitor demo`` as a real process: log in, moderate, publish, stop, leave nothing."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from monitor.demo.runner import demo_settings, run_demo
from monitor.errors import UserError
from tests.processes import CLI
from tests.web.auth_helpers import csrf_token, login

DEADLINE_S = 60
LOGIN_LINE = re.compile(r"Log in\s+user (\S+)\s+password (\S+)")
QUEUE_LINE = re.compile(r"Queue\s+(http://127\.0\.0\.1:\d+)/queue")


class DemoProcess:
    """The demo command in a child process, its output read line by line."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.tmpdir = workdir / "tmp"
        self.tmpdir.mkdir()
        env = {**os.environ, "TMPDIR": str(self.tmpdir)}
        self.process = subprocess.Popen(
            [*CLI, "demo", *args],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern[str]) -> re.Match[str]:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            if match := pattern.search(line):
                return match
        raise AssertionError("demo never printed " + pattern.pattern + ":\n" + "".join(self.output))

    def stop(self, how: signal.Signals = signal.SIGINT) -> str:
        """Send ``how`` and wait for the process to end; all it printed."""
        if self.process.poll() is None:
            self.process.send_signal(how)
        self.process.wait(timeout=DEADLINE_S)
        # The reader ends at end of file: once it has, every line is in the queue.
        self._reader.join(timeout=DEADLINE_S)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)

    def database(self) -> sa.Engine:
        [path] = self.tmpdir.glob("hashtag-monitor-demo-*/data/monitor.db")
        return sa.create_engine(f"sqlite:///{path}")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    process = DemoProcess(tmp_path, "--port", "0", "--release-seconds", "30")
    try:
        yield process
    finally:
        process.stop(signal.SIGKILL if process.process.poll() is None else signal.SIGINT)


def _until(check: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def _approvable_post(engine: sa.Engine) -> tuple[int, int, str] | None:
    """A pending genuine post whose image has alt text and is stored for review:
    (id, version, text), or None while staging has not reached one."""
    query = sa.text(
        "SELECT p.id, p.version, p.text FROM posts p JOIN media m ON m.post_id = p.id"
        " WHERE p.status = 'pending' AND NOT p.flagged AND NOT p.sensitive"
        " AND m.alt IS NOT NULL AND m.pinned_hash IS NOT NULL AND NOT EXISTS ("
        "  SELECT 1 FROM media u WHERE u.post_id = p.id AND u.pinned_hash IS NULL"
        "  AND u.kind IN ('image', 'video', 'gif'))"
        " ORDER BY p.id LIMIT 1"
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return (int(row.id), int(row.version), str(row.text)) if row else None


def _post_count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM posts")).scalar_one())


def test_demo_serves_queue_and_gallery_and_leaves_nothing_behind(demo: DemoProcess) -> None:
    base = demo.wait_for(QUEUE_LINE).group(1)
    name, password = demo.wait_for(LOGIN_LINE).groups()
    demo.wait_for(re.compile("Press Ctrl-C"))
    engine = demo.database()
    _until(lambda: _post_count(engine) > 100, "the first poll of the sample")

    with httpx.Client(base_url=base, timeout=30) as client:
        login(client, name, password)
        # The sample's pictures are stored for review by the staging job, then shown.
        _until(lambda: _approvable_post(engine) is not None, "the sample's images stored")
        queue_page = client.get("/queue", headers={"Accept": "text/html"})
        assert queue_page.status_code == 200
        assert "Training data" in queue_page.text
        assert "Flagged for a closer look" in queue_page.text  # the phone-number cases
        assert "/demo/media/" not in queue_page.text  # never the media host itself

        approvable = _approvable_post(engine)
        assert approvable is not None
        post_id, version, text = approvable
        card = client.get(f"/queue/posts/{post_id}", headers={"Accept": "text/html"}).text
        [copy] = re.findall(r'<img src="(/queue/media/[0-9a-f]{64}-\d+\.jpg)"', card)[:1]
        assert client.get(copy).headers["content-type"] == "image/jpeg"  # our stored copy
        decided = client.post(
            "/queue/decide",
            data={
                "csrf_token": csrf_token(client),
                "post_id": str(post_id),
                "version": str(version),
                "action": "approve",
                "return_to": "/queue",
            },
            follow_redirects=False,
        )
        assert decided.status_code == 303

        gallery = client.get("/gallery")
        assert gallery.status_code == 200 and "Training data" in gallery.text
        assert text.split("#")[0].strip()[:30] in gallery.text.replace("&#34;", '"')
        [pinned] = re.findall(r'src="(/media/[0-9a-f]{64}-\d+\.jpg)"', gallery.text)[:1]
        image = client.get(pinned)
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert "set-cookie" not in gallery.headers

        digest = client.get("/demo/digest")
        assert digest.status_code == 200 and "Hashtag digest" in digest.text
        assert client.get("/stats").status_code == 200
        assert "Training data" in client.get("/admin/sources").text
    engine.dispose()

    output = demo.stop()
    assert demo.process.returncode == 0, output
    assert "Demo stopped; removed" in output
    assert "Subject: Hashtag digest" in output and "1 approved" in output
    assert "Traceback" not in output
    assert list(demo.tmpdir.iterdir()) == []


def test_sigterm_also_removes_the_temporary_folder(demo: DemoProcess) -> None:
    demo.wait_for(re.compile("Press Ctrl-C"))
    output = demo.stop(signal.SIGTERM)
    assert "Demo stopped; removed" in output
    assert list(demo.tmpdir.iterdir()) == []


def test_a_port_in_use_is_one_clear_line_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError) as refused:
            run_demo(port=port, echo=lambda line: None)
    assert (
        str(refused.value)
        == f"port {port} is in use: pass --port N (or --port 0 for any free port)"
    )
    assert list(tmp_path.iterdir()) == []


def test_demo_settings_ignore_a_real_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment's .env (database, SMTP, credentials) must not leak into training."""
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgresql+psycopg://prod/monitor\nSMTP_HOST=smtp.force.example\n"
        "DIGEST_TO=partners@vrn.example\nPLATFORMS=x\nX_BEARER_TOKEN=real-token\n"
        "OUTBOUND_ALLOW_PRIVATE=false\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = demo_settings(tmp_path / "demo", 8123)
    assert settings.database_url == f"sqlite:///{tmp_path / 'demo' / 'data' / 'monitor.db'}"
    assert settings.enabled_platforms == ["demo"]
    assert settings.smtp_host is None and settings.digest_to == []
    assert settings.demo_mode and settings.outbound_allow_private
    assert settings.public_base_url == "http://127.0.0.1:8123"
