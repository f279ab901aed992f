"""A campaign's own platform credentials: a force polling with its own X or Instagram account.

Platform credentials are the install's (the environment) unless a campaign holds its
own for a platform; then that campaign's hashtags on that platform are polled with
its credentials only, as its own sources (:class:`monitor.services.campaigns.Watch`
keeps them apart), and every other campaign's with the install's. Neither is ever
sent for the other's tags, and no adapter is built from two owners' settings.

What a campaign may set, per platform, is the adapter's *credential keys*: the keys
its :class:`adapters.settings.AdapterSettings` declares secret or required (a token,
and the account it belongs to: ``INSTAGRAM_USER_ID``, ``BLUESKY_HANDLE``). Everything
else (API bases, instances, feeds, quotas) stays the install's, so a campaign admin
cannot point the server at an address of their choosing. A value is checked with the
adapter's own settings model (the same one-line ``KEY: message``) before it is kept.

Values are stored sealed: Fernet (AES-128-CBC with HMAC-SHA256) under a key derived
from ``SECRET_KEY`` by HKDF-SHA256 with a purpose label of its own, so the key that
signs cookies is never the key that encrypts, and the sealed text names the campaign,
platform and key it belongs to (a row copied onto another campaign does not open).
Nothing shows a value back: pages and commands say "set" or "not set", when and by
whom. If ``SECRET_KEY`` changes, the campaign's source for that platform is disabled
with a message saying to set them again; every other source keeps running.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

import pydantic
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from adapters import available_adapters, get_adapter
from adapters.http import HttpClient
from monitor.config import Settings
from monitor.db import read_only
from monitor.errors import UserError
from monitor.models import Campaign, CampaignCredential, Role, User, utcnow
from monitor.services import audit
from monitor.services.audit import Action
from monitor.services.campaigns import Watch, get_campaign, list_campaigns, role_in
from monitor.services.sources import ConfiguredPlatform, Owner, build_platform, retry_policy

#: HKDF's ``info``: what the derived key is for. Never change it while values are stored.
PURPOSE = b"hashtag-monitor/campaign-credentials/v1"
MAX_VALUE_CHARS = 4000


def credential_keys(platform: str) -> tuple[str, ...]:
    """The keys a campaign may hold for ``platform``: its adapter's secret and required
    keys, in the order it declares them (none: the platform takes no credentials)."""
    try:
        adapter = get_adapter(platform)
    except KeyError:
        known = ", ".join(available_adapters())
        raise UserError(f"--platform: unknown platform {platform!r}; known: {known}") from None
    wanted = set(adapter.secret_keys) | set(adapter.required_keys)
    return tuple(key for key in adapter.config_keys if key in wanted)


def _fernet(settings: Settings) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(
        settings.ensure_secret_key().encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _context(campaign_id: int, platform: str, key: str) -> dict[str, object]:
    return {"campaign": campaign_id, "platform": platform, "key": key}


def seal(settings: Settings, campaign_id: int, platform: str, key: str, value: str) -> str:
    """``value`` encrypted, bound to the campaign, platform and key it is for."""
    plain = json.dumps({**_context(campaign_id, platform, key), "value": value})
    return _fernet(settings).encrypt(plain.encode()).decode()


class Unreadable(Exception):
    """A stored value that does not open with this ``SECRET_KEY`` (or is not for its row)."""


def unseal(settings: Settings, row: CampaignCredential) -> str:
    """The value of a stored credential; :class:`Unreadable` if it cannot be opened."""
    try:
        plain = json.loads(_fernet(settings).decrypt(row.sealed.encode()))
    except (InvalidToken, ValueError):
        raise Unreadable from None
    context = _context(row.campaign_id, row.platform, row.key)
    if not isinstance(plain, dict) or {k: plain.get(k) for k in context} != context:
        raise Unreadable
    value = plain.get("value")
    if not isinstance(value, str):
        raise Unreadable
    return value


def _install_settings(platform: str, raw: Mapping[str, str]) -> dict[str, str]:
    """The install's settings of ``platform`` that are not credentials (API base, quota):
    what a campaign's own adapter shares with the install's."""
    adapter = get_adapter(platform)
    own = set(credential_keys(platform))
    return {key: value for key, value in adapter.own_config(raw).items() if key not in own}


def _checked(settings: Settings, platform: str, key: str, value: str) -> str:
    """``value`` for ``key`` as the adapter's settings model reads it, or the model's own
    one-line ``KEY: message``; other keys still missing are not this value's fault."""
    keys = credential_keys(platform)
    if key not in keys:
        offered = ", ".join(keys) or "none (it takes no credentials)"
        raise UserError(f"{platform} has no credential {key!r}; a campaign may set: {offered}")
    value = value.strip()
    if not value:
        raise UserError(f"{key}: give a value (to remove it, clear it)")
    if len(value) > MAX_VALUE_CHARS:
        raise UserError(f"{key}: longer than {MAX_VALUE_CHARS} characters")
    model = get_adapter(platform).settings_model
    if model is not None:
        try:
            model.model_validate({**_install_settings(platform, settings.raw), key: value})
        except pydantic.ValidationError as exc:
            for error in exc.errors():
                if error["loc"] and str(error["loc"][0]).upper() == key:
                    message = str(error["msg"]).removeprefix("Value error, ")
                    raise UserError(f"{key}: {message}") from None
    return value


