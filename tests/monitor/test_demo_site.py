"""What the demo serves under /demo: sample images, post stand-ins, the digest preview."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.demo.sample import build_sample
from monitor.demo.site import DIGEST_CSP, add_sample_site
from monitor.web.app import create_app
from tests.web.auth_helpers import TestClient, app_client


@pytest.fixture
def client(
    gallery_engine: Engine, configure: Callable[..., Settings], tmp_path: Path
) -> Iterator[TestClient]:
    settings = configure(DEMO_MODE="true", DATA_DIR=str(tmp_path / "data"))
    app = create_app(settings, engine=gallery_engine)
    add_sample_site(app, tmp_path / "drawn")
    with app_client(app) as client:
        yield client


def test_sample_images_are_drawn_on_first_request_and_served_as_jpeg(
    client: TestClient, tmp_path: Path
) -> None:
    sid = next(post.sid for post in build_sample() if post.image)
    first = client.get(f"/demo/media/{sid}.jpg")
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.content[:3] == b"\xff\xd8\xff"
    assert client.get(f"/demo/media/{sid}.jpg").content == first.content
    assert [p.name for p in (tmp_path / "drawn").iterdir()] == [f"{sid}.jpg"]


@pytest.mark.parametrize(
    "path",
    [
        "/demo/media/..%2F..%2Fdata%2Fsecret_key",
        "/demo/media/s001.png",
        "/demo/media/s999.jpg",
        "/demo/media/" + "s" * 5000 + ".jpg",
        "/demo/posts/<script>alert(1)</script>",
        "/demo/posts/s999",
    ],
)
def test_anything_but_a_sample_is_not_found(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "<script>" not in response.text


def test_a_text_only_post_has_no_image(client: TestClient) -> None:
    sid = next(post.sid for post in build_sample() if post.image is None)
    assert client.get(f"/demo/media/{sid}.jpg").status_code == 404


def test_the_original_post_link_shows_the_post_as_plain_text(client: TestClient) -> None:
    post = build_sample()[0]
    response = client.get(f"/demo/posts/{post.sid}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert post.text in response.text and post.network in response.text


def test_digest_preview_is_the_email_with_its_chart_inline(client: TestClient) -> None:
    response = client.get("/demo/digest")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DIGEST_CSP
    assert "Hashtag digest" in response.text
    assert 'src="data:image/png;base64,' in response.text and "cid:" not in response.text


def test_every_page_carries_the_training_banner_in_demo_mode(client: TestClient) -> None:
    for path in ("/", "/login", "/gallery", "/gallery/embed"):
        assert "Training data" in client.get(path).text, path


def test_no_banner_outside_demo_mode(
    gallery_engine: Engine, configure: Callable[..., Settings]
) -> None:
    with app_client(create_app(configure(), engine=gallery_engine)) as client:
        for path in ("/", "/login", "/gallery"):
            assert "Training data" not in client.get(path).text, path


def test_the_demo_gallery_can_be_framed_from_localhost_pages(
    tmp_path: Path, training_mode: None
) -> None:
    """docs/embedding.md's first step embeds the demo from a page served on localhost.

    ``demo_settings`` registers the sample platform; ``training_mode`` takes it away
    again, so a test that runs after this one in the same worker never sees it.
    """
    from monitor.demo.runner import demo_settings
    from monitor.web.routes.gallery import frame_ancestors

    settings = demo_settings(tmp_path, 8123)
    sources = frame_ancestors(settings).split()
    assert sources == ["'self'", "http://localhost:*", "http://127.0.0.1:*"]
    assert settings.public_base_url == "http://127.0.0.1:8123"
