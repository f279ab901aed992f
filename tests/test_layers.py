"""The layering, checked on the imports: adapters -> services -> web and CLI.

Services never import the web app or FastAPI (the CLI uses them too), and the CLI
never borrows a route's helper: what a command and a route share is a service.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MONITOR = Path(__file__).resolve().parents[1] / "monitor"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((MONITOR / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("services"), ids=lambda p: p.name)
def test_a_service_imports_neither_the_web_app_nor_fastapi(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith(("monitor.web", "fastapi", "starlette"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("cli"), ids=lambda p: p.name)
def test_a_command_borrows_nothing_from_a_route(path: Path) -> None:
    """Only the app factory (``serve``) is the CLI's business in ``monitor.web``."""
    bad = {m for m in _imports(path) if m.startswith("monitor.web") and m != "monitor.web.app"}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_no_session_handling_is_left_in_the_web_package() -> None:
    """Sessions and logins are services, so the CLI's account changes apply the same rule."""
    assert not (MONITOR / "web" / "auth.py").exists()
    for path in _modules("web"):
        assert "WebSession" not in path.read_text(encoding="utf-8"), path.name
