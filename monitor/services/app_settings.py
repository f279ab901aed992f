"""Runtime switches admins flip without a restart, each change on the audit record."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.models import AppSetting, Campaign, utcnow
from monitor.services import audit

#: When true every campaign's public gallery shows a neutral message and an empty feed
#: (the install's kill switch); ``gallery_paused:<campaign id>`` is one campaign's own.
GALLERY_PAUSED = audit.GALLERY_PAUSED


def get_app_setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(AppSetting, key)
    return default if row is None else row.value


def set_app_setting(
    session: Session,
    key: str,
    value: Any,
    *,
    actor: str,
    reason: str | None = None,
    campaign_id: int | None = None,
) -> None:
    """Change a switch and write who changed it, from what, to what (``campaign_id``: the
    campaign the switch is one of, on the audit row)."""
    row = session.get(AppSetting, key)
    old = None if row is None else row.value
    now = utcnow()
    if row is None:
        row = AppSetting(key=key, value=value, updated_at=now, updated_by=actor)
    else:
        row.value, row.updated_at, row.updated_by = value, now, actor
    session.add(row)
    audit.record(
        session,
        at=now,
        actor=actor,
        action=audit.Action.SETTING_CHANGED,
        reason=reason,
        detail={"key": key, "from": old, "to": value},
        campaign_id=campaign_id,
    )


def campaign_key(base: str, campaign: Campaign | None) -> str:
    """The setting that holds ``base`` (a look, pins, reject reasons) for ``campaign``:
    the default campaign's, and None's, is the install's own ``base``, so an install with
    one campaign reads what it always did; another campaign's is ``base:<id>``."""
    if campaign is None or campaign.is_default or campaign.id is None:
        return base
    return f"{base}:{campaign.id}"


def every_campaigns(session: Session, base: str) -> list[tuple[str, Any]]:
    """``base`` and every campaign's own ``base:<id>``, with their values."""
    table = AppSetting.__table__
    rows = session.execute(
        sa.select(table.c.key, table.c.value).where(
            sa.or_(table.c.key == base, table.c.key.like(f"{base}:%"))
        )
    )
    return [(key, value) for key, value in rows]


def pause_key(campaign_id: int) -> str:
    """The setting that holds one campaign's own kill switch."""
    return f"{GALLERY_PAUSED}:{campaign_id}"


def gallery_paused(session: Session, campaign_id: int | None = None) -> bool:
    """Is the gallery of ``campaign_id`` paused (by the install's switch or its own)?
    None asks about the install's switch alone."""
    keys = [GALLERY_PAUSED] if campaign_id is None else [GALLERY_PAUSED, pause_key(campaign_id)]
    table = AppSetting.__table__
    values = session.execute(sa.select(table.c.value).where(table.c.key.in_(keys))).scalars()
    return any(bool(value) for value in values)


def paused_campaigns(session: Session) -> frozenset[int]:
    """The campaigns whose own kill switch is on (the install's is :func:`gallery_paused`)."""
    return frozenset(
        int(key.rpartition(":")[2])
        for key, value in every_campaigns(session, GALLERY_PAUSED)
        if value is True and key.rpartition(":")[2].isdigit()
    )
