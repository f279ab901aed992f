"""``/queue/live``: what changed under an open queue page, for logged-in staff only."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.web.app import create_app
from tests.web.auth_helpers import (
    TestClient,
    app_client,
    login,
    make_user,
)
from tests.web.live_helpers import approve, pending_post


@pytest.fixture
def engine(gallery_engine: Engine) -> Engine:
    """A migrated SQLite database of its own (copied from the suite's template)."""
    return gallery_engine


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(MEDIA_DIR=str(tmp_path / "media"), DATA_DIR=str(tmp_path / "data"))


@pytest.fixture
def app(engine: Engine, settings: Settings) -> FastAPI:
    make_user(engine, "mo", "moderator")
    make_user(engine, "alice", "moderator")
    make_user(engine, "vi", "viewer")
    return create_app(settings, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with app_client(app) as client:
        yield client


def _live(client: TestClient, page: str) -> str:
    [url] = re.findall(r'data-live="([^"]+)"', page)
    [tail] = re.findall(r'data-tail="([^"]*)"', page)
    return url.replace("&amp;", "&") + "&tail=" + tail


def test_others_decisions_and_arrivals_reach_an_open_page(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    first, second = pending_post(engine), pending_post(engine)
    login(client, "mo")
    page = client.get("/queue").text
    live = _live(client, page)
    shown = f"{first}:1,{second}:1"
    quiet = client.get(live + "&shown=" + shown).json()
    assert quiet["changed"] == [] and quiet["arrivals"] == "" and quiet["counts"]["pending"] == 2
    approve(engine, settings, second, actor="alice")
    arrived = pending_post(engine, text="Arrived while the page was open")
    answer = client.get(live + "&shown=" + shown)
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    [change] = body["changed"]
    assert (change["post_id"], change["status"], change["note"]) == (
        second,
        "approved",
        "alice: approved",
    )
    assert f'id="post-{arrived}"' in body["arrivals"] and 'name="csrf_token"' in body["arrivals"]
    assert body["tail"] and body["tail"] != live.rsplit("tail=", 1)[1]
    # Asked again from the new end, the arrival is not sent twice.
    again = client.get(
        live.rsplit("&tail=", 1)[0] + f"&tail={body['tail']}&shown={shown},{arrived}:1"
    )
    assert again.json()["arrivals"] == ""


def test_an_empty_page_gets_arrivals_and_a_viewer_gets_no_decision_forms(
    client: TestClient, engine: Engine
) -> None:
    login(client, "vi")
    page = client.get("/queue").text
    assert "No posts here" in page
    live = _live(client, page)
    arrived = pending_post(engine)
    arrivals = client.get(live + "&shown=").json()["arrivals"]
    assert f'id="post-{arrived}"' in arrivals and 'action="/queue/decide"' not in arrivals


@pytest.mark.parametrize(
    "query",
    ["shown=" + ",".join(["x:y"] * 500), "tail=%00~nonsense", "shown=99999999999999999999:1"],
)
def test_hostile_parameters_are_ignored_not_obeyed(client: TestClient, query: str) -> None:
    login(client, "mo")
    response = client.get("/queue/live?tab=pending&" + query)
    assert response.status_code == 200
    assert response.json()["changed"] == [] and response.json()["arrivals"] == ""


def test_the_live_answer_needs_a_login(client: TestClient) -> None:
    assert client.get("/queue/live?tab=pending").status_code == 401
