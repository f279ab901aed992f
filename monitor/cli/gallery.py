"""``gallery export --out DIR``: the public gallery as a self-contained static site.

The site is the same markup as ``/gallery`` and ``/gallery/embed`` with every
link relative (``index.html``, ``page-2.html``, ``media/…``), so it works from
any static host or straight from ``file://``. Re-running it into the same
folder drops pages and media of posts that are no longer approved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from monitor.cli._common import echo, load, open_engine
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.resources import templates_dir
from monitor.services.gallery import GalleryPage, all_pages, post_json, set_gallery_paused
from monitor.services.media import PINNED_NAME_RE, pinned_file
from monitor.templating import make_environment
from monitor.web.routes.gallery import gallery_context, report_base

EXPORT_PAGE_SIZE = 60
#: The line of embed.js naming the page its iframe shows; the export's page is a file.
_EMBED_PAGE_LINE = 'var EMBED_PAGE = "gallery/embed";'
_EXPORT_EMBED_PAGE_LINE = 'var EMBED_PAGE = "embed.html";'
_PAGE_FILE_RE = re.compile(r"^(page|embed)-\d+\.html$")

gallery_app = typer.Typer(help="The public gallery.", no_args_is_help=True)


@dataclasses.dataclass(slots=True)
class ExportSummary:
    pages: int = 0
    posts: int = 0
    media_files: int = 0
    paused: bool = False
    #: Pinned files an approved post names but the media directory lacks.
    missing: list[str] = dataclasses.field(default_factory=list)


def export_site(*, session: Session, settings: Settings, out: Path) -> ExportSummary:
    """Write the static gallery into ``out`` (created if needed)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    try:
        return _export(session, settings, out)
    except OSError as exc:
        raise UserError(f"could not write the export to {out}: {exc.strerror or exc}") from None


def _export(session: Session, settings: Settings, out: Path) -> ExportSummary:
    pages = all_pages(
        session,
        secret=settings.ensure_secret_key(),
        media_url=lambda name: "media/" + name,
        page_size=EXPORT_PAGE_SIZE,
    )
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
                report_base=report_base(settings),
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
            post_json(post, report_base=report_base(settings))
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
    """Write through a temporary file and rename, so a static host never serves half a file."""
    fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


@gallery_app.command("export")
def export(
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the static site into (created).")
    ],
) -> None:
    """Write the approved gallery as a static site: HTML, JSON, pinned media, embed script."""
    settings = load()
    engine = open_engine(settings)
    with session_scope(engine) as session:
        summary = export_site(session=session, settings=settings, out=out)
    _report(summary, out)


def _switch(pause: bool, actor: str, reason: str | None) -> None:
    engine = open_engine(load())
    with session_scope(engine) as session:
        echo(set_gallery_paused(session=session, pause=pause, actor=actor, reason=reason))


SwitchActor = Annotated[str, typer.Option("--as", help="The moderator or admin (audited).")]
SwitchReason = Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit).")]


@gallery_app.command("pause")
def pause(as_user: SwitchActor, reason: SwitchReason = None) -> None:
    """The kill switch: every public surface shows a neutral message and no posts."""
    _switch(True, as_user, reason)


@gallery_app.command("resume")
def resume(as_user: SwitchActor, reason: SwitchReason = None) -> None:
    """Put the public gallery back after a pause."""
    _switch(False, as_user, reason)


def _report(summary: ExportSummary, out: Path) -> None:
    if summary.paused:
        echo(f"The gallery is paused: wrote the neutral page and an empty feed to {out}")
    else:
        echo(
            f"Wrote {summary.posts} posts on {summary.pages} page(s) and"
            f" {summary.media_files} media files to {out}"
        )
    for name in summary.missing:
        typer.echo(f"warning: pinned file {name} is missing from MEDIA_DIR", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
