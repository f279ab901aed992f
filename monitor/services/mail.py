"""Composing the digest email and delivering it over SMTP, at most once a day.

The message is ``multipart/related``: a ``multipart/alternative`` (a plain
text part that reads well alone, and the HTML part) plus the chart PNG that
the HTML shows through ``cid:``, so no mail client ever fetches a remote image.

SMTP follows SPEC.md: ``SMTP_SECURITY`` starttls / ssl / none, a login when
``SMTP_USERNAME`` is set, and the outbound network policy of the HTTP settings
(timeout, retries, backoff). A 4xx answer, a refused or dropped connection or
a timeout is retried with exponential backoff; anything else (a refused login,
a 5xx) fails at once. Every attempt that reached the server is recorded in
``digest_sends``, which is also what keeps a second send of a day from going out.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import smtplib
import ssl
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from monitor.config import Settings, bare_address
from monitor.db import session_scope
from monitor.errors import MonitorError, UserError
from monitor.models import DigestSend, DigestStatus, utcnow
from monitor.services.charts import digest_chart_png
from monitor.services.digest import Digest, Format, check_past_day, compute_digest
from monitor.services.engagement import METRICS
from monitor.templating import make_environment

log = logging.getLogger("monitor.mail")

SENT = DigestStatus.SENT
FAILED = DigestStatus.FAILED
ALREADY_SENT = "already sent"
MAX_BACKOFF_SECONDS = 60.0


class MailError(MonitorError):
    """The digest could not be delivered; the message says what the server answered."""


@dataclasses.dataclass(frozen=True, slots=True)
class SendOutcome:
    day: date
    status: str
    recipients: tuple[str, ...]
    detail: str | None = None


def digest_subject(digest: Digest) -> str:
    return f"Hashtag digest {digest.period.label}: {digest.headline}"


def render_digest_text(digest: Digest, settings: Settings) -> str:
    """The plain-text digest (also what ``digest preview`` prints)."""
    return (
        make_environment(settings, mail=True)
        .get_template("email/digest.txt")
        .render(digest=digest, fmt=Format, metrics=METRICS, zone=settings.zone)
    )


def render_digest_html(digest: Digest, settings: Settings, *, chart_src: str) -> str:
    """The HTML digest; ``chart_src`` is the email's ``cid:`` or a self-contained data URI."""
    return (
        make_environment(settings, mail=True)
        .get_template("email/digest.html")
        .render(
            digest=digest,
            fmt=Format,
            metrics=METRICS,
            subject=digest_subject(digest),
            chart_src=chart_src,
        )
    )


def preview_digest_html(digest: Digest, settings: Settings) -> str:
    """The HTML digest as one file a browser opens: the chart inlined as a data URI."""
    chart = base64.b64encode(digest_chart_png(digest)).decode("ascii")
    return render_digest_html(digest, settings, chart_src=f"data:image/png;base64,{chart}")


def build_digest_message(
    digest: Digest,
    settings: Settings,
    *,
    sender: str | None = None,
    recipients: tuple[str, ...] = (),
) -> EmailMessage:
    """The whole email; sender and recipients may be left out for a preview file."""
    # Ids under the sender's domain, as mail filters expect; a preview has none.
    domain = sender.rpartition("@")[2] if sender else "hashtag-monitor.invalid"
    chart_cid = make_msgid(idstring="digest-chart", domain=domain)
    subject = digest_subject(digest)
    html = render_digest_html(digest, settings, chart_src=f"cid:{chart_cid[1:-1]}")
    alternative = EmailMessage()
    alternative.set_content(render_digest_text(digest, settings))
    alternative.add_alternative(html, subtype="html")
    del alternative["MIME-Version"]  # only the top-level header carries it
    message = EmailMessage()
    message["MIME-Version"] = "1.0"
    message.make_related()
    message.set_param("type", "multipart/alternative")  # RFC 2387: the root part's type
    message.attach(alternative)
    message.add_related(
        digest_chart_png(digest),
        maintype="image",
        subtype="png",
        cid=chart_cid,
        disposition="inline",
        filename=f"digest-{digest.period.first_day.isoformat()}.png",
    )
    message["Subject"] = subject
    if sender:
        message["From"] = sender
    if recipients:
        message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring="digest", domain=domain)
    return message


def _checked_addresses(settings: Settings) -> tuple[str, tuple[str, ...]]:
    """DIGEST_FROM and DIGEST_TO as bare addresses, or a UserError naming the bad key."""
    if not settings.smtp_host:
        raise UserError("SMTP_HOST is not set: the digest has nowhere to go")
    if not settings.digest_to:
        raise UserError("DIGEST_TO is empty: set it to a comma-separated list of addresses")
    if not settings.digest_from:
        raise UserError("DIGEST_FROM is not set: give the address the digest is sent from")
    sender = validated_address("DIGEST_FROM", settings.digest_from)
    return sender, tuple(validated_address("DIGEST_TO", item) for item in settings.digest_to)


def validated_address(key: str, value: str) -> str:
    """The bare address of a configured one, or a UserError naming the key."""
    address = bare_address(value)
    if address is None:
        raise UserError(f"{key}: {value!r} is not an email address")
    return address