def _target(session: Session, settings: Settings, slug: str) -> Campaign:
    campaign = get_campaign(session, settings, slug)
    if campaign.is_default or campaign.id is None:
        raise UserError(
            "the default campaign polls with the install's credentials (the environment's"
            " keys, see .env.example); a campaign's own are for the other campaigns"
        )
    return campaign


def _row(
    session: Session, campaign: Campaign, platform: str, key: str
) -> CampaignCredential | None:
    return session.get(CampaignCredential, (campaign.id, platform, key))


def set_credential(
    session: Session,
    settings: Settings,
    *,
    slug: str,
    platform: str,
    key: str,
    value: str,
    actor: str,
    now: datetime | None = None,
) -> str:
    """Keep ``value`` (checked, sealed) as campaign ``slug``'s ``key`` for ``platform``;
    audited by key name only. Its polls use it from the scheduler's next look."""
    campaign = _target(session, settings, slug)
    platform, key = platform.strip().lower(), key.strip().upper()
    value = _checked(settings, platform, key, value)
    row = _row(session, campaign, platform, key)
    sealed = seal(settings, campaign.id or 0, platform, key, value)
    at = now or utcnow()
    if row is None:
        row = CampaignCredential(
            campaign_id=campaign.id or 0,
            platform=platform,
            key=key,
            sealed=sealed,
            set_at=at,
            set_by=actor,
        )
        session.add(row)
    row.sealed, row.set_at, row.set_by = sealed, at, actor
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=Action.CAMPAIGN_CREDENTIAL_SET,
        reason=f"{key} for {platform} in {campaign.slug}",
        campaign_id=campaign.id,
    )
    return f"{key} for {platform} in campaign {campaign.slug} is set"


def clear_credential(
    session: Session, settings: Settings, *, slug: str, platform: str, key: str, actor: str
) -> str:
    """Forget campaign ``slug``'s ``key`` for ``platform`` (audited). With none left, its
    tags there go back to the install's credentials and its own source retires."""
    campaign = _target(session, settings, slug)
    platform, key = platform.strip().lower(), key.strip().upper()
    credential_keys(platform)
    row = _row(session, campaign, platform, key)
    if row is None:
        raise UserError(f"{key} for {platform} is not set in campaign {campaign.slug}")
    session.delete(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=Action.CAMPAIGN_CREDENTIAL_CLEARED,
        reason=f"{key} for {platform} in {campaign.slug}",
        campaign_id=campaign.id,
    )
    left = _row_count(session, campaign, platform)
    then = "its other keys stay" if left else "it polls with the install's credentials again"
    return f"{key} for {platform} in campaign {campaign.slug} is cleared; {then}"


def _row_count(session: Session, campaign: Campaign, platform: str) -> int:
    return len(_rows(session, campaign.id or 0, platform))


def _rows(
    session: Session, campaign_id: int, platform: str | None = None
) -> list[CampaignCredential]:
    query = select(CampaignCredential).where(CampaignCredential.campaign_id == campaign_id)
    if platform is not None:
        query = query.where(CampaignCredential.platform == platform)
    return list(session.exec(query.order_by(col(CampaignCredential.platform))))


@dataclasses.dataclass(frozen=True, slots=True)
class KeyState:
    """One credential key of a campaign, as people are shown it: never its value."""

    key: str
    secret: bool
    set_at: datetime | None = None
    set_by: str | None = None

    @property
    def is_set(self) -> bool:
        return self.set_at is not None


