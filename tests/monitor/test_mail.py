"""Delivering the digest to a real SMTP server (aiosmtpd on 127.0.0.1), faults included.

What the email says is checked on both database backends; SMTP faults, which do not
depend on the backend, run on SQLite only to keep the suite fast."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.errors import MonitorError, UserError
from monitor.models import DigestSend
from monitor.services.mail import (
    ALREADY_SENT,
    SENT,
    MailError,
    due_day,
    send_digest,
    send_due_digest,
)
from tests.monitor.test_digest import DAY, SCRIPT_AUTHOR, SCRIPT_TEXT, build_scenario
from tests.processes import free_port

FROM = "digest@vrn.example"
TO = ("alice@partner.example", "bob@partner.example")


class SmtpCapture:
    """A real aiosmtpd server that keeps every message; ``answers`` scripts DATA replies
    (e.g. ``["451 4.3.0 try later"]`` then the default 250), ``password`` demands a login."""

    def __init__(self, *, answers: list[str] | None = None, password: str | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self.answers = list(answers or [])
        self.data_attempts = 0
        self.sessions = 0
        self.logins: list[tuple[str, str]] = []
        self.password = password
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if password is not None:
            kwargs = {
                "authenticator": self._authenticate,
                "auth_required": False,
                "auth_require_tls": False,
            }
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname  # aiosmtpd leaves this to an EHLO hook
        return responses

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        self.data_attempts += 1
        if self.answers:
            return self.answers.pop(0)
        self.envelopes.append(envelope)
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 2.0.0 OK"

    def _authenticate(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = (data.login.decode(), data.password.decode())
        self.logins.append(login)
        # handled=False: aiosmtpd answers "535" itself when the login is wrong.
        return AuthResult(success=login[1] == self.password, handled=False)

    def __enter__(self) -> SmtpCapture:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()


class ClosingServer:
    """Accepts each connection and closes it at once, before the SMTP greeting."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def __enter__(self) -> ClosingServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(timeout=5)


def mail_settings(configure: Callable[..., Settings], port: int, **extra: str) -> Settings:
    env = {
        "HASHTAGS": "CEADAY21,HelpingHands",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "none",
        "DIGEST_FROM": FROM,
        "DIGEST_TO": ",".join(TO),
    }
    return configure(**{**env, **extra})


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    with SmtpCapture() as server:
        yield server


def sends(engine: Engine) -> list[DigestSend]:
    with Session(engine) as session:
        return list(session.execute(sa.select(DigestSend).order_by(DigestSend.id)).scalars())


def parts(message: EmailMessage) -> tuple[str, str, EmailMessage]:
    """(text, html, png part) after checking the MIME tree is exactly what we promise."""
    assert message.get_content_type() == "multipart/related"
    alternative, image = message.get_payload()  # type: ignore[misc]
    assert alternative.get_content_type() == "multipart/alternative"
    plain, html = alternative.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png"
    # Lines travel as CRLF; compare with the template's own line ends.
    return plain.get_content().replace("\r\n", "\n"), html.get_content(), image


def row(label: str, value: str) -> str:
    """A figure line of the text part: label in 24 columns, the value right-aligned in 13."""
    return f"{label:<24}{value:>13}   "


