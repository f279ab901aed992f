"""Typed settings per adapter: declared once, everything else derived, nothing shared.

A plugin gets its own keys and no others; ``.env.example``, redaction, the
Sources page's "credentials present" column and the one-line start-up error
all follow the declaration.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters import BUILTIN_ADAPTERS, get_adapter
from adapters.base import ConfigError
from adapters.http import HttpClient
from adapters.rss import RssAdapter
from adapters.settings import env_example, env_example_problems
from adapters.x import XAdapter, XSettings
from monitor.config import Settings
from monitor.demo.adapter import DemoAdapter
from monitor.logs import configured_secrets
from monitor.models import Post
from monitor.services.polling import poll_all
from tests.adapters.test_registry import install_plugin

ROOT = Path(__file__).resolve().parents[2]

SPY_ADAPTER = '''
from datetime import datetime, timezone

import pydantic

from adapters.base import Adapter, Author, FetchedPost, Page, RefreshResult
from adapters.settings import AdapterSettings


class SpySettings(AdapterSettings):
    spy_passphrase: pydantic.SecretStr
    spy_colour: str = "blue"


class SpyAdapter(Adapter):
    """Posts the names of every configuration key it was handed."""

    name = "spy"
    settings_model = SpySettings

    def search(self, target, cursor, *, since, max_pages):
        yield Page(
            (
                FetchedPost(
                    platform="spy",
                    external_id="seen",
                    url="https://spy.example/seen",
                    author=Author(handle="@spy", name="Spy"),
                    text=",".join(sorted(self.config)) + " #" + target.hashtags[0],
                    html="",
                    created_at=datetime(2021, 3, 18, 9, tzinfo=timezone.utc),
                    hashtags=(target.hashtags[0].lower(),),
                ),
            ),
            cursor="done",
        )

    def refresh(self, refs):
        return RefreshResult()
'''

SPY_EXAMPLE = "# The spy plugin's keys.\nSPY_PASSPHRASE=\nSPY_COLOUR=blue\n"


@pytest.fixture
def spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, monkeypatch, "spy", "spy_plugin:SpyAdapter", SPY_ADAPTER)


@pytest.mark.parametrize("name", sorted(BUILTIN_ADAPTERS))
def test_env_example_agrees_with_each_builtin_declaration(name: str) -> None:
    model = get_adapter(name).settings_model
    assert model is not None, f"{name} declares no settings model"
    assert env_example_problems((ROOT / ".env.example").read_text(), model) == []


def test_env_example_disagreeing_with_a_declaration_is_caught(spy: None) -> None:
    model = get_adapter("spy").settings_model
    assert model is not None
    assert env_example_problems(SPY_EXAMPLE, model) == []
    assert env_example_problems("SPY_COLOUR=red\n", model) == [
        "SPY_PASSPHRASE: declared but not in .env.example",
        "SPY_COLOUR: .env.example says 'red', the default is 'blue'",
    ]


def test_env_example_lines_derive_from_each_declaration(spy: None) -> None:
    """What a plugin writes into its own ``.env.example``, generated from its declaration."""
    spy_model = get_adapter("spy").settings_model
    assert spy_model is not None
    assert env_example(spy_model) == (
        "# SPY_PASSPHRASE: secret, required\nSPY_PASSPHRASE=\nSPY_COLOUR=blue\n"
    )
    for name in [*BUILTIN_ADAPTERS, "spy"]:
        model = get_adapter(name).settings_model
        assert model is not None
        assert env_example_problems(env_example(model), model) == [], name


def test_env_example_lists_no_key_that_nothing_declares() -> None:
    """The other direction: a key left behind in ``.env.example`` after a change is caught."""
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    declared = {name.upper() for name in Settings.model_fields} | set(DemoAdapter.config_keys)
    for name in BUILTIN_ADAPTERS:
        declared.update(get_adapter(name).config_keys)
    assert listed - declared == set()


def test_a_plugin_is_handed_only_its_own_keys(
    spy: None, sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(
        PLATFORMS="spy",
        HASHTAGS="CEADAY21",
        SPY_PASSPHRASE="open sesame",
        SMTP_PASSWORD="mail-secret",
        SECRET_KEY="k" * 40,
        X_BEARER_TOKEN="another-platforms-token",
    )
    [summary] = poll_all(engine=sqlite_engine, settings=settings)
    assert summary.ok, summary
    with Session(sqlite_engine) as session:
        [post] = session.exec(select(Post)).all()
    assert post.text == "SPY_PASSPHRASE #CEADAY21"


def test_declared_keys_drive_required_secret_and_redaction(
    spy: None, configure: Callable[..., Settings]
) -> None:
    spy_class = get_adapter("spy")
    assert spy_class.config_keys == ("SPY_PASSPHRASE", "SPY_COLOUR")
    assert spy_class.required_keys == ("SPY_PASSPHRASE",)
    assert spy_class.secret_keys == ("SPY_PASSPHRASE",)
    # "PASSPHRASE" is no secret-looking suffix: it is redacted because it is declared.
    settings = configure(SPY_PASSPHRASE="open sesame", SPY_COLOUR="green-colour")
    secrets = configured_secrets(settings)
    assert "open sesame" in secrets and "green-colour" not in secrets


def test_a_malformed_value_is_one_line_naming_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        RssAdapter(
            {"RSS_FEEDS": "https://a.example/feed", "OUTBOUND_ALLOW_PRIVATE": "perhaps"},
            HttpClient(),
        )
    message = str(caught.value)
    assert message.startswith("OUTBOUND_ALLOW_PRIVATE: ") and "\n" not in message


def test_an_adapter_names_its_settings_model_as_its_type_argument() -> None:
    assert XAdapter.settings_model is XSettings
    assert XAdapter.config_keys == ("X_BEARER_TOKEN", "X_API_BASE")
    adapter = XAdapter({"X_BEARER_TOKEN": "abc", "X_API_BASE": "https://x.example/"}, HttpClient())
    assert isinstance(adapter.settings, XSettings) and adapter.base == "https://x.example"


def test_a_validator_message_is_the_one_line_without_pydantic_wording() -> None:
    with pytest.raises(ConfigError) as caught:
        get_adapter("bluesky")({"BLUESKY_HANDLE": "a b", "BLUESKY_APP_PASSWORD": "p"}, HttpClient())
    assert str(caught.value) == (
        "BLUESKY_HANDLE: expected a handle such as name.bsky.social, without spaces"
    )
