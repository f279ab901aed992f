"""Settings: SPEC defaults, one clear line per malformed key, .env files."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters import available_adapters, get_adapter
from monitor.config import Settings, load_settings
from monitor.errors import SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_spec_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///./data/monitor.db"
    assert settings.hashtags == ["CEADAY21", "HelpingHands"]
    assert settings.poll_interval_seconds == 300 and settings.initial_lookback_hours == 72
    assert (settings.refresh_interval_seconds, settings.refresh_window_days) == (3600, 7)
    assert settings.timezone == "Europe/London"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.gallery_frame_ancestors == "'self'"
    assert (settings.smtp_port, settings.smtp_security, settings.digest_time) == (
        587,
        "starttls",
        "08:00",
    )
    assert (
        settings.retention_rejected_days,
        settings.retention_removed_days,
        settings.retention_pending_days,
    ) == (30, 0, 90)
    assert settings.outbound_allow_private is False
    assert (settings.log_level, settings.log_format) == ("INFO", "text")
    assert settings.enabled_platforms == ["mastodon"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("POLL_INTERVAL_SECONDS", "abc", "POLL_INTERVAL_SECONDS: Input should be a valid integer"),
        ("PUBLIC_BASE_URL", "not a url", "PUBLIC_BASE_URL: 'not a url' is not an http(s) URL"),
        ("PLATFORMS", "mastodon,myspace", "PLATFORMS: unknown platform myspace"),
        ("TIMEZONE", "Mars/Olympus", "TIMEZONE: 'Mars/Olympus' is not an IANA time zone"),
        ("DIGEST_TIME", "25:00", "DIGEST_TIME: must be HH:MM"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: must start with"),
        ("HASHTAGS", "#ok,not ok", "HASHTAGS: give one or more hashtags"),
        ("SMTP_SECURITY", "tls", "SMTP_SECURITY: Input should be"),
        (
            "OUTBOUND_ALLOW_PRIVATE",
            "perhaps",
            "OUTBOUND_ALLOW_PRIVATE: Input should be a valid boolean",
        ),
        ("GALLERY_FRAME_ANCESTORS", "*", "GALLERY_FRAME_ANCESTORS: '*' lets any site frame"),
        ("GALLERY_FRAME_ANCESTORS", "self", "GALLERY_FRAME_ANCESTORS: write self in single quotes"),
        (
            "GALLERY_FRAME_ANCESTORS",
            "'self' https://www.force.example.org/news",
            "GALLERY_FRAME_ANCESTORS: 'https://www.force.example.org/news' is not a CSP source",
        ),
        (
            "GALLERY_FRAME_ANCESTORS",
            "'none' https://a.example",
            "GALLERY_FRAME_ANCESTORS: 'none' cannot be combined",
        ),
        (
            "GALLERY_FRAME_ANCESTORS",
            "javascript:alert(1)",
            "GALLERY_FRAME_ANCESTORS: 'javascript:alert(1)' is not a CSP",
        ),
        (
            "GALLERY_FRAME_ANCESTORS",
            "https://a.example;script-src",
            "GALLERY_FRAME_ANCESTORS: 'https://a.example;script-src'",
        ),
        ("DIGEST_FROM", "partners", "DIGEST_FROM: 'partners' is not an email address"),
        ("DIGEST_TO", "a@b.example, nope", "DIGEST_TO: 'nope' is not an email address"),
        ("METRICS_TOKEN", "short", "METRICS_TOKEN: String should have at least 16"),
    ],
)
def test_malformed_values_stop_with_one_line_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_hashtags_accept_hash_and_drop_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHTAGS", "#CEADAY21, ceaday21 ,#HelpingHands")
    assert load_settings().hashtags == ["ceaday21", "HelpingHands"]


def test_dotenv_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "PORT=9001\nHASHTAGS=Alpha\nMASTODON_INSTANCES=https://a.example\n"
    )
    monkeypatch.setenv("HASHTAGS", "Beta")
    settings = load_settings()
    assert settings.port == 9001 and settings.hashtags == ["Beta"]
    assert settings.raw["MASTODON_INSTANCES"] == "https://a.example"


def test_postgres_url_gets_the_psycopg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h/db"


def test_secret_key_is_generated_once(configure: Callable[..., Settings], tmp_path: Path) -> None:
    settings = configure(DATA_DIR=str(tmp_path / "data"))
    first = settings.ensure_secret_key()
    assert len(first) > 40 and settings.ensure_secret_key() == first
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0


def test_env_example_lists_every_key() -> None:
    """Like datasette's documented-settings check: nothing configurable goes unlisted."""
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    keys = {name.upper() for name in Settings.model_fields}
    for name in available_adapters():
        keys.update(get_adapter(name).config_keys)
    assert keys <= listed, sorted(keys - listed)


def test_well_formed_frame_ancestors_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    value = "'self'  https://www.force.example.org https://*.vrn.example:443 http://localhost:*"
    monkeypatch.setenv("GALLERY_FRAME_ANCESTORS", value)
    assert load_settings().gallery_frame_ancestors == " ".join(value.split())


def test_an_unparsable_dotenv_line_stops_start_up_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "PORT=8001\n# a comment\nGALLERY_FRAME_ANCESTORS='self' https://www.force.example.org\n"
    )
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(".env, line 3: cannot be read;")
    (tmp_path / ".env").write_text(
        "PORT=8001\nGALLERY_FRAME_ANCESTORS=\"'self' https://www.force.example.org\"\n"
    )
    assert load_settings().gallery_frame_ancestors == "'self' https://www.force.example.org"


def test_public_base_url_follows_host_and_port_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.config import startup_warnings

    monkeypatch.setenv("PORT", "8001")
    settings = load_settings()
    assert settings.public_base_url == "http://127.0.0.1:8001"
    assert startup_warnings(settings) == []
    monkeypatch.setenv("HOST", "0.0.0.0")
    assert load_settings().public_base_url == "http://127.0.0.1:8001"

    monkeypatch.setenv("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
    [warning] = startup_warnings(load_settings())
    assert warning.startswith("PUBLIC_BASE_URL http://127.0.0.1:8000 names port 8000, but the")
    # Behind a proxy the public address differs from the listener by design.
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://monitor.example.org")
    assert startup_warnings(load_settings()) == []


def test_test_only_switches_warn_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.config import startup_warnings

    monkeypatch.setenv("OUTBOUND_ALLOW_PRIVATE", "true")
    [warning] = startup_warnings(load_settings())
    assert warning.startswith("OUTBOUND_ALLOW_PRIVATE=true: media fetches may reach loopback")


def test_addresses_may_carry_a_display_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_FROM", "Campaign digest <digest@force.example.org>")
    monkeypatch.setenv("DIGEST_TO", "VRN <vrn@partner.example>, ops@force.example.org")
    settings = load_settings()
    assert settings.digest_from == "Campaign digest <digest@force.example.org>"
    assert settings.digest_to == ["VRN <vrn@partner.example>", "ops@force.example.org"]