def test_digest_email_has_the_numbers_structure_chart_and_escaping(
    engine: Engine, configure: Callable[..., Settings], smtp: SmtpCapture
) -> None:
    build_scenario(engine)
    settings = mail_settings(configure, smtp.port)

    outcome = send_digest(engine=engine, settings=settings, day=DAY)

    assert outcome.status == SENT
    (message,) = smtp.messages
    assert sorted(smtp.envelopes[0].rcpt_tos) == sorted(TO)
    assert message["From"] == FROM and message["To"] == ", ".join(TO)
    assert message["Message-ID"].endswith("@vrn.example>")
    interactions = (10 + 2 + 10_000_000 + 3) + (2 + 2 + 5) + (1 + 2) + 1
    assert message["Subject"] == (
        "Hashtag digest 2021-03-18: potential reach not available (Bluesky, Mastodon: no"
        f" follower counts), 4 contributors, 5 new posts, {interactions:,} interactions,"
        " 3 decisions; INCOMPLETE: 2 source(s) not watched"
    )
    text, html, image = parts(message)

    # The chart is inline, referenced by its Content-ID, and never fetched from anywhere.
    cid = str(image["Content-ID"]).strip().strip("<>")
    assert f'src="cid:{cid}"' in html
    assert image.get_content_disposition() == "inline"
    assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    assert "http://" not in html.split("<img", 1)[1].split(">", 1)[0]
    assert "https://" not in html.split("<img", 1)[1].split(">", 1)[0]

    # Post text and author are escaped in HTML, shown as typed in the plain text.
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "Ann &lt;img src=x onerror=alert(1)&gt;" in html
    assert SCRIPT_TEXT in text and SCRIPT_AUTHOR in text
    assert "Pending: never quoted" not in text and "Pending: never quoted" not in html
    assert (
        "1. +10,000,008  a pending post on bluesky (likes +10,000,000, shares +5, replies +2,"
        " quotes +1; counted, not quoted until approved)"
    ) in text
    assert "(likes +10, shares +2, replies +1)" in text
    assert "https://mastodon.example/p1" in text and 'href="https://mastodon.example/p1"' in html

    # The numbers, the 10 million likes, and the metric nobody gives.
    assert row("likes", "10,000,015") + "(10,000,062)" in text  # (campaign total so far)
    assert "1. +10,000,008" in text
    assert row("views", "not available") + "(not available)" in text
    assert html.count("not available") >= 2 and ">0<" not in html.split("Engagement")[1][:800]
    assert row("All posts", "5") + "vs day before +3 (+150%)" in text
    assert "Decisions made              3 (2 approved, 1 rejected)" in text
    assert "Takedown requests           1" in text

    # Coverage: the source failing since noon, and the disabled one, say so in both parts.
    assert "WARNING: these figures are INCOMPLETE.\n2 of 3 source(s)" in text
    assert (
        "FAILING since 2021-03-18 12:10 GMT (last error: HTTP 503 from bsky.social);"
        " polled successfully in 12 of 24 hours; 12 failed poll(s); figures INCOMPLETE"
    ) in text
    assert "DISABLED (X_BEARER_TOKEN is not set)" in text
    assert row("bluesky", "2") + "vs day before +2 (new)" in text
    assert row("mastodon", "3") + "vs day before +1 (+50%)" in text
    assert text.count("[incomplete]") == 6  # all but mastodon
    assert "Failing since 2021-03-18 12:10 GMT" in html and "Polled in 12 of 24 hours" in html
    # The HTML part words health as the text part does, with the state marked.
    assert "12:10 GMT</span> (last error: HTTP 503 from bsky.social)" in html
    assert "Disabled</span> (X_BEARER_TOKEN is not set)" in html
    assert sends(engine)[0].status == SENT


def test_a_day_with_no_posts_still_sends_a_readable_email(
    engine: Engine, configure: Callable[..., Settings], smtp: SmtpCapture
) -> None:
    settings = mail_settings(configure, smtp.port)

    send_digest(engine=engine, settings=settings, day=date(2021, 1, 5))

    text, html, _ = parts(smtp.messages[0])
    assert smtp.messages[0]["Subject"].startswith(
        "Hashtag digest 2021-01-05: potential reach not available (no posts), 0 contributors,"
        " 0 new posts, interactions not available, 0 decisions"
    )
    assert "No post gained interactions." in text
    assert "No source has ever been polled, so nothing was watched." in text
    assert "No source has been configured or polled yet." in html


def test_a_second_send_for_the_same_day_does_nothing_unless_forced(
    engine: Engine, configure: Callable[..., Settings], smtp: SmtpCapture
) -> None:
    settings = mail_settings(configure, smtp.port)

    first = send_digest(engine=engine, settings=settings, day=DAY)
    second = send_digest(engine=engine, settings=settings, day=DAY)

    assert (first.status, second.status) == (SENT, ALREADY_SENT)
    assert len(smtp.messages) == 1

    forced = send_digest(engine=engine, settings=settings, day=DAY, force=True)

    assert forced.status == SENT and len(smtp.messages) == 2
    assert [(s.status, s.forced) for s in sends(engine)] == [(SENT, False), (SENT, True)]


