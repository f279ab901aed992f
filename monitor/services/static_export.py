"""The public gallery as a self-contained static site (``gallery export --out DIR``).

The site is the same markup as ``/gallery`` and ``/gallery/embed`` with every
link relative (``index.html``, ``page-2.html``, ``media/…``), so it works from
any static host or straight from ``file://``. Re-running it into the same
folder drops pages and media of posts that are no longer approved. Every file
is written through :func:`monitor.files.write_atomic`, so a static host serving
the folder meanwhile never sends half a page.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from sqlmodel import Session

from monitor.config import Settings
from monitor.errors import UserError
from monitor.files import write_atomic
from monitor.models import Campaign
from monitor.resources import templates_dir
from monitor.services.campaigns import campaign_tags, get_campaign
from monitor.services.gallery import (
    GalleryPage,
    all_pages,
    gallery_context,
    post_json,
    report_base,
)
from monitor.services.media import PINNED_NAME_RE, pinned_file
from monitor.services.placements import scope_for
from monitor.templating import make_environment

EXPORT_PAGE_SIZE = 60
#: The line of embed.js naming the page its iframe shows; the export's page is a file.
_EMBED_PAGE_LINE = 'var EMBED_PAGE = "gallery/embed";'
_EXPORT_EMBED_PAGE_LINE = 'var EMBED_PAGE = "embed.html";'
_PAGE_FILE_RE = re.compile(r"^(page|embed)-\d+\.html$")


@dataclasses.dataclass(slots=True)
class ExportSummary:
    """What an export wrote, for the command's report."""

    pages: int = 0
    posts: int = 0
    media_files: int = 0
    paused: bool = False
    #: Pinned files an approved post names but the media directory lacks.
    missing: list[str] = dataclasses.field(default_factory=list)


def export_site(
    *, session: Session, settings: Settings, out: Path, campaign: str | None = None
) -> ExportSummary:
    """Write campaign ``campaign``'s static gallery (None: the default campaign's) into
    ``out`` (created if needed). An archived campaign's gallery is not exported."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    chosen = get_campaign(session, settings, campaign)
    if chosen.archived_at is not None:
        raise UserError(f"campaign {chosen.slug!r} is archived: its gallery is closed")
    try:
        return _export(session, settings, out, chosen)
    except OSError as exc:
        raise UserError(f"could not write the export to {out}: {exc.strerror or exc}") from None


def _export(session: Session, settings: Settings, out: Path, campaign: Campaign) -> ExportSummary:
    pages = all_pages(
        session,
        secret=settings.ensure_secret_key(),
        media_url=lambda name: "media/" + name,
        page_size=EXPORT_PAGE_SIZE,
        scope=scope_for(session, campaign),
    )
    path = "" if campaign.is_default else f"/c/{campaign.slug}"  # the live site's
    tags = campaign_tags(campaign, settings)
    summary = ExportSummary(
        pages=len(pages),
        posts=sum(len(page.posts) for page in pages),
        paused=pages[0].paused,
    )
    (out / "media").mkdir(parents=True, exist_ok=True)
    _copy_media(settings, pages, out / "media", summary)
    environment = make_environment(settings)
    written: set[str] = set()
    variants = (("page", "index.html", False), ("embed", "embed.html", True))
    for number, page in enumerate(pages, start=1):
        for prefix, template, embed in variants:
            name = _page_file(prefix, number)
            context = gallery_context(
                settings,
                page,
                embed=embed,
                assets="",
                report_base=report_base(settings, path),
                hashtags=tags,
                older_url=_page_file(prefix, number + 1) if number < len(pages) else None,
                newer_url=_page_file(prefix, number - 1) if number > 1 else None,
                newer_label="Newer messages",
            )
            html = environment.get_template(f"gallery/{template}").render(context)
            _write(out / name, html.encode())
            written.add(name)
    for stale in out.iterdir():
        if _PAGE_FILE_RE.match(stale.name) and stale.name not in written:
            stale.unlink()
    feed = {
        "paused": summary.paused,
        "posts": [
            post_json(post, report_base=report_base(settings, path))
            for page in pages
            for post in page.posts
        ],
        "next_cursor": None,
    }
    _write(out / "gallery.json", json.dumps(feed, ensure_ascii=False, indent=1).encode())
    _write_assets(out)
    return summary


def _page_file(prefix: str, number: int) -> str:
    if number == 1:
        return "index.html" if prefix == "page" else "embed.html"
    return f"{prefix}-{number}.html"


def _copy_media(
    settings: Settings, pages: list[GalleryPage], media_out: Path, summary: ExportSummary
) -> None:
    wanted = {
        url.removeprefix("media/")
        for page in pages
        for post in page.posts
        for image in post.images
        for url, _ in image.srcset
    }
    for name in sorted(wanted):
        source = pinned_file(settings.media_dir, name)
        target = media_out / name
        if not source.is_file():
            summary.missing.append(name)
            continue
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            _write(target, source.read_bytes())
        summary.media_files += 1
    for existing in media_out.iterdir():
        if PINNED_NAME_RE.match(existing.name) and existing.name not in wanted:
            existing.unlink()


def _write_assets(out: Path) -> None:
    static = templates_dir() / "static"
    for name in ("gallery.css", "gallery.js"):
        _write(out / name, (static / name).read_bytes())
    script = (static / "embed.js").read_text()
    if script.count(_EMBED_PAGE_LINE) != 1:
        raise UserError("templates/static/embed.js no longer names its embed page as expected")
    _write(out / "embed.js", script.replace(_EMBED_PAGE_LINE, _EXPORT_EMBED_PAGE_LINE).encode())


def _write(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))
