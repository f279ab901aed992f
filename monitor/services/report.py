"""The campaign report: one period's figures for a board, as PDF, CSV or a workbook.

The figures are the digest's (:func:`compute_digest` over the range, so the report,
the email and ``/stats`` cannot disagree), plus what a campaign lead reports on:
the team's decisions, takedown requests and the time to act on them, escalations as
a count only (nothing about their content leaves the safeguarding lead's page).
Top posts are quoted only when approved, with the image a moderator approved (the
pinned copy, never the platform's URL). The PDF is the HTML template
``templates/report/report.html`` with a print stylesheet, laid out by WeasyPrint,
which is given only local files and data: it fetches nothing from the network.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import (
    AuditEvent,
    Campaign,
    Escalation,
    MediaItem,
    Post,
    PostStatus,
    TakedownRequest,
    utcnow,
)
from monitor.services.audit import DECISIONS, Action
from monitor.services.charts import digest_chart_png
from monitor.services.digest import Digest, Format, compute_digest, percentile
from monitor.services.digest_rows import decided_in, in_campaign
from monitor.services.media import pinned_file
from monitor.services.placements import scope_for
from monitor.services.reach import DEFINITION, describe
from monitor.templating import make_environment

SUFFIXES = (".pdf", ".csv", ".xlsx")
_EVENTS = AuditEvent.__table__
_TAKEDOWNS = TakedownRequest.__table__
_ESCALATIONS = Escalation.__table__


@dataclasses.dataclass(frozen=True, slots=True)
class Moderator:
    name: str
    approved: int
    rejected: int
    undone: int


@dataclasses.dataclass(frozen=True, slots=True)
class TeamFigures:
    """The campaign lead's view: who decided what, and what was reversed."""

    moderators: list[Moderator]
    #: Decisions undone (the undo offer) in the period.
    undone: int
    #: Approved posts that went back to the queue after an edit at source.
    back_after_edit: int
    takedowns: int
    takedowns_resolved: int
    time_to_act_p50: timedelta | None
    time_to_act_p95: timedelta | None
    escalations: int


@dataclasses.dataclass(frozen=True, slots=True)
class QuotedPost:
    rank: int
    platform: str
    author: str
    text: str
    url: str | None
    gained: int
    #: The approved image as a data: URL (the pinned copy), or None.
    image: str | None
    alt: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    digest: Digest
    team: TeamFigures
    posts: list[QuotedPost]
    generated_at: datetime

    @property
    def reach_line(self) -> str:
        return describe(self.digest.reach)

    @property
    def empty(self) -> bool:
        return self.digest.posts.value == 0


def build_report(
    session: Session,
    settings: Settings,
    first_day: date,
    last_day: date,
    *,
    campaign: Campaign | None = None,
) -> Report:
    """Every figure of the report of ``campaign`` (None: the default one) for these days."""
    digest = compute_digest(session, settings, first_day, last_day, campaign=campaign)
    scope = None if campaign is None else scope_for(session, campaign)
    return Report(
        digest=digest,
        team=team_figures(
            session,
            digest.period.start,
            digest.period.end,
            campaign_id=None if scope is None or scope.alone else scope.campaign_id,
        ),
        posts=_quoted(session, settings, digest),
        generated_at=utcnow(),
    )


