"""``/admin/sources``: is every platform set up, are its credentials accepted, is it watched?

The rows come from :func:`monitor.services.platform_health.platform_health`;
``/admin/sources/docs/<platform>`` shows the platform's section of
``docs/platforms.md``.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from monitor.services.analysis import analysis_health
from monitor.services.platform_health import DOCS_NAME, doc_sections, platform_health
from monitor.web.deps import AdminPage

router = APIRouter(prefix="/admin/sources")


@router.get("", response_class=HTMLResponse)
def sources_page(staff: AdminPage) -> Response:
    """Every platform: polled or not, credentials present and accepted, last success and error."""
    return staff.templates.TemplateResponse(
        staff.request,
        "admin/sources.html",
        {
            "title": "Sources",
            "user": staff.user,
            "platforms": platform_health(staff.session, staff.settings),
            "analysis": analysis_health(staff.session, staff.settings),
            "docs_name": DOCS_NAME,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/docs/{name}", response_class=HTMLResponse)
def platform_docs(name: str, staff: AdminPage) -> Response:
    """One platform's section of docs/platforms.md: endpoints, limits, how to get credentials."""
    section = doc_sections().get(name.casefold()[:40])
    if section is None:
        raise HTTPException(
            status_code=404, detail=f"{DOCS_NAME} has no section for {name[:40]!r}."
        )
    return staff.templates.TemplateResponse(
        staff.request,
        "admin/source_docs.html",
        {
            "title": f"{section.heading}: setting up",
            "user": staff.user,
            "section": section,
            "docs_name": DOCS_NAME,
        },
    )
