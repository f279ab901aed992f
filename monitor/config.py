"""Settings, in one place: every key of SPEC.md with its default, validated at start.

Values come from the environment and from ``.env`` (read by python-dotenv via
pydantic-settings). A malformed value stops start-up with one line naming the
key. Adapters read their own keys from :attr:`Settings.raw`, so a third-party
adapter needs nothing here.
"""

from __future__ import annotations

import os
import re
import secrets
from email.utils import parseaddr
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from adapters import available_adapters
from adapters.jetstream import DEFAULT_URLS as JETSTREAM_DEFAULT_URLS
from adapters.jetstream import subscribe_url
from adapters.text import normalise_tag
from monitor.errors import SettingsError

CommaList = Annotated[list[str], NoDecode]

_URL_RE = re.compile(r"^https?://[^\s/?#]+(:\d+)?(/[^\s]*)?$", re.I)
#: One CSP source expression as frame-ancestors takes it: a keyword, a scheme, or an origin
#: (scheme optional, ``*.`` subdomains, a port or ``:*``); paths are not origins.
_CSP_SOURCE_RE = re.compile(
    r"'self'|'none'|https?:|(https?://)?(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:(\d{1,5}|\*))?",
    re.I,
)
_EMAIL_RE = re.compile(r"^[^@\s,<>\"]+@[^@\s,<>\"]+\.[^@\s,<>\".]+$")


def bare_address(value: str) -> str | None:
    """The address in ``a@b.example`` or ``Name <a@b.example>``, or None when it is not one
    (header injection with CR/LF included)."""
    if any(c in value for c in "\r\n"):
        return None
    address = parseaddr(value)[1]
    return address if _EMAIL_RE.match(address) else None


_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


# The digest keys' checks, also what a campaign's own digest fields are held to
# (monitor.services.campaigns): ValueError with the words a person reads.


def check_sender(value: str | None) -> str | None:
    """``DIGEST_FROM``: one address (``a@b.example`` or ``Name <a@b.example>``), trimmed."""
    if value is not None and bare_address(value.strip()) is None:
        raise ValueError(f"{value!r} is not an email address")
    return value.strip() if value else value


def check_recipients(value: list[str]) -> list[str]:
    """``DIGEST_TO``: every item of the comma list an address."""
    bad = [address for address in value if bare_address(address) is None]
    if bad:
        raise ValueError(f"{bad[0]!r} is not an email address (give a comma-separated list)")
    return value


