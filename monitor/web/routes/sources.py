"""``/admin/sources``: is every platform set up, are its credentials accepted, is it watched?

One row per platform the product knows: whether it is polled, whether its
credentials are present (by the adapter's own ``required_keys``) and whether
the platform accepted them (the last poll's outcome, from the ``sources``
table), its last success and last error, and how to get credentials: the
platform's section of ``docs/platforms.md``, shipped with the product and
shown at ``/admin/sources/docs/<platform>``.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from adapters import available_adapters, get_adapter
from monitor.config import Settings
from monitor.models import Source
from monitor.resources import templates_dir
from monitor.services.analysis import analysis_health
from monitor.services.health import SourceHealth, SourceState
from monitor.services.sources import WILDCARD_SCOPE, list_sources
from monitor.web.deps import AdminUser, SessionDep, SettingsDep, TemplatesDep

router = APIRouter(prefix="/admin/sources")

DOCS_NAME = "docs/platforms.md"
_HEADING = re.compile(r"^## +(.+?)\s*$", re.M)
_CREDENTIALS = re.compile(r"^- \*\*Credentials\*\*:(.*?)(?=^- \*\*|\Z)", re.M | re.S)


@dataclasses.dataclass(frozen=True, slots=True)
class DocSection:
    heading: str
    text: str

    @property
    def credentials(self) -> str | None:
        """The section's "Credentials" bullet, on one line, when it has one."""
        match = _CREDENTIALS.search(self.text)
        return " ".join(match.group(1).split()) if match else None


@dataclasses.dataclass(frozen=True, slots=True)
class PlatformHealth:
    """What the sources page says about one platform."""

    name: str
    polled: bool
    #: "present", "not needed", "missing: KEY, ..." or why the adapter cannot load.
    credentials: str
    credentials_ok: bool
    #: "accepted", "refused or failing", "not checked yet" or "not polled".
    accepted: str
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    sources: tuple[SourceHealth, ...]
    doc: DocSection | None


def docs_path() -> Path:
    """``docs/platforms.md`` in a checkout, or its copy bundled in the wheel."""
    return templates_dir().parent / DOCS_NAME


@lru_cache(maxsize=4)
def _sections(path: Path, mtime: float) -> dict[str, DocSection]:
    text = path.read_text(encoding="utf-8")
    headings = list(_HEADING.finditer(text))
    sections: dict[str, DocSection] = {}
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        title = heading.group(1)
        key = title.split()[0].casefold()
        sections[key] = DocSection(title, text[heading.end() : end].strip())
    return sections


def doc_sections() -> dict[str, DocSection]:
    """Each platform's section of the docs, by adapter name (the heading's first word)."""
    path = docs_path()
    try:
        return _sections(path, path.stat().st_mtime)
    except OSError:
        return {}


def _credentials(name: str, raw: dict[str, str]) -> tuple[str, bool]:
    try:
        adapter = get_adapter(name)
    except Exception as exc:  # a broken plugin is reported, not fatal to the page
        return f"adapter cannot be loaded: {type(exc).__name__}", False
    if not adapter.required_keys:
        return "not needed", True
    missing = [key for key in adapter.required_keys if not raw.get(key, "").strip()]
    if missing:
        return f"missing: {', '.join(missing)}", False
    return "present", True


def _accepted(polled: bool, sources: list[Source]) -> str:
    """The platform's verdict on its credentials, from its sources' health."""
    if not polled:
        return "not polled"
    health = [SourceHealth.of(source) for source in sources]
    if any(h.state is SourceState.DISABLED for h in health):
        return "refused or failing"
    watched = [h for h, s in zip(health, sources, strict=True) if s.scope != WILDCARD_SCOPE]
    if any(h.state is SourceState.FAILING for h in watched):
        return "refused or failing"
    if any(h.last_success_at for h in watched):
        return "accepted"
    return "not checked yet"


def _latest(values: list[datetime | None]) -> datetime | None:
    known = [value for value in values if value is not None]
    return max(known) if known else None


def platform_health(sources: list[Source], settings: Settings) -> list[PlatformHealth]:
    """Every known platform, polled ones first, with what the sources table says."""
    raw = settings.raw
    enabled = settings.enabled_platforms
    docs = doc_sections()
    rows = []
    for name in available_adapters():
        own = [source for source in sources if source.platform == name]
        credentials, credentials_ok = _credentials(name, raw)
        errored = [s for s in own if s.last_error_at is not None]
        last_error = max(errored, key=lambda s: s.last_error_at) if errored else None  # type: ignore[arg-type,return-value]
        rows.append(
            PlatformHealth(
                name=name,
                polled=name in enabled,
                credentials=credentials,
                credentials_ok=credentials_ok,
                accepted=_accepted(name in enabled, own),
                last_success_at=_latest([s.last_success_at for s in own]),
                last_error_at=last_error.last_error_at if last_error else None,
                last_error=last_error.last_error if last_error else None,
                sources=tuple(SourceHealth.of(s) for s in own if s.scope != WILDCARD_SCOPE),
                doc=docs.get(name),
            )
        )
    return sorted(rows, key=lambda row: (not row.polled, row.name))


@router.get("", response_class=HTMLResponse)
def sources_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    """Every platform: polled or not, credentials present and accepted, last success and error."""
    return templates.TemplateResponse(
        request,
        "admin/sources.html",
        {
            "title": "Sources",
            "user": user,
            "platforms": platform_health(list_sources(session), settings),
            "analysis": analysis_health(session, settings),
            "docs_name": DOCS_NAME,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/docs/{name}", response_class=HTMLResponse)
def platform_docs(
    name: str, request: Request, user: AdminUser, templates: TemplatesDep
) -> Response:
    """One platform's section of docs/platforms.md: endpoints, limits, how to get credentials."""
    section = doc_sections().get(name.casefold()[:40])
    if section is None:
        raise HTTPException(
            status_code=404, detail=f"{DOCS_NAME} has no section for {name[:40]!r}."
        )
    return templates.TemplateResponse(
        request,
        "admin/source_docs.html",
        {
            "title": f"{section.heading}: setting up",
            "user": user,
            "section": section,
            "docs_name": DOCS_NAME,
        },
    )