def _is_transient(exc: BaseException) -> bool:
    """4xx answers and lost connections may pass on retry; 5xx and TLS errors will not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, ssl.SSLError):
        return False
    return isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError)


def _describe_attempt(state: RetryCallState) -> str:
    """What went wrong on a failed attempt (tenacity's outcome may be unset or not raise)."""
    exc = state.outcome.exception() if state.outcome else None
    return describe_smtp_error(exc) if exc is not None else "?"


def describe_smtp_error(exc: BaseException) -> str:
    """One line for status and logs: the server's code and words, or the network error."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(
            f"{who} ({code} {_decode(text)})" for who, (code, text) in exc.recipients.items()
        )
        return f"every recipient refused: {refused}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code} {_decode(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _decode(text: bytes | str) -> str:
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return " ".join(value.split())[:300]


def _deliver_once(
    message: EmailMessage, settings: Settings, sender: str, recipients: tuple[str, ...]
) -> dict[str, tuple[int, bytes]]:
    host, port = settings.smtp_host or "", settings.smtp_port
    timeout = settings.http_timeout_seconds
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if settings.smtp_security == "ssl":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        client.ehlo()
        if settings.smtp_security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if settings.smtp_username:
            client.login(settings.smtp_username, settings.smtp_password or "")
        return client.send_message(message, from_addr=sender, to_addrs=list(recipients))


def deliver(
    message: EmailMessage,
    settings: Settings,
    sender: str,
    recipients: tuple[str, ...],
    *,
    what: str = "digest",
) -> dict[str, tuple[int, bytes]]:
    """Send over SMTP, retrying transient failures; returns the recipients refused.

    Raises MailError with the server's answer when it fails for good.
    """
    retrying = Retrying(
        stop=stop_after_attempt(settings.http_retries + 1),
        wait=wait_exponential(multiplier=settings.http_backoff_seconds, max=MAX_BACKOFF_SECONDS),
        retry=retry_if_exception(_is_transient),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "SMTP attempt %d failed (%s); retrying",
            state.attempt_number,
            _describe_attempt(state),
        ),
    )
    try:
        return retrying(_deliver_once, message, settings, sender, recipients)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"{what} not sent: {describe_smtp_error(exc)}") from exc


def already_sent(session: Session, day: date) -> bool:
    query = sa.select(sa.func.count()).where(
        col(DigestSend.day) == day, col(DigestSend.status) == SENT
    )
    return bool(session.execute(query).scalar_one())


def last_digest_send(session: Session) -> DigestSend | None:
    """The latest attempt, for ``status`` and the admin page (a failure shows its error)."""
    query = sa.select(DigestSend).order_by(
        col(DigestSend.sent_at).desc(), col(DigestSend.id).desc()
    )
    return session.execute(query.limit(1)).scalars().first()


def send_digest(
    *, engine: Engine, settings: Settings, day: date, force: bool = False
) -> SendOutcome:
    """Send the digest of ``day`` unless it already went out (``force`` sends again)."""
    sender, recipients = _checked_addresses(settings)
    check_past_day(day, settings)
    with session_scope(engine) as session:
        if not force and already_sent(session, day):
            return SendOutcome(day, ALREADY_SENT, recipients)
        digest = compute_digest(session, settings, day)
    message = build_digest_message(digest, settings, sender=sender, recipients=recipients)
    try:
        refused = deliver(message, settings, sender, recipients)
    except MailError as exc:
        _record(engine, day, recipients, FAILED, str(exc), force)
        raise
    refused_list = ", ".join(f"{who} ({code})" for who, (code, _) in refused.items())
    detail = f"refused by the server: {refused_list}" if refused else None
    _record(engine, day, recipients, SENT, detail, force)
    return SendOutcome(day, SENT, recipients, detail)


def _record(
    engine: Engine,
    day: date,
    recipients: tuple[str, ...],
    status: DigestStatus,
    error: str | None,
    forced: bool,
) -> None:
    with session_scope(engine) as session:
        session.add(
            DigestSend(
                day=day,
                sent_at=utcnow(),
                recipients=", ".join(recipients),
                status=status,
                error=error,
                forced=forced,
            )
        )


def due_day(settings: Settings, now: datetime) -> date:
    """The latest day whose digest time has passed: yesterday after DIGEST_TIME, else the
    day before, so a start before 08:00 still catches up a digest missed the morning before."""
    local = now.astimezone(settings.zone)
    hour, minute = (int(part) for part in settings.digest_time.split(":"))
    days_back = 1 if local.time() >= time(hour, minute) else 2
    return local.date() - timedelta(days=days_back)


def send_due_digest(
    *, engine: Engine, settings: Settings, now: datetime | None = None
) -> SendOutcome | None:
    """The scheduled job (and the catch-up on start): send the due day's digest once."""
    day = due_day(settings, now or utcnow())
    try:
        outcome = send_digest(engine=engine, settings=settings, day=day)
    except MonitorError as exc:
        log.error("digest for %s: %s", day.isoformat(), exc)
        return None
    if outcome.status == SENT:
        log.info("digest for %s sent to %d recipient(s)", day, len(outcome.recipients))
    return outcome
