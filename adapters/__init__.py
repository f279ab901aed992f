"""Platform adapters and their registry.

Built-in adapters are listed explicitly, here and nowhere else (a test checks
that the project's own entry points say the same); third-party ones are found
through the ``hashtag_monitor.adapters`` entry-point group, so ``pip install``
of a package declaring ``[project.entry-points."hashtag_monitor.adapters"]
name = "pkg:Cls"`` adds a platform without touching this project. A mode of
one process (training mode's sample platform) adds its own with
:func:`register_adapter`; a deployment never lists it.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import entry_points

from adapters.base import Adapter

__all__ = [
    "BUILTIN_ADAPTERS",
    "Adapter",
    "available_adapters",
    "display_name",
    "get_adapter",
    "register_adapter",
]

ENTRY_POINT_GROUP = "hashtag_monitor.adapters"

BUILTIN_ADAPTERS: dict[str, str] = {
    "bluesky": "adapters.bluesky:BlueskyAdapter",
    "instagram": "adapters.instagram:InstagramAdapter",
    "mastodon": "adapters.mastodon:MastodonAdapter",
    "reddit": "adapters.reddit:RedditAdapter",
    "rss": "adapters.rss:RssAdapter",
    "x": "adapters.x:XAdapter",
    "youtube": "adapters.youtube:YouTubeAdapter",
}


#: Adapters this process added for itself (training mode), by name.
_EXTRA: dict[str, str] = {}


def register_adapter(name: str, target: str) -> None:
    """Make ``target`` (``"module:Class"``) an adapter of this process only."""
    _EXTRA[name] = target
    _names.cache_clear()


def _load(target: str) -> type[Adapter]:
    module_name, _, attribute = target.partition(":")
    adapter_class = getattr(import_module(module_name), attribute)
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, Adapter)):
        raise TypeError(f"{target} is not an adapters.base.Adapter subclass")
    return adapter_class


def available_adapters() -> dict[str, str]:
    """Every adapter name with its import target, built-ins first, sorted by name."""
    found = dict(BUILTIN_ADAPTERS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    for name, target in _EXTRA.items():
        found.setdefault(name, target)
    return dict(sorted(found.items()))


def get_adapter(name: str) -> type[Adapter]:
    """The adapter class registered under ``name``; KeyError if there is none."""
    targets = available_adapters()
    if name not in targets:
        raise KeyError(f"no adapter named {name!r}; known: {', '.join(targets)}")
    return _load(targets[name])


@cache
def _names(name: str) -> tuple[str, str]:
    try:
        adapter = get_adapter(name)
    except Exception:  # a platform whose plugin is gone (or broken) still has a name
        return name.capitalize(), name.capitalize()
    return adapter.display_name, adapter.public_name


def display_name(name: str, *, public: bool = False) -> str:
    """How people write a platform's name, from its adapter (``public``: the gallery's
    wording); cached, because the gallery asks for every post it shows."""
    staff, public_name = _names(name)
    return public_name if public else staff
