"""The queue shows our stored copies, and approval needs what a person must do first.

Over HTTP, as a moderator's browser (or an attacker's forged form) would send it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Media
from monitor.config import Settings
from monitor.models import AuditEvent, MediaItem, Post
from monitor.services.staging import stage_all_waiting
from tests.factories import make_post
from tests.fakes.server import FakeServer, Reply
from tests.web.auth_helpers import TestClient, app_client, csrf_token, login
from tests.web.test_queue import (
    JSON,
    _decide,
    _statuses,
    _store,
    _text_post,
)


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(OUTBOUND_ALLOW_PRIVATE="true", MEDIA_DIR=str(tmp_path / "media"))


@pytest.fixture
def image_url(fake_server: FakeServer) -> Callable[[str], str]:
    body = _png(700, 500)
    fake_server.route(
        "GET", r"/img/.*", lambda _request: Reply(200, body, {"Content-Type": "image/png"})
    )
    return lambda name: f"{fake_server.url}/img/{name}.png"


def _staged(engine: Engine, settings: Settings) -> None:
    stage_all_waiting(engine=engine, settings=settings)


def _version(engine: Engine, post_id: int) -> int:
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        return post.version


def _copy_name(engine: Engine, post_id: int) -> str:
    with Session(engine) as session:
        item = session.exec(select(MediaItem).where(MediaItem.post_id == post_id)).one()
        assert item.pinned_hash and item.pinned_widths
        return f"{item.pinned_hash}-{item.pinned_widths[-1]}.jpg"


def test_cards_show_our_copy_and_never_a_media_host(
    sqlite_engine: Engine,
    settings: Settings,
    moderator: TestClient,
    image_url: Callable[[str], str],
    fake_server: FakeServer,
) -> None:
    url = image_url("a")
    [post_id] = _store(sqlite_engine, make_post(media=(Media(kind="image", url=url, alt="A"),)))
    before = moderator.get("/queue").text
    assert "is being fetched for review" in before and fake_server.url not in before

    _staged(sqlite_engine, settings)

    html = moderator.get("/queue").text
    [src] = re.findall(r'<img src="([^"]+)"', html)
    assert src.startswith("/queue/media/") and fake_server.url not in html
    assert moderator.get(src).status_code == 200
    assert fake_server.hits("/img/a.png") == 1
    # Private until approval: the public route does not serve it, nor does it without a login.
    name = _copy_name(sqlite_engine, post_id)
    assert moderator.get(f"/media/{name}").status_code == 404
    with app_client(moderator.app) as anonymous:
        assert anonymous.get(f"/queue/media/{name}", headers=JSON).status_code == 401


def test_approving_a_page_loaded_before_the_copy_existed_is_refused_as_stale(
    sqlite_engine: Engine,
    settings: Settings,
    moderator: TestClient,
    image_url: Callable[[str], str],
) -> None:
    [post_id] = _store(
        sqlite_engine, make_post(media=(Media(kind="image", url=image_url("b"), alt="B"),))
    )
    fields = _decide(moderator, post_id, "approve", version=_version(sqlite_engine, post_id))

    answer = moderator.post("/queue/decide", data=fields, headers=JSON)

    assert answer.status_code == 409 and answer.json()["stale"]
    assert _statuses(sqlite_engine) == {post_id: "pending"}
    fields["version"] = str(_version(sqlite_engine, post_id))
    assert moderator.post("/queue/decide", data=fields, headers=JSON).json()["ok"]


def test_a_forged_reveal_field_does_not_count_only_the_recorded_reveal_does(
    sqlite_engine: Engine,
    settings: Settings,
    moderator: TestClient,
    image_url: Callable[[str], str],
) -> None:
    media = (Media(kind="image", url=image_url("s"), alt="S", sensitive=True),)
    [post_id] = _store(sqlite_engine, make_post(media=media))
    _staged(sqlite_engine, settings)
    html = moderator.get("/queue").text
    assert "<img" not in html and "image 1 hidden" in html  # not even a blurred copy loads
    version = str(_version(sqlite_engine, post_id))
    forged = {**_decide(moderator, post_id, "approve", version=int(version))}
    forged.update({"media_seen": "1", "revealed": "1"})

    refused = moderator.post("/queue/decide", data=forged, headers=JSON)
    assert refused.status_code == 409 and "its media is hidden" in refused.json()["message"]

    reveal = {"csrf_token": csrf_token(moderator), "post_id": str(post_id), "return_to": "/queue"}
    answer = moderator.post("/queue/reveal", data=reveal, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/queue#post-{post_id}"
    assert "<img" in moderator.get("/queue").text
    assert moderator.post("/queue/decide", data=forged, headers=JSON).json()["ok"]
    with Session(sqlite_engine) as session:
        query = select(AuditEvent.action).where(AuditEvent.post_id == post_id)
        actions = list(session.exec(query.order_by(AuditEvent.id)))
    assert actions == ["media_revealed", "approve"]


def test_a_viewer_cannot_reveal(
    app: FastAPI, sqlite_engine: Engine, settings: Settings, image_url: Callable[[str], str]
) -> None:
    media = (Media(kind="image", url=image_url("v"), alt="V", sensitive=True),)
    [post_id] = _store(sqlite_engine, make_post(media=media))
    with app_client(app) as viewer:
        login(viewer, "vi")
        fields = {"csrf_token": csrf_token(viewer), "post_id": str(post_id)}
        assert viewer.post("/queue/reveal", data=fields, headers=JSON).status_code == 403


def test_flag_reasons_are_acknowledged_on_the_card(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post(text="Call me on 07700 900123 #CEADAY21"))
    with Session(sqlite_engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        post.flagged, post.flag_reasons = True, ["Personal data: looks like a UK phone number"]
        session.add(post)
        session.commit()
    html = moderator.get("/queue").text
    assert 'name="ack_flag" value="Personal data: looks like a UK phone number"' in html
    fields = _decide(moderator, post_id, "approve")

    refused = moderator.post("/queue/decide", data=fields, headers=JSON)
    assert refused.status_code == 409 and "acknowledge each reason" in refused.json()["message"]
    fields["ack_flag"] = "Personal data: looks like a UK phone number"
    assert moderator.post("/queue/decide", data=fields, headers=JSON).json()["ok"]


def test_bulk_approval_says_how_many_were_left_out_and_why(
    sqlite_engine: Engine,
    settings: Settings,
    moderator: TestClient,
    image_url: Callable[[str], str],
) -> None:
    clean = _store(sqlite_engine, _text_post())[0]
    media = (Media(kind="image", url=image_url("h"), alt="H", sensitive=True),)
    hidden = _store(sqlite_engine, make_post(media=media))[0]
    _staged(sqlite_engine, settings)
    selected = [f"{pid}:{_version(sqlite_engine, pid)}" for pid in (clean, hidden)]
    fields = {"csrf_token": csrf_token(moderator), "action": "approve", "selected": selected}

    answer = moderator.post("/queue/bulk", data=fields, headers=JSON).json()

    assert answer["decided"] == [clean] and list(answer["refused"]) == [str(hidden)]
    assert "Left out 1 that need a closer look" in answer["message"]


def test_link_destinations_are_shown_as_hosts_and_foreign_ones_marked(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    post = _text_post(
        html='<p>Support <a href="https://evil.example/win">here</a>'
        ' <a href="https://example.social/tags/ceaday21">#CEADAY21</a>'
        ' <a href="https://other.social/@friend">@friend</a></p>',
    )
    [post_id] = _store(sqlite_engine, post)
    with Session(sqlite_engine) as session:
        stored = session.get(Post, post_id)
        assert stored is not None and stored.flagged
        # Flagged at ingestion, naming only the author's own link off the site: a mention
        # of someone on another server is the platform's navigation, not a link.
        assert stored.flag_reasons == ["Links to another site than the post's own: evil.example"]
    html = moderator.get("/queue").text
    assert 'Post: <span class="host">example.social</span>' in html
    assert re.search(
        r'<li class="foreign">Link in text: <span class="host">evil.example</span>', html
    )
    assert "tags/ceaday21" not in html.split('class="links"')[1].split("</ul>")[0]


def test_the_chosen_order_survives_paging(sqlite_engine: Engine, moderator: TestClient) -> None:
    """The finding: "newest first" was dropped by the next-page link."""
    ids = _store(sqlite_engine, *(_text_post() for _ in range(25)))
    page = moderator.get("/queue?tab=pending&order=newest").text
    [next_url] = re.findall(r'<a href="([^"]+)" rel="next"', page)
    assert "order=newest" in next_url
    second = moderator.get(next_url.replace("&amp;", "&")).text
    shown = [int(pid) for pid in re.findall(r'data-post-id="(\d+)"', page + second)]
    assert shown == sorted(ids, reverse=True)


def test_consent_is_recorded_on_the_card_then_the_post_can_be_approved(
    app: FastAPI, sqlite_engine: Engine, moderator: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post(opt_out="their account is not discoverable"))
    html = moderator.get("/queue").text
    assert "The author asked not to be shown publicly" in html and 'action="/queue/consent"' in html
    fields = _decide(moderator, post_id, "approve")
    fields["ack_flag"] = (
        "Opt-out: their account is not discoverable; publish only with consent on record"
    )
    refused = moderator.post("/queue/decide", data=fields, headers=JSON)
    assert refused.status_code == 409 and "record their consent" in refused.json()["message"]

    with app_client(app) as viewer:
        login(viewer, "vi")
        forged = {"csrf_token": csrf_token(viewer), "post_id": str(post_id), "how": "x"}
        assert viewer.post("/queue/consent", data=forged, headers=JSON).status_code == 403
    consent = {
        "csrf_token": csrf_token(moderator),
        "post_id": str(post_id),
        "how": "Direct message, the author agreed",
        "obtained_on": "2021-03-19",
    }
    assert (
        moderator.post(
            "/queue/consent", data={**consent, "obtained_on": "soon"}, headers=JSON
        ).status_code
        == 409
    )
    assert moderator.post("/queue/consent", data=consent, headers=JSON).json()["ok"]
    assert "Consent on record: Direct message, the author agreed" in moderator.get("/queue").text
    assert moderator.post("/queue/decide", data=fields, headers=JSON).json()["ok"]
