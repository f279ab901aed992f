"""``/admin/sources``: is every platform set up, are its credentials accepted, is it watched?

The rows come from :func:`monitor.services.platform_health.platform_health`;
``/admin/sources/docs/<platform>`` shows the platform's section of
``docs/platforms.md``.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from monitor.services.platform_health import DOCS_NAME, doc_sections, platform_health
from monitor.web.deps import AdminUser, SessionDep, SettingsDep, TemplatesDep

router = APIRouter(prefix="/admin/sources")


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
            "platforms": platform_health(session, settings),
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
