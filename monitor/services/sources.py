"""Building adapters from settings, and the health record of every source."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlmodel import Session, select

from adapters import display_name, get_adapter
from adapters.base import Adapter, AdapterError, Target
from adapters.http import HttpClient, RetryPolicy
from monitor.config import Settings
from monitor.models import Source

WILDCARD_SCOPE = "*"


@dataclasses.dataclass(frozen=True, slots=True)
class ConfiguredPlatform:
    """A platform from settings: its adapter, or why it could not be built."""

    name: str
    adapter: Adapter | None
    disabled_reason: str | None = None


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        timeout=settings.http_timeout_seconds,
        attempts=settings.http_retries + 1,
        backoff=settings.http_backoff_seconds,
        max_retry_after=settings.http_max_retry_after_seconds,
    )


@contextmanager
def configured_platforms(
    settings: Settings, only: str | None = None
) -> Iterator[list[ConfiguredPlatform]]:
    """Every enabled platform's adapter, each with its own HTTP client, closed after."""
    clients: list[HttpClient] = []
    platforms: list[ConfiguredPlatform] = []
    raw = settings.raw
    try:
        for name in settings.enabled_platforms:
            if only and name != only:
                continue
            client = HttpClient(retry_policy(settings))
            clients.append(client)
            try:
                adapter_class = get_adapter(name)
                # Only its own declared keys: a plugin never sees SMTP_PASSWORD or SECRET_KEY.
                adapter = adapter_class(adapter_class.own_config(raw), client)
            except AdapterError as exc:
                platforms.append(ConfiguredPlatform(name, None, str(exc)))
            except Exception as exc:  # a plugin that cannot even load stays disabled
                reason = f"adapter {name!r} could not be loaded: {type(exc).__name__}: {exc}"
                platforms.append(ConfiguredPlatform(name, None, reason))
            else:
                platforms.append(ConfiguredPlatform(name, adapter))
        yield platforms
    finally:
        for client in clients:
            client.close()


def source_key(platform: str, target: Target) -> str:
    return f"{platform}:{target.key}"


def source_label(key: str) -> str:
    """A source key as people say it: ``mastodon:https://mastodon.social|CEADAY21`` reads
    "Mastodon: mastodon.social, #CEADAY21"; a whole-platform row reads "Mastodon: all"."""
    platform, _, rest = key.partition(":")
    scope, _, tags = rest.rpartition("|") if "|" in rest else (rest, "", "")
    parts = []
    if scope and scope != WILDCARD_SCOPE:
        parts.append(urlsplit(scope).netloc or scope)
    parts.extend(f"#{tag}" for tag in tags.split(",") if tag)
    return f"{display_name(platform)}: {', '.join(parts) or 'all'}"


def ensure_source(session: Session, platform: str, target: Target) -> Source:
    """The source row for a target, created on first sight."""
    key = source_key(platform, target)
    source = session.exec(select(Source).where(Source.key == key)).first()
    if source is None:
        source = Source(
            key=key, platform=platform, scope=target.scope, hashtags=",".join(target.hashtags)
        )
        session.add(source)
        session.flush()
    return source


def record_disabled(session: Session, platform: str, reason: str | None, now: datetime) -> None:
    """Keep one row per platform that cannot run, so status and the digest can say why."""
    target = Target(WILDCARD_SCOPE, ())
    key = source_key(platform, target)
    source = session.exec(select(Source).where(Source.key == key)).first()
    if reason is None:
        if source is not None:
            session.delete(source)
        return
    if source is None:
        source = ensure_source(session, platform, target)
    if source.disabled_reason != reason:
        source.disabled_reason = reason
        source.last_error = reason
        source.last_error_at = now
    source.failing_since = source.failing_since or now


def list_sources(session: Session) -> list[Source]:
    return list(session.exec(select(Source).order_by(sa.text("platform"), sa.text("key"))))
