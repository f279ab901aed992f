"""``hashtag-monitor gallery export``: a static site of approved posts only, self-contained."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import Post
from monitor.services.app_settings import GALLERY_PAUSED, set_app_setting
from monitor.services.static_export import EXPORT_PAGE_SIZE
from tests.monitor.test_gallery import publish, tiny_png
from tests.processes import CliResult


@pytest.fixture
def settings(
    configure: Callable[..., Settings], gallery_engine: Engine, tmp_path: Path
) -> Settings:
    return configure(
        DATABASE_URL=str(gallery_engine.url),
        MEDIA_DIR=str(tmp_path / "media"),
        DATA_DIR=str(tmp_path / "data"),
        PUBLIC_BASE_URL="https://gallery.force.example",
    )


@pytest.fixture
def export(cli: Callable[..., CliResult], settings: Settings) -> Callable[[Path], CliResult]:
    """Run ``hashtag-monitor gallery export --out DIR`` in-process."""
    return lambda out: cli("gallery", "export", "--out", str(out))


def _local_references(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]+)"', html) + [
        url.split()[0]
        for srcset in re.findall(r'srcset="([^"]+)"', html)
        for url in srcset.split(", ")
    ]


def test_export_writes_a_self_contained_site_of_approved_posts(
    export: Callable[[Path], CliResult],
    gallery_engine: Engine,
    settings: Settings,
    tmp_path: Path,
) -> None:
    shown = publish(
        gallery_engine, settings, text="Approved <b>message</b>", image=tiny_png(size=(700, 500))
    )
    publish(gallery_engine, settings, status="pending", text="Pending message")
    out = tmp_path / "site"

    code, stdout, stderr = export(out)

    assert code == 0, stderr
    assert "Wrote 1 posts on 1 page(s) and 3 media files" in stdout
    names = sorted(path.name for path in out.iterdir())
    assert names == [
        "embed.html",
        "embed.js",
        "gallery.css",
        "gallery.js",
        "gallery.json",
        "index.html",
        "media",
    ]
    index = (out / "index.html").read_text()
    assert "Approved &lt;b&gt;message&lt;/b&gt;" in index and "Pending message" not in index
    assert f'href="https://gallery.force.example/gallery/report/{shown}"' in index
    for reference in _local_references(index) + _local_references((out / "embed.html").read_text()):
        if reference.startswith(("https://", "#")):
            continue  # links to the original post and the takedown form: navigation, not loads
        assert not reference.startswith("/"), reference
        assert (out / reference).is_file(), reference
    feed = json.loads((out / "gallery.json").read_text())
    assert [post["text"] for post in feed["posts"]] == ["Approved <b>message</b>"]
    assert feed["posts"][0]["media"][0]["url"].startswith("media/")
    for image in (out / "media").iterdir():
        with Image.open(image) as opened:
            assert opened.format == "JPEG" and len(opened.getexif()) == 0
    assert 'var EMBED_PAGE = "embed.html";' in (out / "embed.js").read_text()


def test_the_export_carries_the_training_banner_in_training_mode(
    export: Callable[[Path], CliResult],
    configure: Callable[..., Settings],
    gallery_engine: Engine,
    settings: Settings,
    tmp_path: Path,
) -> None:
    publish(gallery_engine, settings, text="Practice message")
    configure(DEMO_MODE="true")
    out = tmp_path / "site"

    code, _, stderr = export(out)

    assert code == 0, stderr
    for page in ("index.html", "embed.html"):
        assert 'class="training-banner"' in (out / page).read_text(), page


def test_a_real_export_has_no_training_banner(
    export: Callable[[Path], CliResult], gallery_engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    publish(gallery_engine, settings, text="Real message")

    code, _, stderr = export(tmp_path / "site")

    assert code == 0, stderr
    assert "training-banner" not in (tmp_path / "site" / "index.html").read_text()


def test_reexport_drops_posts_that_left_approved_and_their_media(
    export: Callable[[Path], CliResult],
    gallery_engine: Engine,
    settings: Settings,
    tmp_path: Path,
) -> None:
    leaving = publish(gallery_engine, settings, text="Soon rejected", image=tiny_png((200, 10, 10)))
    for number in range(EXPORT_PAGE_SIZE):
        publish(gallery_engine, settings, text=f"Staying {number}")
    out = tmp_path / "site"
    assert export(out)[0] == 0
    assert (out / "page-2.html").is_file() and len(list((out / "media").iterdir())) == 1

    with session_scope(gallery_engine) as session:
        table = Post.__table__
        session.execute(sa.update(table).where(table.c.id == leaving).values(status="rejected"))
    assert export(out)[0] == 0

    assert not (out / "page-2.html").exists() and not (out / "embed-2.html").exists()
    assert "Soon rejected" not in (out / "index.html").read_text()
    assert list((out / "media").iterdir()) == []


def test_paused_gallery_exports_the_neutral_page(
    export: Callable[[Path], CliResult],
    gallery_engine: Engine,
    settings: Settings,
    tmp_path: Path,
) -> None:
    publish(gallery_engine, settings, text="Hidden while paused")
    with session_scope(gallery_engine) as session:
        set_app_setting(session, GALLERY_PAUSED, True, actor="admin")

    code, stdout, _ = export(tmp_path / "site")

    assert code == 0 and "paused" in stdout
    index = (tmp_path / "site" / "index.html").read_text()
    assert "taking a short break" in index and "Hidden while paused" not in index
    assert json.loads((tmp_path / "site" / "gallery.json").read_text())["posts"] == []


def test_export_into_a_file_is_a_one_line_error(
    export: Callable[[Path], CliResult], tmp_path: Path
) -> None:
    target = tmp_path / "not-a-folder"
    target.write_text("x")

    code, _, stderr = export(target)

    assert code == 2 and stderr.strip() == f"error: {target} exists and is not a folder"


def test_a_missing_pinned_file_is_a_warning_not_a_crash(
    export: Callable[[Path], CliResult],
    gallery_engine: Engine,
    settings: Settings,
    tmp_path: Path,
) -> None:
    publish(gallery_engine, settings, image=tiny_png((1, 2, 3)))
    for path in settings.media_dir.rglob("*.jpg"):
        path.unlink()

    code, _, stderr = export(tmp_path / "site")

    assert code == 0 and "warning: pinned file" in stderr and "is missing from MEDIA_DIR" in stderr
