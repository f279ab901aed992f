"""Where the templates and migrations live, installed or in a checkout.

A wheel carries them inside the package (``monitor/_bundled``, see
pyproject's force-include); an editable install or a checkout uses the
top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    bundled = _PACKAGE / "_bundled" / name
    return bundled if bundled.is_dir() else _PACKAGE.parent / name


def templates_dir() -> Path:
    return _locate("templates")


def migrations_dir() -> Path:
    return _locate("migrations")
