"""``/stats``: the digest's figures for any day or range, its chart, a CSV and the report.

The figures and the CSV come from :mod:`monitor.services.stats`, the same
computation as the email, and the report from :mod:`monitor.services.report`, so
the numbers cannot drift apart. Viewers and up of the campaign the login works on
(the queue's switcher): its figures only, never another campaign's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from monitor.errors import UserError
from monitor.services.campaigns import campaigns_of
from monitor.services.charts import digest_chart_png
from monitor.services.digest import Digest, Format, resolve_range
from monitor.services.engagement import METRICS
from monitor.services.mail import last_digest_send
from monitor.services.report import build_report, render_csv, render_pdf, render_xlsx
from monitor.services.stats import csv_name, digest_csv, requested_digest
from monitor.web.deps import CampaignStaff, QueuePage

router = APIRouter()

FromQuery = Annotated[str | None, Query(alias="from", max_length=40)]
ToQuery = Annotated[str | None, Query(alias="to", max_length=40)]

#: The report's formats, by the suffix asked for.
REPORT_TYPES = {
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get("/stats", response_class=HTMLResponse)
def stats_page(staff: QueuePage, first: FromQuery = None, last: ToQuery = None) -> Response:
    """The digest's figures for a day, range or shortcut (today by default), the chart,
    the CSV and report links, the last email."""
    request, user, session, settings = staff.request, staff.user, staff.session, staff.settings
    context = {
        "user": user,
        "fmt": Format,
        "metrics": METRICS,
        "last_send": last_digest_send(session, staff.campaign),
        "campaign_name": None if staff.scope.alone else staff.campaign.name,
        # The nav's campaign switcher, as on the queue: the stats follow the login's choice.
        "campaign": staff.campaign,
        "campaigns": campaigns_of(session, settings, user),
    }
    try:
        digest, chosen = requested_digest(session, settings, first, last, staff.campaign)
    except UserError as exc:
        context |= {"error": str(exc), "first": first or "", "last": last or "", "title": "Stats"}
        return staff.templates.TemplateResponse(
            request, "stats/index.html", context, status_code=400
        )
    query = f"from={chosen.first_day.isoformat()}&to={chosen.last_day.isoformat()}"
    context |= {
        "digest": digest,
        "note": chosen.note,
        "first": chosen.first_day.isoformat(),
        "last": chosen.last_day.isoformat(),
        "query": query,
        "title": f"Stats {digest.period.label}",
    }
    return staff.templates.TemplateResponse(request, "stats/index.html", context)


def _download(
    staff: CampaignStaff,
    first: str | None,
    last: str | None,
    *,
    render: Callable[[Digest], bytes | str],
    media_type: str,
    headers: Callable[[Digest], dict[str, str]],
) -> Response:
    """The requested digest rendered as a file, or a plain 400 that says what is wrong."""
    try:
        digest, _chosen = requested_digest(
            staff.session, staff.settings, first, last, staff.campaign
        )
    except UserError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    return Response(render(digest), media_type=media_type, headers=headers(digest))


@router.get("/stats/chart.png")
def stats_chart(staff: QueuePage, first: FromQuery = None, last: ToQuery = None) -> Response:
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
def stats_csv(staff: QueuePage, first: FromQuery = None, last: ToQuery = None) -> Response:
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


@router.get("/stats/report.{kind}")
def stats_report(
    staff: QueuePage, kind: str, first: FromQuery = None, last: ToQuery = None
) -> Response:
    """The campaign report for the same day or range: PDF, CSV or workbook."""
    if kind not in REPORT_TYPES:
        return Response(
            "ask for report.pdf, report.csv or report.xlsx", 404, media_type="text/plain"
        )
    session, settings = staff.session, staff.settings
    try:
        chosen = resolve_range(session, settings, first, last)
        built = build_report(
            session, settings, chosen.first_day, chosen.last_day, campaign=staff.campaign
        )
        content = (
            render_pdf(built, settings)
            if kind == "pdf"
            else render_csv(built).encode("utf-8")
            if kind == "csv"
            else render_xlsx(built)
        )
    except UserError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    period = built.digest.period
    name = f"campaign-report-{period.first_day.isoformat()}-{period.last_day.isoformat()}.{kind}"
    return Response(
        content,
        media_type=REPORT_TYPES[kind],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
