"""Alerts to the safeguarding contacts (``SAFEGUARDING_ALERT_TO``) about takedown
requests and escalations.

A request or an escalation only writes an ``alerts`` row in its own
transaction; the message goes out afterwards (a background thread started once
the request committed, and the scheduler's catch-up job every minute), so a
slow or broken mail server never delays, fails or rolls back the request. Every
pending alert is sent in one message, so a flood of requests is a few emails,
not thousands. A failure is kept on the row and shown on the admin page.
Messages carry what a safeguarding lead needs to act (a link to the post in the
staff app, time, platform, author handle) and never media or the requester's
contact details.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import MonitorError, UserError
from monitor.models import AlertKind, AlertStatus, Post, SafeguardingAlert, utcnow
from monitor.services.gallery import PLATFORM_LABELS
from monitor.services.mail import deliver, validated_address

log = logging.getLogger("monitor.alerts")

#: A failed alert is tried again by the catch-up job this many times in all.
MAX_ATTEMPTS = 5
#: At most this many alerts in one message (a flood is summarised in a few mails).
MAX_PER_MESSAGE = 200
_send_lock = threading.Lock()


def raise_alert(
    session: Session,
    settings: Settings,
    *,
    kind: AlertKind,
    post: Post,
    headline: str,
    at: datetime,
) -> SafeguardingAlert | None:
    """Queue an alert in the caller's transaction; None when no alert list is configured."""
    if not settings.safeguarding_alert_to:
        return None
    lines = [
        headline,
        f"Post: {settings.public_base_url}/queue/posts/{post.id}",
        f"Platform: {PLATFORM_LABELS.get(post.platform, post.platform)}",
        f"Author: {post.author_handle}",
        f"At: {at.astimezone(settings.zone):%d %b %Y %H:%M %Z}",
    ]
    alert = SafeguardingAlert(
        kind=kind, post_id=post.id, summary="\n".join(lines), created_at=utcnow()
    )
    session.add(alert)
    return alert


def _addresses(settings: Settings) -> tuple[str, tuple[str, ...]]:
    if not settings.smtp_host:
        raise UserError("SMTP_HOST is not set: safeguarding alerts have nowhere to go")
    if not settings.digest_from:
        raise UserError("DIGEST_FROM is not set: it is the sender of safeguarding alerts")
    sender = validated_address("DIGEST_FROM", settings.digest_from)
    recipients = tuple(
        validated_address("SAFEGUARDING_ALERT_TO", item) for item in settings.safeguarding_alert_to
    )
    return sender, recipients


def build_alert_message(
    alerts: list[SafeguardingAlert], sender: str, recipients: tuple[str, ...]
) -> EmailMessage:
    """Plain text, one block per alert; nothing attached."""
    message = EmailMessage()
    kinds = {alert.kind for alert in alerts}
    noun = "Escalation" if kinds == {AlertKind.ESCALATION} else "Takedown request"
    many = f" ({len(alerts)})" if len(alerts) > 1 else ""
    message["Subject"] = f"Safeguarding: {noun.lower() if many else noun}{many} needs review"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring="safeguarding", domain=sender.rpartition("@")[2])
    body = "\n\n".join(alert.summary for alert in alerts)
    message.set_content(
        f"{body}\n\nOpen the links to review in the staff app. No media is attached.\n"
    )
    return message


def _claim(engine: Engine, *, retry_failed: bool) -> list[SafeguardingAlert]:
    """Mark the alerts to send as ``sending`` so no other sender takes them too."""
    table = SafeguardingAlert.__table__
    wanted = [AlertStatus.PENDING, AlertStatus.FAILED] if retry_failed else [AlertStatus.PENDING]
    with session_scope(engine) as session:
        alerts = list(
            session.execute(
                sa.select(SafeguardingAlert)
                .where(table.c.status.in_(wanted), table.c.attempts < MAX_ATTEMPTS)
                .order_by(table.c.id)
                .limit(MAX_PER_MESSAGE)
            ).scalars()
        )
        claimed = []
        for alert in alerts:
            result = session.execute(
                sa.update(table)
                .where(table.c.id == alert.id, table.c.status == alert.status)
                .values(status=AlertStatus.SENDING, attempts=table.c.attempts + 1)
            )
            if cast("sa.CursorResult[Any]", result).rowcount:
                claimed.append(alert)
        session.expunge_all()
        return claimed


def _finish(engine: Engine, ids: list[int], status: AlertStatus, error: str | None) -> None:
    table = SafeguardingAlert.__table__
    with session_scope(engine) as session:
        session.execute(
            sa.update(table)
            .where(table.c.id.in_(ids))
            .values(
                status=status, error=error, sent_at=utcnow() if status == AlertStatus.SENT else None
            )
        )


def send_pending_alerts(*, engine: Engine, settings: Settings, retry_failed: bool = False) -> int:
    """Send every pending alert in one message; returns how many went. Never raises for
    a mail failure: it is recorded on the alerts and logged."""
    with _send_lock:
        alerts = _claim(engine, retry_failed=retry_failed)
        if not alerts:
            return 0
        ids = [alert.id or 0 for alert in alerts]
        try:
            sender, recipients = _addresses(settings)
            message = build_alert_message(alerts, sender, recipients)
            deliver(message, settings, sender, recipients, what="safeguarding alert")
        except MonitorError as exc:
            error = str(exc)
            log.error("safeguarding alert: %s", error)
            _finish(engine, ids, AlertStatus.FAILED, error)
            return 0
        _finish(engine, ids, AlertStatus.SENT, None)
        return len(ids)


def send_soon(engine: Engine, settings: Settings) -> None:
    """Send pending alerts from a background thread, after the caller has committed."""
    if settings.safeguarding_alert_to:
        threading.Thread(
            target=send_pending_alerts,
            kwargs={"engine": engine, "settings": settings},
            name="safeguarding-alerts",
            daemon=True,
        ).start()


def failed_alerts(session: Session, limit: int = 10) -> list[SafeguardingAlert]:
    """The latest alerts that could not be sent, for the admin page."""
    table = SafeguardingAlert.__table__
    query = sa.select(SafeguardingAlert).where(table.c.status == AlertStatus.FAILED)
    return list(session.execute(query.order_by(table.c.id.desc()).limit(limit)).scalars())