def test_451_then_250_is_retried_and_delivered_once(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    with SmtpCapture(answers=["451 4.3.0 Try again later"]) as server:
        settings = mail_settings(configure, server.port)
        outcome = send_digest(engine=sqlite_engine, settings=settings, day=DAY)

    assert outcome.status == SENT
    assert server.data_attempts == 2 and len(server.messages) == 1


def test_a_refused_login_is_permanent_recorded_and_not_retried(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    with SmtpCapture(password="right") as server:
        settings = mail_settings(
            configure, server.port, SMTP_USERNAME="digest", SMTP_PASSWORD="wrong"
        )
        with pytest.raises(MailError, match="SMTP 535"):
            send_digest(engine=sqlite_engine, settings=settings, day=DAY)

    # One session (smtplib tries each offered mechanism in it), no retry, nothing sent.
    assert server.sessions == 1 and set(server.logins) == {("digest", "wrong")}
    assert server.messages == []
    (record,) = sends(sqlite_engine)
    assert record.status == "failed" and "535" in (record.error or "")


def test_login_when_a_username_is_set(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    with SmtpCapture(password="right") as server:
        settings = mail_settings(
            configure, server.port, SMTP_USERNAME="digest", SMTP_PASSWORD="right"
        )
        send_digest(engine=sqlite_engine, settings=settings, day=DAY)

    assert server.logins == [("digest", "right")] and len(server.messages) == 1


def test_a_server_closing_the_connection_is_retried_then_recorded(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    with ClosingServer() as server:
        settings = mail_settings(configure, server.port)
        with pytest.raises(MailError, match="SMTPServerDisconnected"):
            send_digest(engine=sqlite_engine, settings=settings, day=DAY)

    assert server.connections == 3  # HTTP_RETRIES=2 in tests: three attempts
    (record,) = sends(sqlite_engine)
    assert record.status == "failed"

    # A failed day is not "already sent": the next attempt really tries again.
    with SmtpCapture() as smtp:
        settings = mail_settings(configure, smtp.port)
        assert send_digest(engine=sqlite_engine, settings=settings, day=DAY).status == SENT
    assert len(smtp.messages) == 1


def test_connection_refused_is_retried_then_reported(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = mail_settings(configure, free_port())

    with pytest.raises(MailError, match="ConnectionRefusedError"):
        send_digest(engine=sqlite_engine, settings=settings, day=DAY)

    assert sends(sqlite_engine)[0].status == "failed"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIGEST_TO": ""}, "DIGEST_TO is empty"),
        ({"DIGEST_FROM": ""}, "DIGEST_FROM is not set"),
        ({"SMTP_HOST": ""}, "SMTP_HOST is not set"),
        ({"DIGEST_TO": "not-an-address"}, "DIGEST_TO: 'not-an-address' is not an email"),
        ({"DIGEST_TO": "a@partner.example\r\nBcc: all@evil.example"}, "is not an email"),
        ({"DIGEST_FROM": "<script>@"}, "DIGEST_FROM: '<script>@' is not an email"),
    ],
)
def test_missing_or_bad_addresses_are_refused_before_any_connection(
    sqlite_engine: Engine,
    configure: Callable[..., Settings],
    smtp: SmtpCapture,
    env: dict[str, str],
    message: str,
) -> None:
    # A malformed address stops start-up (SettingsError); a missing one stops the send.
    with pytest.raises(MonitorError, match=message):
        settings = mail_settings(configure, smtp.port, **env)
        send_digest(engine=sqlite_engine, settings=settings, day=DAY)

    assert smtp.messages == [] and sends(sqlite_engine) == []


def test_a_day_not_yet_over_is_refused(
    sqlite_engine: Engine, configure: Callable[..., Settings], smtp: SmtpCapture
) -> None:
    settings = mail_settings(configure, smtp.port)
    today = datetime.now(settings.zone).date()

    with pytest.raises(UserError, match="has not ended yet"):
        send_digest(engine=sqlite_engine, settings=settings, day=today)


def test_the_due_day_is_yesterday_after_digest_time_and_the_day_before_until_then(
    configure: Callable[..., Settings],
) -> None:
    settings = configure(DIGEST_TIME="08:00")
    # 19 March 2021 is GMT; 1 July 2021 is BST, so 07:30 UTC is already 08:30 local.
    assert due_day(settings, datetime(2021, 3, 19, 8, 0, tzinfo=UTC)) == date(2021, 3, 18)
    assert due_day(settings, datetime(2021, 3, 19, 7, 59, tzinfo=UTC)) == date(2021, 3, 17)
    assert due_day(settings, datetime(2021, 7, 1, 7, 30, tzinfo=UTC)) == date(2021, 6, 30)


def test_the_scheduled_job_catches_up_once(
    sqlite_engine: Engine, configure: Callable[..., Settings], smtp: SmtpCapture
) -> None:
    settings = mail_settings(configure, smtp.port)
    start = datetime(2021, 3, 19, 10, 0, tzinfo=UTC)  # the service came up after 08:00

    (first,) = send_due_digest(engine=sqlite_engine, settings=settings, now=start)
    (again,) = send_due_digest(
        engine=sqlite_engine, settings=settings, now=start + timedelta(hours=1)
    )

    assert first.day == DAY and first.status == SENT
    assert again.status == ALREADY_SENT
    assert len(smtp.messages) == 1


def test_the_scheduled_job_logs_a_failure_instead_of_raising(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = mail_settings(configure, free_port())

    assert send_due_digest(engine=sqlite_engine, settings=settings) == []
    assert sends(sqlite_engine)[0].status == "failed"
    # The next look (a minute later) does not try again at once.
    assert send_due_digest(engine=sqlite_engine, settings=settings) == []
    assert len(sends(sqlite_engine)) == 1


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ("starttls", "STARTTLS extension not supported by server"),
        ("ssl", "SSL"),
    ],
)
def test_tls_that_the_server_cannot_do_fails_at_once_and_nothing_goes_in_clear(
    sqlite_engine: Engine, configure: Callable[..., Settings], security: str, message: str
) -> None:
    with SmtpCapture() as server:
        settings = mail_settings(configure, server.port, SMTP_SECURITY=security)
        with pytest.raises(MailError, match=message):
            send_digest(engine=sqlite_engine, settings=settings, day=DAY)

    assert server.messages == [] and server.data_attempts == 0
    assert server.sessions <= 1  # no retry: a TLS mismatch will not mend itself