def check_digest_time(value: str) -> str:
    """``DIGEST_TIME``: ``HH:MM``, 24-hour."""
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError("must be HH:MM (24-hour)")
    return value


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every configuration key of the product (names as in SPEC.md, no prefix)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", case_sensitive=False
    )

    database_url: str = "sqlite:///./data/monitor.db"
    hashtags: CommaList = Field(default_factory=lambda: ["CEADAY21", "HelpingHands"])
    platforms: CommaList = Field(default_factory=list)
    poll_interval_seconds: int = Field(300, ge=10)
    initial_lookback_hours: int = Field(72, ge=1)
    poll_max_pages: int = Field(50, ge=1)
    refresh_interval_seconds: int = Field(3600, ge=60)
    refresh_window_days: int = Field(7, ge=0)
    timezone: str = "Europe/London"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    gallery_frame_ancestors: str = "'self'"
    data_dir: Path = Path("./data")
    media_dir: Path = Path("./data/media")
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    digest_from: str | None = None
    digest_to: CommaList = Field(default_factory=list)
    digest_time: str = "08:00"
    #: Told of takedown requests and escalations (over the digest's SMTP settings).
    safeguarding_alert_to: CommaList = Field(default_factory=list)
    #: A request in a safeguarding category holds the post off public routes at once.
    takedown_hides: bool = True
    retention_rejected_days: int = Field(30, ge=0)
    retention_removed_days: int = Field(0, ge=0)
    retention_pending_days: int = Field(90, ge=0)
    outbound_allow_private: bool = False
    #: Every stored image is checked (faces, text, nudity, known images) before approval.
    image_analysis: bool = True
    #: Set by ``hashtag-monitor demo``: every page says it shows training data.
    demo_mode: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    http_timeout_seconds: float = Field(20.0, gt=0)
    http_retries: int = Field(3, ge=0, le=10)
    http_backoff_seconds: float = Field(1.0, ge=0)
    http_max_retry_after_seconds: float = Field(60.0, ge=0)
    #: Set, ``/metrics`` needs ``Authorization: Bearer <token>``; unset, loopback clients only.
    metrics_token: str | None = Field(default=None, min_length=16)
    #: Stream where the platform allows it (Mastodon with a token, Bluesky Jetstream);
    #: polling goes on beside it as the catch-up.
    streaming: bool = True
    #: Jetstream instances, in order of preference: the stream fails over down the list.
    jetstream_urls: CommaList = Field(default_factory=lambda: list(JETSTREAM_DEFAULT_URLS))
    #: Time between an approval and the post appearing on the event screen (an admin can
    #: change it on the admin page: the stored setting wins over this default).
    screen_delay_seconds: int = Field(0, ge=0, le=86_400)

    _split = field_validator(
        "hashtags",
        "platforms",
        "digest_to",
        "safeguarding_alert_to",
        "jetstream_urls",
        mode="before",
    )(_split_commas)

    @field_validator("jetstream_urls")
    @classmethod
    def _check_jetstream_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give one or more ws:// or wss:// URLs, comma-separated")
        return [subscribe_url(url) for url in value]

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("hashtags")
    @classmethod
    def _check_hashtags(cls, value: list[str]) -> list[str]:
        tags = [item.lstrip("#＃") for item in value]
        if not tags or any(not re.fullmatch(r"\w+", tag) for tag in tags):
            raise ValueError("give one or more hashtags of letters, digits or _, comma-separated")
        return list({normalise_tag(tag): tag for tag in tags}.values())

    @field_validator("platforms")
    @classmethod
    def _check_platforms(cls, value: list[str]) -> list[str]:
        known = available_adapters()
        names = [item.lower() for item in value]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"unknown platform {', '.join(unknown)}; known: {', '.join(known)}")
        return names

    @field_validator("public_base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not _URL_RE.match(value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("gallery_frame_ancestors")
    @classmethod
    def _check_frame_ancestors(cls, value: str) -> str:
        sources = value.split()
        for source in sources:
            if source == "*":
                raise ValueError("'*' lets any site frame the gallery; list the sites instead")
            if source.lower() in ("self", "none"):
                raise ValueError(f"write {source} in single quotes: '{source.lower()}'")
            if not _CSP_SOURCE_RE.fullmatch(source):
                raise ValueError(
                    f"{source!r} is not a CSP source: give origins such as"
                    " https://www.force.example.org, or 'self'"
                )
        if not sources:
            raise ValueError("give 'self', 'none' or the origins allowed to embed the gallery")
        if "'none'" in sources and len(sources) > 1:
            raise ValueError("'none' cannot be combined with other sources")
        return " ".join(sources)

    @field_validator("digest_from")
    @classmethod
    def _check_sender(cls, value: str | None) -> str | None:
        return check_sender(value)

    @field_validator("digest_to")
    @classmethod
    def _check_recipients(cls, value: list[str]) -> list[str]:
        return check_recipients(value)

    @model_validator(mode="after")
    def _base_url_follows_the_listener(self) -> Settings:
        """Unset, PUBLIC_BASE_URL is where this server listens, so links and images work."""
        if "public_base_url" not in self.model_fields_set:
            self.public_base_url = f"http://{_url_host(self.host)}:{self.port}"
        return self

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @field_validator("digest_time")
    @classmethod
    def _check_time(cls, value: str) -> str:
        return check_digest_time(value)

    @cached_property
    def raw(self) -> dict[str, str]:
        """The raw key/value configuration (``.env`` under the environment) for adapters.

        Read once per Settings: a configuration change needs a restart, as for every key.
        """
        env_file = self.model_config.get("env_file")
        values: dict[str, str] = {}
        if isinstance(env_file, str | Path) and Path(env_file).is_file():
            values.update({k.upper(): v for k, v in dotenv_values(env_file).items() if v})
        values.update({k.upper(): v for k, v in os.environ.items() if v})
        return values

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def enabled_platforms(self) -> list[str]:
        """``PLATFORMS`` if set, else every configured adapter plus keyless Mastodon."""
        if self.platforms:
            return list(self.platforms)
        raw = self.raw
        return [
            name
            for name in available_adapters()
            if name == "mastodon" or _has_credentials(name, raw)
        ]

    def ensure_secret_key(self) -> str:
        """``SECRET_KEY``, or one generated once into the data dir and reused after."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


def _url_host(host: str) -> str:
    """The host part of a URL that reaches a server listening on ``host``."""
    if host in _WILDCARD_HOSTS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def startup_warnings(settings: Settings) -> list[str]:
    """Settings that are allowed but probably a mistake; ``run`` and ``serve`` print them."""
    warnings: list[str] = []
    if settings.outbound_allow_private:
        warnings.append(
            "OUTBOUND_ALLOW_PRIVATE=true: media fetches may reach loopback and private"
            " addresses; this is for tests only, never for a real deployment"
        )
    base = urlsplit(settings.public_base_url)
    local = {"127.0.0.1", "localhost", "::1", settings.host.strip("[]")}
    if base.hostname in local:
        port = base.port or (443 if base.scheme == "https" else 80)
        if port != settings.port:
            warnings.append(
                f"PUBLIC_BASE_URL {settings.public_base_url} names port {port}, but the server"
                f" listens on {settings.port} (PORT): image and report links will be broken"
            )
    return warnings


def _has_credentials(name: str, raw: dict[str, str]) -> bool:
    """True when an adapter says it is configured; a broken plugin counts as not."""
    from adapters import get_adapter

    try:
        adapter = get_adapter(name)
    except Exception:  # a third-party plugin that fails to import must not stop start-up
        return False
    return adapter.is_configured(raw)


def check_env_file(env_file: Path) -> None:
    """Refuse a ``.env`` python-dotenv would half-read: a line it cannot parse is skipped
    silently, and a key set twice keeps only the last, so either can hide a setting."""
    if not env_file.is_file():
        return
    first_line: dict[str, int] = {}
    with env_file.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            number = binding.original.line
            if binding.error:
                raise SettingsError(
                    f"{env_file}, line {number}: cannot be read; write KEY=value, and put a"
                    " value with spaces or quotes in double quotes (KEY=\"'self' https://x\")"
                )
            if binding.key is None:
                continue
            key = binding.key.upper()
            if key in first_line:
                raise SettingsError(
                    f"{env_file}: {key} is set twice (lines {first_line[key]} and {number});"
                    " keep one"
                )
            first_line[key] = number


def check_writable_dir(key: str, path: Path) -> None:
    """Create a directory the service writes to, and prove it can write there."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(f"{key}: cannot write to {path}: {exc.strerror or exc}") from None


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one line that names the key."""
    check_env_file(Path(".env"))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]).upper() if error["loc"] else "configuration"
        message = error["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{key}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use (never at import)."""
    return load_settings()
