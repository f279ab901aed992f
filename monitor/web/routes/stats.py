"""``/stats``: the digest's figures for any day or range, its chart, and a CSV download.

The figures and the CSV come from :mod:`monitor.services.stats`, the same
computation as the email, so the numbers cannot drift apart. Viewers and up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from monitor.errors import UserError
from monitor.services.charts import digest_chart_png
from monitor.services.digest import Digest, Format, compute_digest
from monitor.services.engagement import METRICS
from monitor.services.mail import last_digest_send
from monitor.services.stats import csv_name, digest_csv, requested_days, requested_digest
from monitor.web.deps import Staff, ViewerPage

router = APIRouter()

FromQuery = Annotated[str | None, Query(alias="from", max_length=40)]
ToQuery = Annotated[str | None, Query(alias="to", max_length=40)]


@router.get("/stats", response_class=HTMLResponse)
def stats_page(staff: ViewerPage, first: FromQuery = None, last: ToQuery = None) -> Response:
    """The digest's figures for a day or range, the chart, a CSV link, the last email."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    context = {
        "user": user,
        "fmt": Format,
        "metrics": METRICS,
        "last_send": last_digest_send(session),
    }
    try:
        first_day, last_day = requested_days(settings, first, last)
        digest = compute_digest(session, settings, first_day, last_day)
    except UserError as exc:
        context |= {"error": str(exc), "first": first or "", "last": last or "", "title": "Stats"}
        return staff.templates.TemplateResponse(
            request, "stats/index.html", context, status_code=400
        )
    query = f"from={first_day.isoformat()}&to={last_day.isoformat()}"
    context |= {
        "digest": digest,
        "first": first_day.isoformat(),
        "last": last_day.isoformat(),
        "query": query,
        "title": f"Stats {digest.period.label}",
    }
    return staff.templates.TemplateResponse(request, "stats/index.html", context)


def _download(
    staff: Staff,
    first: str | None,
    last: str | None,
    *,
    render: Callable[[Digest], bytes | str],
    media_type: str,
    headers: Callable[[Digest], dict[str, str]],
) -> Response:
    """The requested digest rendered as a file, or a plain 400 that says what is wrong."""
    try:
        digest = requested_digest(staff.session, staff.settings, first, last)
    except UserError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    return Response(render(digest), media_type=media_type, headers=headers(digest))


@router.get("/stats/chart.png")
def stats_chart(staff: ViewerPage, first: FromQuery = None, last: ToQuery = None) -> Response:
    """The digest chart for the same day or range, as a PNG."""
    return _download(
        staff,
        first,
        last,
        render=digest_chart_png,
        media_type="image/png",
        headers=lambda _digest: {"Cache-Control": "no-store"},
    )


@router.get("/stats.csv")
def stats_csv(staff: ViewerPage, first: FromQuery = None, last: ToQuery = None) -> Response:
    """Every figure of the page as CSV rows, for a spreadsheet."""
    return _download(
        staff,
        first,
        last,
        render=lambda digest: digest_csv(digest, staff.settings),
        media_type="text/csv; charset=utf-8",
        headers=lambda digest: {
            "Content-Disposition": f'attachment; filename="{csv_name(digest)}"'
        },
    )
