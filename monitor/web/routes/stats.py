"""``/stats``: the digest's figures for any day or range, its chart, and a CSV download.

The page, the PNG and the CSV all come from :func:`compute_digest`, the same
computation as the email, so the numbers cannot drift apart. Viewers and up.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from monitor.config import Settings
from monitor.errors import UserError
from monitor.services.charts import digest_chart_png
from monitor.services.digest import (
    Digest,
    Format,
    check_past_day,
    compute_digest,
    parse_day,
)
from monitor.services.engagement import METRICS
from monitor.services.mail import last_digest_send
from monitor.web.deps import SessionDep, SettingsDep, TemplatesDep, ViewerUser

router = APIRouter()

FromQuery = Annotated[str | None, Query(alias="from", max_length=40)]
ToQuery = Annotated[str | None, Query(alias="to", max_length=40)]
#: Spreadsheet programs run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _days(settings: Settings, first: str | None, last: str | None) -> tuple[date, date]:
    """The requested day or range; yesterday by default; today allowed (partial)."""
    yesterday = datetime.now(settings.zone).date() - timedelta(days=1)
    first_day = parse_day(first) if first else yesterday
    last_day = parse_day(last) if last else first_day
    check_past_day(first_day, settings, allow_today=True)
    check_past_day(last_day, settings, allow_today=True)
    return first_day, last_day


@router.get("/stats", response_class=HTMLResponse)
def stats_page(
    request: Request,
    user: ViewerUser,
    session: SessionDep,
    settings: SettingsDep,
    templates: TemplatesDep,
    first: FromQuery = None,
    last: ToQuery = None,
) -> Response:
    """The digest's figures for a day or range, the chart, a CSV link, the last email."""
    context = {
        "user": user,
        "fmt": Format,
        "metrics": METRICS,
        "last_send": last_digest_send(session),
    }
    try:
        first_day, last_day = _days(settings, first, last)
        digest = compute_digest(session, settings, first_day, last_day)
    except UserError as exc:
        context |= {"error": str(exc), "first": first or "", "last": last or "", "title": "Stats"}
        return templates.TemplateResponse(request, "stats/index.html", context, status_code=400)
    query = f"from={first_day.isoformat()}&to={last_day.isoformat()}"
    context |= {
        "digest": digest,
        "first": first_day.isoformat(),
        "last": last_day.isoformat(),
        "query": query,
        "title": f"Stats {digest.period.label}",
    }
    return templates.TemplateResponse(request, "stats/index.html", context)


@router.get("/stats/chart.png")
def stats_chart(
    _user: ViewerUser,
    session: SessionDep,
    settings: SettingsDep,
    first: FromQuery = None,
    last: ToQuery = None,
) -> Response:
    """The digest chart for the same day or range, as a PNG."""
    try:
        digest = compute_digest(session, settings, *_days(settings, first, last))
    except UserError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    return Response(
        digest_chart_png(digest), media_type="image/png", headers={"Cache-Control": "no-store"}
    )


@router.get("/stats.csv")
def stats_csv(
    _user: ViewerUser,
    session: SessionDep,
    settings: SettingsDep,
    first: FromQuery = None,
    last: ToQuery = None,
) -> Response:
    """Every figure of the page as CSV rows, for a spreadsheet."""
    try:
        digest = compute_digest(session, settings, *_days(settings, first, last))
    except UserError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    name = f"stats-{digest.period.first_day.isoformat()}-{digest.period.last_day.isoformat()}"
    return Response(
        digest_csv(digest, settings),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _cell(value: object) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with "'"."""
    if value is None:
        return Format.NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def digest_csv(digest: Digest, settings: Settings) -> str:
    """The digest as rows of section, name, value, period before, 7-period average, note."""
    rows: list[list[object]] = [
        ["section", "name", "value", "period_before", "average_of_7_before", "incomplete"]
    ]
    figures = [("posts", "all", digest.posts), ("authors", "unique", digest.authors)]
    figures += [("platform", name, f) for name, f in digest.platforms.items()]
    figures += [("hashtag", name, f) for name, f in digest.hashtags.items()]
    rows += [[s, n, f.value, f.previous, f.average, f.incomplete] for s, n, f in figures]
    incomplete = digest.incomplete
    rows += [["gained", m, digest.gains[m], "", "", incomplete] for m in METRICS]
    for platform, gains in digest.gains_by_platform.items():
        rows += [[f"gained:{platform}", m, gains[m], "", "", ""] for m in METRICS]
    rows += [["campaign_total", m, digest.totals[m], "", "", ""] for m in METRICS]
    moderation = digest.moderation
    moderation_figures: list[tuple[str, object]] = [
        ("decisions", moderation.decisions),
        ("approved", moderation.approved),
        ("rejected", moderation.rejected),
        ("pending_now", moderation.pending),
        ("oldest_pending", Format.duration(moderation.oldest_pending_age)),
        ("median_arrival_to_decision", Format.duration(moderation.median_decision_time)),
        ("flagged", moderation.flagged),
        ("removed_at_source", moderation.removed_at_source),
        ("takedown_requests", moderation.takedown_requests),
    ]
    rows += [["moderation", name, value, "", "", ""] for name, value in moderation_figures]
    for c in digest.coverage:
        state = c.health.describe(settings.zone)
        hours = f"{c.hours_polled}/{c.hours_expected} hours polled"
        rows.append(["coverage", c.key, state, hours, "; ".join(c.gaps), not c.complete])
    rows += [["hour", b.label, b.posts, "", "", ""] for b in digest.hourly]
    rows += [["day", b.label, b.posts, "", "", ""] for b in digest.daily]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return buffer.getvalue()
