"""Runtime switches admins flip without a restart, each change on the audit record."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from monitor.models import AppSetting, utcnow
from monitor.services import audit

#: When true the public gallery shows a neutral message and an empty feed (kill switch).
GALLERY_PAUSED = audit.GALLERY_PAUSED


def get_app_setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(AppSetting, key)
    return default if row is None else row.value


def set_app_setting(
    session: Session, key: str, value: Any, *, actor: str, reason: str | None = None
) -> None:
    """Change a switch and write who changed it, from what, to what."""
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
    )


def gallery_paused(session: Session) -> bool:
    return bool(get_app_setting(session, GALLERY_PAUSED, False))
