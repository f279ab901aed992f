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

Each campaign has its own digest: its figures, recipients, sender and time
(:func:`monitor.services.campaigns.digest_of`), sent once per (campaign, day).
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
from monitor.models import Campaign, DigestSend, DigestStatus, utcnow
from monitor.services.campaigns import DigestPlan, digest_of, get_campaign, list_campaigns, runs_on
from monitor.services.charts import digest_chart_png
from monitor.services.digest import Digest, Format, check_past_day, compute_digest
from monitor.services.engagement import METRICS
from monitor.templating import make_environment

log = logging.getLogger("monitor.mail")

SENT = DigestStatus.SENT
FAILED = DigestStatus.FAILED
ALREADY_SENT = "already sent"
MAX_BACKOFF_SECONDS = 60.0
#: How often the scheduler looks for a campaign whose digest time has come.
DIGEST_CHECK_EVERY = timedelta(seconds=60)
#: A digest that failed (the server down, refused) is tried again by the scheduler after
#: this, not at every look; ``digest send`` sends it at once.
RETRY_FAILED_AFTER = timedelta(hours=1)


class MailError(MonitorError):
    """The digest could not be delivered; the message says what the server answered."""


@dataclasses.dataclass(frozen=True, slots=True)
class SendOutcome:
    day: date
    status: str
    recipients: tuple[str, ...]
    detail: str | None = None
    #: The campaign's slug.
    campaign: str = "default"


def digest_subject(digest: Digest) -> str:
    """The subject, naming the campaign when the install has more than one."""
    named = f" ({digest.campaign})" if digest.campaign else ""
    return f"Hashtag digest {digest.period.label}{named}: {digest.headline}"


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


def _checked_addresses(
    settings: Settings, campaign: Campaign, plan: DigestPlan
) -> tuple[str, tuple[str, ...]]:
    """The campaign's digest sender and recipients as bare addresses, or a UserError
    naming the key (or the campaign option) to set."""
    own = not campaign.is_default
    to_key = "--digest-to" if own and campaign.digest_to else "DIGEST_TO"
    from_key = "--digest-from" if campaign.digest_from else "DIGEST_FROM"
    if not settings.smtp_host:
        raise UserError("SMTP_HOST is not set: the digest has nowhere to go")
    if not plan.recipients:
        if own:
            raise UserError(
                f"campaign {campaign.slug!r} has no digest recipients: set them with"
                f" hashtag-monitor campaigns edit {campaign.slug} --digest-to A,B"
            )
        raise UserError("DIGEST_TO is empty: set it to a comma-separated list of addresses")
    if not plan.sender:
        raise UserError("DIGEST_FROM is not set: give the address the digest is sent from")
    sender = validated_address(from_key, plan.sender)
    return sender, tuple(validated_address(to_key, item) for item in plan.recipients)


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


def _sends_of(campaign: Campaign) -> sa.ColumnElement[bool]:
    """The campaign's sends (the default's include those from before campaigns)."""
    mine = col(DigestSend.campaign_id) == campaign.id
    if campaign.is_default:
        return sa.or_(mine, col(DigestSend.campaign_id).is_(None))
    return mine


def already_sent(session: Session, day: date, campaign: Campaign) -> bool:
    query = sa.select(sa.func.count()).where(
        col(DigestSend.day) == day, col(DigestSend.status) == SENT, _sends_of(campaign)
    )
    return bool(session.execute(query).scalar_one())


def _failed_lately(session: Session, campaign: Campaign, day: date, now: datetime) -> bool:
    query = sa.select(sa.func.count()).where(
        col(DigestSend.day) == day,
        col(DigestSend.status) == FAILED,
        col(DigestSend.sent_at) > now - RETRY_FAILED_AFTER,
        _sends_of(campaign),
    )
    return bool(session.execute(query).scalar_one())


