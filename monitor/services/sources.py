"""Building adapters from settings, and the record of every source: its health and its life.

A source is born the first time the configuration asks for it (``ensure_source``)
and retires when the configuration stops asking (``retire_unconfigured``, run at
the start of every polling cycle): a platform or hashtag removed from the settings.
A retired source keeps its row and poll runs, so the digest of a day it watched
still says how well it was watched; it leaves ``status``, ``/metrics``, the Sources
page and the coverage of every later period. Configured again, it comes back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlmodel import Session, select

from adapters import display_name, get_adapter
from adapters.base import Adapter, AdapterError, Target
from adapters.http import HttpClient, RetryPolicy
from adapters.text import normalise_tag
from monitor.config import Settings
from monitor.models import Source, utcnow
from monitor.services.campaigns import Watch, local_today, watched

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


def ensure_source(
    session: Session, platform: str, target: Target, now: datetime | None = None
) -> Source:
    """The source row for a target, created on first sight and brought back if retired."""
    key = source_key(platform, target)
    source = session.exec(select(Source).where(Source.key == key)).first()
    if source is None:
        source = Source(
            key=key,
            platform=platform,
            scope=target.scope,
            hashtags=",".join(target.hashtags),
            created_at=now or utcnow(),
        )
        session.add(source)
        session.flush()
    elif source.retired_at is not None:
        source.retired_at = None
    return source


def source_tags(hashtags: str) -> tuple[str, ...]:
    """A source's stored hashtags (comma-separated) in matching form; empty means all."""
    return tuple(normalise_tag(tag) for tag in hashtags.split(",") if tag.strip())


class SourceFacts(Protocol):
    """What deciding whether a source is still configured needs from its row."""

    platform: str
    hashtags: str


def is_current(source: SourceFacts, watch: Watch) -> bool:
    """Still watched: a platform and tags some running campaign asks for."""
    return watch.covers(source.platform, source_tags(source.hashtags))


def retire_unconfigured(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Retire every live source no running campaign asks for any more; their keys.

    Run before each cycle polls, so a platform or hashtag removed from the settings,
    or a campaign that ended, stops counting from its first cycle without it (not for
    ever after, as before).
    """
    watch = watched(session, settings, local_today(settings, now))
    retired = []
    for source in list_sources(session):
        if not is_current(source, watch):
            source.retired_at = now
            retired.append(source.key)
    return retired


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


def live_sources() -> sa.ColumnElement[bool]:
    """The condition for sources still configured (not retired)."""
    return sa.column("retired_at").is_(None)


def list_sources(session: Session, *, include_retired: bool = False) -> list[Source]:
    """The sources people are shown (status, Sources page): the retired only when asked."""
    query = select(Source).order_by(sa.text("platform"), sa.text("key"))
    if not include_retired:
        query = query.where(live_sources())
    return list(session.exec(query))
