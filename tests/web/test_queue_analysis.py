"""End to end: a photo with a face is polled, stored, checked, shown "being checked", then
flagged and blurred on its card, and approved only with the faces blurred (or consent).

The real path: the Mastodon fake over HTTP, the poll, staging, the analyser process
with the real face model, the queue over HTTP, and the published file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from PIL import Image
from skimage import data
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Media
from monitor.analysis.runner import Analyser, Outcome
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import MediaItem, Post
from monitor.services.analysis import analyse_waiting, begin_attempt, media_waiting, record_outcome
from monitor.services.ingest import record_posts
from monitor.services.polling import poll_all
from monitor.services.staging import stage_all_waiting
from monitor.web.app import create_app
from tests.factories import make_post
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import Reply
from tests.web.auth_helpers import TestClient, app_client, csrf_token, login, make_user
from tests.web.staging_helpers import stage_with_local_copy

JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def analyser() -> Iterator[Analyser]:
    with Analyser(targets={"faces": "monitor.analysis.faces:FaceDetector"}) as analyser:
        analyser.start()
        yield analyser


@pytest.fixture
def settings(
    configure: Callable[..., Settings],
    tmp_path: Path,
    mastodon: FakeMastodon,
    sqlite_engine: Engine,
) -> Settings:
    # The analyser process opens the database the jobs name: the one the test's engine is on.
    return configure(
        DATABASE_URL=sqlite_engine.url.render_as_string(hide_password=False),
        MASTODON_INSTANCES=mastodon.url,
        HASHTAGS="CEADAY21",
        OUTBOUND_ALLOW_PRIVATE="true",
        MEDIA_DIR=str(tmp_path / "media"),
        IMAGE_ANALYSIS="true",
        HTTP_TIMEOUT_SECONDS="10",
    )


@pytest.fixture
def moderator(sqlite_engine: Engine, settings: Settings) -> Iterator[TestClient]:
    make_user(sqlite_engine, "mo", "moderator")
    app: FastAPI = create_app(settings, engine=sqlite_engine)
    with app_client(app) as client:
        login(client, "mo")
        yield client


def _photo_with_a_face() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _post(engine: Engine) -> Post:
    with Session(engine) as session:
        return session.exec(select(Post)).one()


def _fields(client: TestClient, post: Post, **extra: object) -> dict[str, object]:
    return {
        "csrf_token": csrf_token(client),
        "post_id": str(post.id),
        "version": str(post.version),
        "return_to": "/queue",
        **extra,
    }


def test_poll_store_check_queue_blur_and_approve(
    sqlite_engine: Engine,
    settings: Settings,
    mastodon: FakeMastodon,
    moderator: TestClient,
    analyser: Analyser,
) -> None:
    body = _photo_with_a_face()
    mastodon.server.route(
        "GET", r"/media/face.jpg", lambda _r: Reply(200, body, {"Content-Type": "image/jpeg"})
    )
    attachment = {
        "id": "77",
        "type": "image",
        "url": f"{mastodon.url}/media/face.jpg",
        "preview_url": f"{mastodon.url}/media/face.jpg",
        "description": "Me at work",
    }
    mastodon.add("Write it on your hand #CEADAY21", media_attachments=[attachment])
    poll_all(engine=sqlite_engine, settings=settings)
    stage_all_waiting(engine=sqlite_engine, settings=settings)

    # Stored, not yet checked: the card says so and approval is refused.
    html = moderator.get("/queue").text
    assert "Being checked:" in html and "image 1 is being checked automatically" in html
    assert re.search(r'value="approve" class="approve" disabled', html)
    post = _post(sqlite_engine)
    refused = moderator.post(
        "/queue/decide", data=_fields(moderator, post, action="approve"), headers=JSON
    )
    assert refused.status_code == 409 and "still being checked" in refused.json()["message"]

    assert analyse_waiting(engine=sqlite_engine, settings=settings, analyser=analyser) == 1

    html = moderator.get("/queue").text
    assert "Being checked:" not in html
    assert "1 face in image 1" in html and "Publish with faces blurred" in html
    assert "<img src=" not in html  # hidden until revealed, as every flagged post's media
    post = _post(sqlite_engine)
    moderator.post("/queue/reveal", data=_fields(moderator, post), headers=JSON)
    ack = {"ack_flag": "1 face in image 1", "action": "approve"}
    refused = moderator.post("/queue/decide", data=_fields(moderator, post, **ack), headers=JSON)
    assert refused.status_code == 409 and "record the consent" in refused.json()["message"]

    blurred = moderator.post("/queue/blur-faces", data=_fields(moderator, post), headers=JSON)
    assert blurred.status_code == 200, blurred.text
    # The page the moderator had is stale: they must look at the blurred copy first.
    stale = moderator.post("/queue/decide", data=_fields(moderator, post, **ack), headers=JSON)
    assert stale.status_code == 409 and stale.json()["stale"]

    post = _post(sqlite_engine)
    moderator.post("/queue/reveal", data=_fields(moderator, post), headers=JSON)
    html = moderator.get("/queue").text
    assert "Faces blurred in image 1" in html
    [shown] = re.findall(r'<img src="/queue/media/([^"]+)"', html)
    approved = moderator.post("/queue/decide", data=_fields(moderator, post, **ack), headers=JSON)
    assert approved.status_code == 200, approved.text

    with Session(sqlite_engine) as session:
        item = session.exec(select(MediaItem)).one()
    # The public sees exactly the blurred file the moderator was shown.
    assert shown.startswith(item.pinned_hash or "-")
    public = moderator.get(f"/media/{shown}")
    assert public.status_code == 200
    assert public.content == moderator.get(f"/queue/media/{shown}").content


def test_the_sources_page_shows_the_analysers_health_and_last_failure(
    sqlite_engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with session_scope(sqlite_engine) as session:
        for number in range(2):
            media = (Media(kind="image", url=f"https://files.example/{number}.jpg", alt="x"),)
            record_posts(session=session, posts=[make_post(media=media)])
    stage_with_local_copy(sqlite_engine, settings)
    first = media_waiting(sqlite_engine)[0]
    assert begin_attempt(sqlite_engine, settings, first)
    record_outcome(sqlite_engine, settings, first, Outcome(errors=("the faces check timed out",)))
    make_user(sqlite_engine, "ad", "admin")
    with app_client(create_app(settings, engine=sqlite_engine)) as admin:
        login(admin, "ad")
        page = admin.get("/admin/sources").text
        queue = admin.get("/queue").text

    section = page[page.index('id="image-analysis"') :]
    assert "<dd>OK</dd>" in section and "<dd>1 image</dd>" in section
    assert f"post {first.post_id}: the faces check timed out (1 in the last 24 hours)" in section
    assert "The automatic check of image 1 failed:</strong> the faces check timed out" in queue
    assert "Being checked:" in queue  # the other post is still waiting