def last_digest_send(session: Session, campaign: Campaign | None = None) -> DigestSend | None:
    """The latest attempt (of one campaign's digest, if given: ``/stats`` shows its own
    campaign's only), for ``status`` and the admin page (a failure shows its error)."""
    query = sa.select(DigestSend).order_by(
        col(DigestSend.sent_at).desc(), col(DigestSend.id).desc()
    )
    if campaign is not None:
        query = query.where(_sends_of(campaign))
    return session.execute(query.limit(1)).scalars().first()


def send_digest(
    *,
    engine: Engine,
    settings: Settings,
    day: date,
    force: bool = False,
    campaign: str | None = None,
) -> SendOutcome:
    """Send campaign ``campaign``'s (None: the default's) digest of ``day`` to its
    recipients unless it already went out (``force`` sends again)."""
    with session_scope(engine) as session:
        chosen = get_campaign(session, settings, campaign)
        sender, recipients = _checked_addresses(settings, chosen, digest_of(chosen, settings))
        check_past_day(day, settings)
        slug, campaign_id = chosen.slug, chosen.id
        if not force and already_sent(session, day, chosen):
            return SendOutcome(day, ALREADY_SENT, recipients, campaign=slug)
        digest = compute_digest(session, settings, day, campaign=chosen)
    message = build_digest_message(digest, settings, sender=sender, recipients=recipients)
    attempt = _Attempt(day, recipients, force, campaign_id)
    try:
        refused = deliver(message, settings, sender, recipients)
    except MailError as exc:
        _record(engine, attempt, FAILED, str(exc))
        raise
    refused_list = ", ".join(f"{who} ({code})" for who, (code, _) in refused.items())
    detail = f"refused by the server: {refused_list}" if refused else None
    _record(engine, attempt, SENT, detail)
    return SendOutcome(day, SENT, recipients, detail, campaign=slug)


@dataclasses.dataclass(frozen=True, slots=True)
class _Attempt:
    day: date
    recipients: tuple[str, ...]
    forced: bool
    campaign_id: int | None


def _record(engine: Engine, attempt: _Attempt, status: DigestStatus, error: str | None) -> None:
    with session_scope(engine) as session:
        session.add(
            DigestSend(
                day=attempt.day,
                sent_at=utcnow(),
                recipients=", ".join(attempt.recipients),
                status=status,
                error=error,
                forced=attempt.forced,
                campaign_id=attempt.campaign_id,
            )
        )


def due_day(settings: Settings, now: datetime, at: str | None = None) -> date:
    """The latest day whose digest time (``at``, default DIGEST_TIME) has passed: yesterday
    after it, else the day before, so a start before 08:00 still catches up a digest missed
    the morning before."""
    local = now.astimezone(settings.zone)
    hour, minute = (int(part) for part in (at or settings.digest_time).split(":"))
    days_back = 1 if local.time() >= time(hour, minute) else 2
    return local.date() - timedelta(days=days_back)


def send_due_digest(
    *, engine: Engine, settings: Settings, now: datetime | None = None
) -> list[SendOutcome]:
    """The scheduled job (every few minutes, and the catch-up on start): each campaign
    with recipients whose due day was one of its days gets that day's digest, once.

    A campaign's due day is the latest whose digest time has passed; an ended campaign's
    last day is due the morning after it, and nothing after; an archived one gets none.
    """
    now = now or utcnow()
    with Session(engine) as session:
        due = [
            (campaign.slug, day)
            for campaign in list_campaigns(session, settings)
            if campaign.archived_at is None
            and (plan := digest_of(campaign, settings)).recipients
            and runs_on(campaign, day := due_day(settings, now, plan.time), settings.zone)
            and not _failed_lately(session, campaign, day, now)
        ]
    outcomes = []
    for slug, day in due:
        try:
            outcome = send_digest(engine=engine, settings=settings, day=day, campaign=slug)
        except MonitorError as exc:
            log.error("digest of %s for %s: %s", slug, day.isoformat(), exc)
            continue
        if outcome.status == SENT:
            log.info(
                "digest of %s for %s sent to %d recipient(s)", slug, day, len(outcome.recipients)
            )
        outcomes.append(outcome)
    return outcomes