@dataclasses.dataclass(frozen=True, slots=True)
class PlatformCredentials:
    """A campaign's own credentials for one platform, key by key."""

    platform: str
    keys: tuple[KeyState, ...]

    @property
    def in_use(self) -> bool:
        """Any key set: the campaign polls this platform with its own credentials."""
        return any(state.is_set for state in self.keys)


def credential_states(session: Session, campaign: Campaign) -> list[PlatformCredentials]:
    """Every platform that takes credentials, with which of campaign's own are set."""
    stored = {(row.platform, row.key): row for row in _rows(session, campaign.id or 0)}
    states = []
    for platform in available_adapters():
        try:
            keys = credential_keys(platform)
            secret = set(get_adapter(platform).secret_keys)
        except Exception:  # a plugin that cannot load offers nothing to set
            continue
        if not keys:
            continue
        rows = [stored.get((platform, key)) for key in keys]
        states.append(
            PlatformCredentials(
                platform,
                tuple(
                    KeyState(key, key in secret, row.set_at, row.set_by)
                    if row is not None
                    else KeyState(key, key in secret)
                    for key, row in zip(keys, rows, strict=True)
                ),
            )
        )
    return states


def may_manage(session: Session, user: User, campaign: Campaign) -> bool:
    """Whether ``user`` may see which of the campaign's credentials are set and change
    them: an install admin, or an admin of that campaign."""
    return role_in(session, user, campaign) == Role.ADMIN


def managed_campaign(session: Session, settings: Settings, user: User, slug: str) -> Campaign:
    """Campaign ``slug``, if ``user`` may manage its credentials; else a refusal that says
    no more than that (a campaign-A admin learns nothing about B's)."""
    try:
        campaign = _target(session, settings, slug)
    except UserError:
        campaign = None
    if campaign is None or not may_manage(session, user, campaign):
        raise UserError(f"you do not manage the credentials of a campaign {slug[:60]!r}")
    return campaign


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    """The credentials one campaign polls one platform with, ready to build its adapter.

    ``config`` holds secrets in clear: it goes to the adapter and nowhere else (it is
    left out of ``repr``, so no log line can carry it). ``error`` says why it cannot
    be used; ``version`` changes whenever a key is set or cleared.
    """

    owner: Owner
    platform: str
    version: tuple[tuple[str, str], ...]
    config: dict[str, str] = dataclasses.field(repr=False)
    error: str | None = None


def accounts(session: Session, settings: Settings, watch: Watch) -> list[Account]:
    """The campaign credentials ``watch`` polls with (its ``own`` part), opened."""
    slugs = {c.id: c.slug for c in list_campaigns(session, settings)}
    found = []
    for platform, campaign_id in watch.own:
        owner = Owner(campaign_id, slugs.get(campaign_id, str(campaign_id)))
        rows = _rows(session, campaign_id, platform)
        version = tuple((row.key, row.set_at.isoformat()) for row in rows)
        config = _install_settings(platform, settings.raw)
        error = None
        try:
            config |= {row.key: unseal(settings, row) for row in rows}
        except Unreadable:
            config = {}
            error = (
                f"credentials for {platform} in campaign {owner.slug} can't be read:"
                " SECRET_KEY changed; set them again"
            )
        found.append(Account(owner, platform, version, config, error))
    return found


def current_accounts(engine: Engine, settings: Settings, watch: Watch) -> list[Account]:
    """:func:`accounts` in its own short read (no write lock, as ``current_watch``)."""
    with Session(read_only(engine)) as session:
        return accounts(session, settings, watch)


def build_account(account: Account, client: HttpClient) -> ConfiguredPlatform:
    """The campaign's own adapter for the platform (only the campaign's credential keys
    and the install's other settings), or why it is disabled."""
    if account.error is not None:
        return ConfiguredPlatform(account.platform, None, account.error, account.owner)
    built = build_platform(account.platform, account.config, client, account.owner)
    if built.disabled_reason is not None:
        reason = f"campaign {account.owner.slug}'s credentials: {built.disabled_reason}"
        return dataclasses.replace(built, disabled_reason=reason)
    return built


@contextmanager
def account_platforms(
    settings: Settings, found: list[Account]
) -> Iterator[list[ConfiguredPlatform]]:
    """Each campaign account's adapter, each with its own HTTP client, closed after."""
    clients = [HttpClient(retry_policy(settings)) for _ in found]
    try:
        yield [
            build_account(account, client) for account, client in zip(found, clients, strict=True)
        ]
    finally:
        for client in clients:
            client.close()
