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
from collections.abc import Iterator, Mapping
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


#: Marks a source key as polling with a campaign's own credentials: ``<key>@campaign:<slug>``.
OWNER_MARK = "@campaign:"


@dataclasses.dataclass(frozen=True, slots=True)
class Owner:
    """The campaign whose own credentials a source polls with (see ``credentials``)."""

    campaign_id: int
    slug: str


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ConfiguredPlatform:
    """A platform from settings: its adapter, or why it could not be built.

    ``owner`` names the campaign whose own credentials built it (None: the install's);
    each is a separate adapter with its own HTTP client, so no two accounts' settings
    ever meet in one adapter.
    """

    name: str
    adapter: Adapter | None
    disabled_reason: str | None = None
    owner: Owner | None = None

    @property
    def campaign_id(self) -> int | None:
        return None if self.owner is None else self.owner.campaign_id


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        timeout=settings.http_timeout_seconds,
        attempts=settings.http_retries + 1,
        backoff=settings.http_backoff_seconds,
        max_retry_after=settings.http_max_retry_after_seconds,
    )


def build_platform(
    name: str, raw: Mapping[str, str], client: HttpClient, owner: Owner | None = None
) -> ConfiguredPlatform:
    """The platform's adapter from ``raw`` (only its own declared keys are handed over:
    a plugin never sees SMTP_PASSWORD or SECRET_KEY), or why it cannot be built."""
    try:
        adapter_class = get_adapter(name)
        adapter = adapter_class(adapter_class.own_config(raw), client)
    except AdapterError as exc:
        return ConfiguredPlatform(name, None, str(exc), owner)
    except Exception as exc:  # a plugin that cannot even load stays disabled
        reason = f"adapter {name!r} could not be loaded: {type(exc).__name__}: {exc}"
        return ConfiguredPlatform(name, None, reason, owner)
    return ConfiguredPlatform(name, adapter, None, owner)


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
            platforms.append(build_platform(name, raw, client))
        yield platforms
    finally:
        for client in clients:
            client.close()


def source_key(platform: str, target: Target, owner: Owner | None = None) -> str:
    """The source's unique key: platform and target, and the campaign whose own
    credentials poll it (so its cursor and health are its own)."""
    key = f"{platform}:{target.key}"
    return key if owner is None else f"{key}{OWNER_MARK}{owner.slug}"


def key_owner(key: str) -> str | None:
    """The slug of the campaign whose credentials a source key polls with (None: the
    install's): what ``status`` and the Sources page show, never a value."""
    _, mark, slug = key.partition(OWNER_MARK)
    return slug if mark else None


def source_label(key: str) -> str:
    """A source key as people say it: ``mastodon:https://mastodon.social|CEADAY21`` reads
    "Mastodon: mastodon.social, #CEADAY21"; a whole-platform row reads "Mastodon: all"."""
    key, _, owner = key.partition(OWNER_MARK)
    platform, _, rest = key.partition(":")
    scope, _, tags = rest.rpartition("|") if "|" in rest else (rest, "", "")
    parts = []
    if scope and scope != WILDCARD_SCOPE:
        parts.append(urlsplit(scope).netloc or scope)
    parts.extend(f"#{tag}" for tag in tags.split(",") if tag)
    label = f"{display_name(platform)}: {', '.join(parts) or 'all'}"
    return f"{label} (campaign {owner}'s account)" if owner else label


def ensure_source(
    session: Session,
    platform: str,
    target: Target,
    now: datetime | None = None,
    owner: Owner | None = None,
) -> Source:
    """The source row for a target, created on first sight and brought back if retired."""
    key = source_key(platform, target, owner)
    source = session.exec(select(Source).where(Source.key == key)).first()
    if source is None:
        source = Source(
            key=key,
            platform=platform,
            scope=target.scope,
            hashtags=",".join(target.hashtags),
            created_at=now or utcnow(),
            campaign_id=None if owner is None else owner.campaign_id,
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
    campaign_id: int | None


def is_current(source: SourceFacts, watch: Watch) -> bool:
    """Still watched: a platform and tags some running campaign asks for, with the
    credentials the source polls with (a campaign's own cleared: its source retires)."""
    return watch.covers(source.platform, source_tags(source.hashtags), source.campaign_id)


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


def record_disabled(
    session: Session,
    platform: str,
    reason: str | None,
    now: datetime,
    owner: Owner | None = None,
) -> None:
    """Keep one row per platform (and per campaign credentials) that cannot run, so status
    and the digest can say why."""
    target = Target(WILDCARD_SCOPE, ())
    key = source_key(platform, target, owner)
    source = session.exec(select(Source).where(Source.key == key)).first()
    if reason is None:
        if source is not None:
            session.delete(source)
        return
    if source is None:
        source = ensure_source(session, platform, target, owner=owner)
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
