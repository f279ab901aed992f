"""The landing page and the probes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.db import create_db_engine
from monitor.services.polling import poll_all
from monitor.web.app import create_app
from tests.fakes.mastodon import FakeMastodon

#: A client address on this machine, as Prometheus scraping locally has.
LOOPBACK = ("127.0.0.1", 50000)
TOKEN = "m" * 24


@pytest.fixture
def client(sqlite_engine: Engine, configure: Callable[..., Settings]) -> Iterator[TestClient]:
    app = create_app(configure(HASHTAGS="CEADAY21,HelpingHands"), engine=sqlite_engine)
    with TestClient(app) as client:
        yield client


def test_home_names_the_hashtags_with_security_headers(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "#CEADAY21" in response.text and "#HelpingHands" in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True,
        "checks": {"database": "ok"},
    }


def test_readyz_is_503_when_the_database_is_gone(configure: Callable[..., Settings]) -> None:
    broken = create_db_engine("postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=2")
    with TestClient(create_app(configure(), engine=broken)) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")


def test_metrics_report_posts_queue_sources_and_polls(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21,HelpingHands")
    mastodon.add_many(3)
    mastodon.server.fail("status", times=5, status=500, path="/api/v1/timelines/tag/HelpingHands")
    poll_all(engine=sqlite_engine, settings=settings)
    with TestClient(create_app(settings, engine=sqlite_engine), client=LOOPBACK) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    [posts] = families["hashtag_monitor_posts"].samples
    assert posts.labels == {"platform": "mastodon", "status": "pending"} and posts.value == 3
    assert families["hashtag_monitor_queue_pending"].samples[0].value == 3
    up = {
        s.labels["source"].rsplit("|", 1)[1]: s.value
        for s in families["hashtag_monitor_source_up"].samples
    }
    assert up == {"CEADAY21": 1, "HelpingHands": 0}
    results = {
        (s.labels["source"].rsplit("|", 1)[1], s.labels["result"]): s.value
        for s in families["hashtag_monitor_polls"].samples
        if s.name.endswith("_total")
    }
    assert results == {("CEADAY21", "ok"): 1, ("HelpingHands", "error"): 1}


def test_x_frame_options_is_left_to_routes_that_set_their_own_policy(client: TestClient) -> None:
    assert client.get("/").headers["x-frame-options"] == "DENY"
    embed = client.get("/gallery/embed")
    assert "frame-ancestors 'self'" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers


def test_errors_are_pages_for_browsers_and_json_for_scripts(client: TestClient) -> None:
    page = client.get("/no/such/page", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text and 'lang="en-GB"' in page.text
    assert "set-cookie" not in page.headers
    script = client.get("/no/such/page")
    assert script.status_code == 404 and script.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("address", ["203.0.113.9", "10.0.0.5", "testclient"])
def test_metrics_without_a_token_answer_only_loopback_clients(
    sqlite_engine: Engine, configure: Callable[..., Settings], address: str
) -> None:
    app = create_app(configure(), engine=sqlite_engine)
    with TestClient(app, client=(address, 50000)) as remote:
        response = remote.get("/metrics")
    assert response.status_code == 403
    assert "hashtag_monitor" not in response.text
    with TestClient(app, client=("::1", 50000)) as local:
        assert local.get("/metrics").status_code == 200


def test_metrics_with_a_token_need_the_bearer_header_from_anywhere(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    app = create_app(configure(METRICS_TOKEN=TOKEN), engine=sqlite_engine)
    with TestClient(app, client=LOOPBACK) as local:
        refused = local.get("/metrics")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        for wrong in (f"Bearer {TOKEN[:-1]}x", TOKEN, f"Basic {TOKEN}", "Bearer "):
            assert local.get("/metrics", headers={"Authorization": wrong}).status_code == 401
    with TestClient(app, client=("203.0.113.9", 50000)) as remote:
        allowed = remote.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200 and "hashtag_monitor_queue_pending" in allowed.text


def test_the_api_schema_and_docs_are_not_public(client: TestClient) -> None:
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 404, path


def test_every_route_the_readme_names_exists(client: TestClient) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `/")]
    named = {path for line in table for path in re.findall(r"`(/[^`]*)`", line.split("|")[1])}
    assert "/queue/posts/{id}" in named

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}|\.\.\.$", "{}", path)

    routes = {shape(path) for path in client.app.openapi()["paths"]}  # type: ignore[attr-defined]
    assert sorted(shape(path) for path in named if shape(path) not in routes) == []
