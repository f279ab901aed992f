"""The adapter registry: built-ins, entry-point plugins, and broken plugins."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters import BUILTIN_ADAPTERS, ENTRY_POINT_GROUP, available_adapters, get_adapter
from monitor.config import Settings
from monitor.errors import SettingsError
from monitor.models import Post, Source
from monitor.services.polling import poll_all

TESTS = Path(__file__).resolve().parent

TOY_ADAPTER = '''
from datetime import datetime, timezone
from adapters.base import Adapter, Author, FetchedPost, Page, RefreshResult


class ToyAdapter(Adapter):
    """A platform that always has exactly one post per hashtag."""

    name = "toy"
    config_keys = ("TOY_GREETING",)

    def search(self, target, cursor, *, since, max_pages):
        tag = target.hashtags[0]
        yield Page(
            (
                FetchedPost(
                    platform="toy",
                    external_id=f"toy-{tag}",
                    url=f"https://toy.example/{tag}",
                    author=Author(handle="@toy", name="Toy"),
                    text=f"{self.config.get('TOY_GREETING', 'hi')} #{tag}",
                    html="",
                    created_at=datetime(2021, 3, 18, 9, tzinfo=timezone.utc),
                    hashtags=(tag.lower(),),
                ),
            ),
            cursor="done",
        )

    def refresh(self, refs):
        return RefreshResult()
'''


def install_plugin(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    target: str,
    source: str = TOY_ADAPTER,
) -> None:
    """Install a distribution the way pip would: a module plus its dist-info entry points."""
    module = target.partition(":")[0]
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.delitem(sys.modules, module, raising=False)  # not another test's version
    dist_info = tmp_path / "toy_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
            [{ENTRY_POINT_GROUP}]
            {name} = {target}
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()


def test_builtins_are_sorted_and_each_has_a_test_module() -> None:
    assert list(BUILTIN_ADAPTERS) == sorted(BUILTIN_ADAPTERS)
    for name in BUILTIN_ADAPTERS:
        assert (TESTS / f"test_{name}.py").is_file(), f"adapter {name} has no test module"
        assert get_adapter(name).name == name


def test_builtins_are_the_projects_own_entry_points() -> None:
    """One list (``BUILTIN_ADAPTERS``); pyproject's entry points must say the same."""
    declared = tomllib.loads((TESTS.parents[1] / "pyproject.toml").read_text())
    assert declared["project"]["entry-points"][ENTRY_POINT_GROUP] == BUILTIN_ADAPTERS


def test_production_never_lists_the_training_sample(configure: Callable[..., Settings]) -> None:
    assert "demo" not in available_adapters()
    with pytest.raises(KeyError):
        get_adapter("demo")
    with pytest.raises(SettingsError, match="unknown platform demo"):
        configure(PLATFORMS="demo")
    assert not any(name.startswith("adapters.demo") for name in BUILTIN_ADAPTERS.values())


def test_training_mode_registers_the_sample_platform(
    training_mode: None, configure: Callable[..., Settings]
) -> None:
    assert get_adapter("demo").__module__ == "monitor.demo.adapter"
    assert configure(PLATFORMS="demo", DEMO_SAMPLE="on").enabled_platforms == ["demo"]


def test_an_entry_point_plugin_is_registered_and_polled(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_engine: Engine,
    configure: Callable[..., Settings],
) -> None:
    install_plugin(tmp_path, monkeypatch, "toy", "toy_plugin:ToyAdapter")
    assert available_adapters()["toy"] == "toy_plugin:ToyAdapter"

    settings = configure(PLATFORMS="toy", HASHTAGS="CEADAY21,HelpingHands", TOY_GREETING="hello")
    summaries = poll_all(engine=sqlite_engine, settings=settings)

    assert [(s.source, s.ok, s.new) for s in summaries] == [
        ("toy:|CEADAY21", True, 1),
        ("toy:|HelpingHands", True, 1),
    ]
    with Session(sqlite_engine) as session:
        texts = sorted(p.text for p in session.exec(select(Post)))
        cursors = {s.key: s.cursor for s in session.exec(select(Source))}
    assert texts == ["hello #CEADAY21", "hello #HelpingHands"]
    assert cursors == {"toy:|CEADAY21": "done", "toy:|HelpingHands": "done"}


def test_a_plugin_that_fails_to_load_is_disabled_not_fatal(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_engine: Engine,
    configure: Callable[..., Settings],
) -> None:
    install_plugin(tmp_path, monkeypatch, "broken", "toy_plugin:NoSuchClass")
    settings = configure(PLATFORMS="broken")
    [summary] = poll_all(engine=sqlite_engine, settings=settings)
    assert not summary.ok
    assert "adapter 'broken' could not be loaded" in (summary.error or "")
    with Session(sqlite_engine) as session:
        source = session.exec(select(Source)).one()
    assert source.key == "broken:*|" and "could not be loaded" in (source.disabled_reason or "")


def test_unknown_adapter_name() -> None:
    with pytest.raises(KeyError, match="no adapter named 'myspace'"):
        get_adapter("myspace")


def test_every_adapter_names_its_platform_for_people() -> None:
    """Display names live on the adapter class; the public wording may differ (RSS)."""
    from adapters import display_name

    names = {name: get_adapter(name) for name in BUILTIN_ADAPTERS}
    assert all(cls.display_name and cls.public_name for cls in names.values())
    assert display_name("youtube") == "YouTube" and display_name("x") == "X"
    assert display_name("mastodon") == display_name("mastodon", public=True) == "Mastodon"
    assert display_name("rss") == "RSS feed" and display_name("rss", public=True) == "News feed"
    # A post from a platform whose plugin was uninstalled still reads as a name.
    assert display_name("gone-plugin") == display_name("gone-plugin", public=True) == "Gone-plugin"