def team_figures(
    session: Session, start: datetime, end: datetime, *, campaign_id: int | None = None
) -> TeamFigures:
    """Decisions per moderator, reversals, takedowns and escalations in [start, end) (of
    one campaign's posts and decisions, if given)."""
    in_period = sa.and_(_EVENTS.c.at >= start, _EVENTS.c.at < end)
    takedowns = sa.and_(_TAKEDOWNS.c.at >= start, _TAKEDOWNS.c.at < end)
    escalated = sa.and_(_ESCALATIONS.c.opened_at >= start, _ESCALATIONS.c.opened_at < end)
    if campaign_id is not None:
        in_period = sa.and_(in_period, decided_in(campaign_id))
        takedowns = sa.and_(takedowns, in_campaign(_TAKEDOWNS.c.post_id, campaign_id))
        escalated = sa.and_(escalated, in_campaign(_ESCALATIONS.c.post_id, campaign_id))
    decided: Counter[tuple[str, str]] = Counter()
    for actor, action, n in session.execute(
        sa.select(_EVENTS.c.actor, _EVENTS.c.action, sa.func.count())
        .where(in_period, _EVENTS.c.action.in_([*DECISIONS, Action.UNDO]))
        .group_by(_EVENTS.c.actor, _EVENTS.c.action)
    ):
        decided[(actor, action)] += int(n)
    names = sorted({actor for actor, _ in decided})
    moderators = [
        Moderator(
            name,
            decided[(name, Action.APPROVE)],
            decided[(name, Action.REJECT)],
            decided[(name, Action.UNDO)],
        )
        for name in names
    ]
    back = session.execute(
        sa.select(sa.func.count()).where(
            in_period,
            _EVENTS.c.action == Action.EDITED_AT_SOURCE,
            _EVENTS.c.from_status == PostStatus.APPROVED.value,
        )
    ).scalar_one()
    requests = session.execute(
        sa.select(_TAKEDOWNS.c.at, _TAKEDOWNS.c.resolved_at).where(takedowns)
    ).all()
    waits = sorted((r - a).total_seconds() for a, r in requests if r is not None)
    escalations = session.execute(sa.select(sa.func.count()).where(escalated)).scalar_one()
    return TeamFigures(
        moderators=moderators,
        undone=sum(m.undone for m in moderators),
        back_after_edit=int(back),
        takedowns=len(requests),
        takedowns_resolved=len(waits),
        time_to_act_p50=_wait(waits, 0.5),
        time_to_act_p95=_wait(waits, 0.95),
        escalations=int(escalations),
    )


def _wait(ordered: list[float], fraction: float) -> timedelta | None:
    return timedelta(seconds=round(percentile(ordered, fraction))) if ordered else None


def _quoted(session: Session, settings: Settings, digest: Digest) -> list[QuotedPost]:
    """The top posts that a moderator approved, each with its first pinned image."""
    quoted = [p for p in digest.top_posts if p.quoted]
    ids = {
        (row.platform, row.url): row.id
        for row in session.execute(
            sa.select(Post.__table__.c.id, Post.__table__.c.platform, Post.__table__.c.url).where(
                Post.__table__.c.url.in_([p.url for p in quoted if p.url])
            )
        )
    }
    result = []
    for post in quoted:
        post_id = ids.get((post.platform, post.url))
        image, alt = _pinned_image(session, settings, post_id) if post_id else (None, None)
        result.append(
            QuotedPost(
                rank=post.rank,
                platform=post.platform,
                author=f"{post.author_name} {post.author_handle}",
                text=post.text or "",
                url=post.url,
                gained=post.gained,
                image=image,
                alt=alt,
            )
        )
    return result


def _pinned_image(
    session: Session, settings: Settings, post_id: int
) -> tuple[str | None, str | None]:
    """The post's first pinned image (its smallest rendition) as a data: URL."""
    item = session.execute(
        sa.select(MediaItem)
        .where(col(MediaItem.post_id) == post_id, col(MediaItem.pinned_path).is_not(None))
        .order_by(col(MediaItem.position))
        .limit(1)
    ).scalar_one_or_none()
    if item is None or not item.pinned_hash or not item.pinned_widths:
        return None, None
    path = pinned_file(settings.media_dir, f"{item.pinned_hash}-{item.pinned_widths[0]}.jpg")
    try:
        data = path.read_bytes()
    except OSError:
        return None, None
    alt = "" if item.decorative else item.alt
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"), alt


def render_html(report: Report, settings: Settings) -> str:
    chart = base64.b64encode(digest_chart_png(report.digest)).decode("ascii")
    template = make_environment(settings).get_template("report/report.html")
    return template.render(
        report=report,
        d=report.digest,
        fmt=Format,
        chart=f"data:image/png;base64,{chart}",
        definition=DEFINITION,
    )


def render_pdf(report: Report, settings: Settings) -> bytes:
    """The report as PDF (HTML and its print stylesheet, laid out by WeasyPrint)."""
    try:
        from weasyprint import CSS, HTML
        from weasyprint.urls import URLFetcher
    except OSError as exc:  # the pango libraries are missing
        raise UserError(
            f"cannot make a PDF: {exc}; run `make` (it installs Debian's pango libraries)"
        ) from None
    styles = Path(make_environment(settings).get_template("report/print.css").filename or "")
    # data: URLs only (the chart and the images are embedded): the report fetches nothing.
    fetcher = URLFetcher(allowed_protocols={"data"})
    html = HTML(string=render_html(report, settings), url_fetcher=fetcher)
    pdf: bytes = html.write_pdf(stylesheets=[CSS(filename=str(styles))])
    return pdf


