"""Media marked sensitive at source stays behind a content note on every public surface
(issue 12, "nothing approved unseen"): the gallery, its embed and its JSON feed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from adapters.base import Media
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import Post
from monitor.services.ingest import record_posts
from monitor.services.moderation import decide
from monitor.web.app import create_app
from tests.factories import make_post
from tests.web.auth_helpers import make_user
from tests.web.staging_helpers import stage_with_local_copy


def _approved(engine: Engine, settings: Settings, *, sensitive: bool) -> None:
    media = (
        Media(kind="image", url="https://media.test/a.jpg", alt="A hand", sensitive=sensitive),
    )
    with session_scope(engine) as session:
        [post_id] = record_posts(session=session, posts=[make_post(media=media)]).new_ids
    stage_with_local_copy(engine, settings)
    with session_scope(engine) as session:
        post = session.get_one(Post, post_id)
        decide(
            session=session, post=post, action="approve", actor="mod", settings=settings,
            media_seen=True,
        )  # fmt: skip


def test_sensitive_media_is_behind_a_content_note_that_works_without_script(
    gallery_engine: Engine, configure: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = configure(MEDIA_DIR=str(tmp_path / "media"), DATA_DIR=str(tmp_path / "data"))
    make_user(gallery_engine, "mod", "moderator")
    _approved(gallery_engine, settings, sensitive=True)
    _approved(gallery_engine, settings, sensitive=False)

    with TestClient(create_app(settings, engine=gallery_engine)) as client:
        for path in ("/gallery", "/gallery/embed"):
            html = client.get(path).text
            hidden = re.findall(
                r'<details class="post-warning"><summary>Content note: sensitive media'
                r".*?</summary>\s*<figure", html, re.S,
            )  # fmt: skip
            assert len(hidden) == 1, path  # the sensitive one only
            assert html.count("<figure") == 2
        feed = client.get("/gallery.json").json()["posts"]
    assert sorted(post["sensitive"] for post in feed) == [False, True]
