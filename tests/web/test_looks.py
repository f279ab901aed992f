"""The gallery's look and curation from the admin pages: contrast refused with its reason,
the theme and logo served with no cookie, pinned and featured posts, the screen delay, and
today's latency figures on the admin page."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import LatencyStage, Post, utcnow
from monitor.services.app_settings import get_app_setting
from monitor.services.latency import Sample, record_latency
from monitor.services.live import SCREEN_DELAY
from monitor.services.looks import LOOK, load_look, pinned_ids
from monitor.web.app import create_app
from tests.web.auth_helpers import (
    TestClient,
    app_client,
    csrf_token,
    login,
    make_user,
)
from tests.web.live_helpers import pending_post, ref_of

GOOD = {"layout": "list", "background": "#ffffff", "text": "#1b1b1b", "accent": "#0b3d6b"}


@pytest.fixture
def engine(gallery_engine: Engine) -> Engine:
    """A migrated SQLite database of its own (copied from the suite's template)."""
    return gallery_engine


@pytest.fixture
def app(engine: Engine, configure: Callable[..., Settings], tmp_path: Path) -> FastAPI:
    make_user(engine, "ad", "admin")
    make_user(engine, "mo", "moderator")
    settings = configure(MEDIA_DIR=str(tmp_path / "media"), DATA_DIR=str(tmp_path / "data"))
    return create_app(settings, engine=engine)


@pytest.fixture
def admin(app: FastAPI) -> Iterator[TestClient]:
    with app_client(app) as client:
        login(client, "ad")
        yield client


def _message(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    found = re.findall(r'<p class="notice">([^<]*)</p>', response.text)
    assert found, response.text
    return found[0].replace("&#39;", "'").replace("&amp;", "&")


def _save(client: TestClient, files: dict | None = None, **fields: str) -> str:  # type: ignore[type-arg]
    data = {"csrf_token": csrf_token(client), **GOOD, **fields}
    return _message(client.post("/admin/looks", data=data, files=files))


def test_colours_below_aa_are_refused_with_the_reason_and_nothing_changes(
    admin: TestClient, engine: Engine
) -> None:
    message = _save(admin, text="#999999")
    assert message.startswith("Not done: the text on the background has a contrast of 2.84:1")
    assert "WCAG 2.2 AA needs at least 4.5:1" in message
    dark = {"background": "#1b1b1b", "text": "#ffffff", "accent": "#c0c0c0"}
    assert "white header and button text" in _save(admin, **dark)
    assert "not a colour" in _save(admin, background="url(javascript:x)")
    with Session(engine) as session:
        assert get_app_setting(session, LOOK) is None


def test_a_saved_look_reaches_the_gallery_through_a_stylesheet(
    admin: TestClient, app: FastAPI, engine: Engine
) -> None:
    assert _save(admin, background="#fdf6e3", accent="#8a1538", layout="masonry") == (
        "Saved the gallery's look."
    )
    with app_client(app) as public:
        page = public.get("/gallery")
        [theme] = re.findall(r'href="(/gallery/theme\.css\?v=[0-9a-f]+)"', page.text)
        assert "layout-masonry" in page.text and "set-cookie" not in page.headers
        css = public.get(theme)
    assert css.headers["content-type"].startswith("text/css")
    assert "--paper: #fdf6e3" in css.text and "--band: #8a1538" in css.text
    assert "set-cookie" not in css.headers


def test_a_logo_is_re_encoded_served_and_needs_alt_text(
    admin: TestClient, app: FastAPI, engine: Engine
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 100), (10, 60, 120)).save(buffer, "PNG")
    logo = {"logo": ("logo.png", buffer.getvalue(), "image/png")}
    assert "describe the logo" in _save(admin, files=logo)
    assert _save(admin, files=logo, logo_alt="Northshire Police") == "Saved the gallery's look."
    assert "could not be used" in _save(
        admin, files={"logo": ("x.png", b"not an image", "image/png")}, logo_alt="x"
    )
    with Session(engine) as session:
        look = load_look(session)
    assert look.logo is not None and look.logo_alt == "Northshire Police"
    with app_client(app) as public:
        page = public.get("/gallery").text
        assert f'src="/gallery/logo/{look.logo}" alt="Northshire Police"' in page
        served = public.get(f"/gallery/logo/{look.logo}")
        assert served.status_code == 200 and served.content[:2] == b"\xff\xd8"
        assert public.get("/gallery/logo/" + "0" * 64 + "-320.jpg").status_code == 404
        assert public.get("/gallery/logo/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_pinned_and_featured_posts_lead_the_gallery(
    admin: TestClient, app: FastAPI, engine: Engine
) -> None:
    old = pending_post(engine, text="Pin me, I am old")
    new = pending_post(engine, text="Newest message")
    waiting = pending_post(engine, text="Not approved")
    table = Post.__table__
    with session_scope(engine) as session:
        session.execute(
            sa.update(table).where(table.c.id.in_([old, new])).values(status="approved")
        )
    token = csrf_token(admin)
    post = lambda ref, action: _message(  # noqa: E731
        admin.post("/admin/curation", data={"csrf_token": token, "ref": ref, "action": action})
    )
    assert post(ref_of(engine, old), "pin") == f"Pinned {ref_of(engine, old)}."
    assert post(ref_of(engine, old), "pin").endswith("was already pinned.")
    assert post(ref_of(engine, new), "feature") == f"Featured {ref_of(engine, new)}."
    assert "only a post approved on this gallery" in post(ref_of(engine, waiting), "pin")
    assert "no post" in post("mastodon:nothing-here", "pin")
    assert "choose pin" in post(ref_of(engine, old), "delete")
    with app_client(app) as public:
        page = public.get("/gallery").text
    pinned, stream = page.split('class="gallery-grid gallery-stream', 1)
    assert "Pin me, I am old" in pinned and "Pin me, I am old" not in stream
    assert re.search(r'post-item post-featured" data-id="[^"]+">.*Newest message', stream, re.S)
    assert post(ref_of(engine, old), "unpin") == f"Unpinned {ref_of(engine, old)}."
    with Session(engine) as session:
        assert pinned_ids(session) == []


def test_the_screen_delay_is_set_by_an_admin_in_whole_seconds(
    admin: TestClient, engine: Engine
) -> None:
    token = csrf_token(admin)
    for bad in ("-5", "ten", "99999999", "1.5"):
        message = _message(
            admin.post("/admin/screen-delay", data={"csrf_token": token, "seconds": bad})
        )
        assert message.startswith("Not done: give the delay in whole seconds")
    message = _message(
        admin.post("/admin/screen-delay", data={"csrf_token": token, "seconds": "120"})
    )
    assert message == "The event screen now waits 120 seconds after an approval."
    with Session(engine) as session:
        assert get_app_setting(session, SCREEN_DELAY) == 120
    assert 'value="120"' in admin.get("/admin/looks").text


def test_only_admins_change_the_look(app: FastAPI, engine: Engine) -> None:
    with app_client(app) as client:
        login(client, "mo")
        token = csrf_token(client)
        assert client.get("/admin/looks").status_code == 403
        for path in ("/admin/looks", "/admin/curation", "/admin/screen-delay"):
            assert client.post(path, data={"csrf_token": token, **GOOD}).status_code == 403


def test_the_admin_page_shows_todays_latency_figures(admin: TestClient, engine: Engine) -> None:
    with session_scope(engine) as session:
        record_latency(
            session,
            [
                Sample(LatencyStage.APPROVAL_TO_GALLERY, n, 1, utcnow(), n / 10)
                for n in range(1, 21)
            ],
        )
    page = admin.get("/admin").text
    assert re.search(
        r"Approval to visible on the gallery</td><td>20</td>\s*<td>1\.0 s</td>\s*<td>1\.9 s</td>",
        page,
    )
    # Every stage is listed, those read from the posts' own times too.
    assert "Platform to stored" in page
    assert "Takedown request to off the gallery</td><td>0</td>" in page