def rows(report: Report) -> list[tuple[str, str, object, str]]:
    """Every figure as (section, name, value, note), for the CSV and the workbook."""
    d, team = report.digest, report.team
    out: list[tuple[str, str, object, str]] = [
        ("headline", "period", d.period.label, d.timezone),
        ("headline", "potential_reach", d.reach.total, report.reach_line),
        ("headline", "contributors", d.reach.authors, "counted once per platform"),
        ("headline", "new_contributors", d.reach.new_authors, ""),
        ("headline", "posts", d.posts.value, "incomplete" if d.posts.incomplete else ""),
        ("headline", "approved_share_pct", d.reach.approved_share, ""),
        ("headline", "incomplete", d.incomplete, ""),
    ]
    for p in d.reach.platforms:
        note = p.why_not or f"{p.counted} of {p.authors} authors counted"
        out += [
            (
                "platform",
                f"{p.platform}:posts",
                d.platforms[p.platform].value if p.platform in d.platforms else 0,
                "",
            ),
            ("platform", f"{p.platform}:authors", p.authors, ""),
            ("platform", f"{p.platform}:potential_reach", p.reach, note),
        ]
        for metric, value in d.gains_by_platform.get(p.platform, {}).items():
            out.append(("platform", f"{p.platform}:{metric}_gained", value, ""))
    out += [("daily", b.label, b.posts, "") for b in d.daily]
    out += [
        ("top_post", f"{q.rank}", q.gained, f"{q.author}: {q.text[:200]}") for q in report.posts
    ]
    out += [
        (
            "contributor",
            c.label,
            c.followers,
            "" if c.jumped_from is None else f"jumped from {c.jumped_from}: not capped",
        )
        for c in d.reach.top
    ]
    m = d.moderation
    out += [
        ("moderation", "decisions", m.decisions, ""),
        ("moderation", "approved", m.approved, ""),
        ("moderation", "rejected", m.rejected, ""),
        ("moderation", "arrival_to_decision_p50", Format.duration(m.median_decision_time), ""),
        ("moderation", "arrival_to_decision_p95", Format.duration(m.p95_decision_time), ""),
        ("moderation", "takedown_requests", team.takedowns, ""),
        ("moderation", "takedown_time_to_act_p50", Format.duration(team.time_to_act_p50), ""),
        ("moderation", "takedown_time_to_act_p95", Format.duration(team.time_to_act_p95), ""),
        ("moderation", "escalations", team.escalations, "a count only"),
        ("team", "undone", team.undone, ""),
        ("team", "back_to_queue_after_edit", team.back_after_edit, ""),
    ]
    out += [("team", f"{x.name}:approved", x.approved, "") for x in team.moderators]
    out += [("team", f"{x.name}:rejected", x.rejected, "") for x in team.moderators]
    for c in d.coverage:
        note = f"{c.hours_polled}/{c.hours_expected} hours polled"
        out.append(("coverage", c.key, "complete" if c.complete else "INCOMPLETE", note))
    return out


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """None reads "not available"; text a spreadsheet would run as a formula is quoted."""
    if value is None:
        return Format.NOT_AVAILABLE
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def render_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["section", "name", "value", "note"])
    writer.writerows([[_cell(v) for v in row] for row in rows(report)])
    return buffer.getvalue()


def render_xlsx(report: Report) -> bytes:
    """One sheet per section, the figures as numbers where they are numbers."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    sheets: dict[str, Any] = {}
    for section, name, value, note in rows(report):
        sheet = sheets.get(section)
        if sheet is None:
            sheet = sheets[section] = book.create_sheet(section[:31])
            sheet.append(["name", "value", "note"])
        sheet.append([_cell(name), _cell(value), _cell(note)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def write_report(report: Report, settings: Settings, out: Path) -> None:
    """Write the report in the format the file's suffix names."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"--out {out}: name a .pdf, .csv or .xlsx file")
    content = (
        render_pdf(report, settings)
        if suffix == ".pdf"
        else render_csv(report).encode("utf-8")
        if suffix == ".csv"
        else render_xlsx(report)
    )
    try:
        out.write_bytes(content)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
