"""The landing page and the probes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.db import create_db_engine
from monitor.web.app import create_app


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
