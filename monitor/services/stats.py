"""The figures behind ``/stats``: which days a request asks for, and the digest as CSV.

The page, its chart and the CSV all come from :func:`compute_digest`, the same
computation as the email, so the numbers cannot drift apart.
"""

from __future__ import annotations

import csv
import io

from sqlmodel import Session

from monitor.config import Settings
from monitor.models import Campaign
from monitor.services.digest import Digest, Format, Range, compute_digest, resolve_range
from monitor.services.engagement import METRICS

#: Spreadsheet programs run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def requested_digest(
    session: Session,
    settings: Settings,
    first: str | None,
    last: str | None,
    campaign: Campaign | None = None,
) -> tuple[Digest, Range]:
    """The campaign's digest (None: the default one's) of the requested day, range or
    shortcut (today by default), and the range as resolved; UserError for a bad, reversed
    or future day."""
    chosen = resolve_range(session, settings, first, last)
    digest = compute_digest(session, settings, chosen.first_day, chosen.last_day, campaign=campaign)
    return digest, chosen


def csv_name(digest: Digest) -> str:
    """The download's file name, naming its period."""
    period = digest.period
    return f"stats-{period.first_day.isoformat()}-{period.last_day.isoformat()}.csv"


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
