"""A campaign's credentials page: its admins and install admins set and clear keys and see
only "set" or "not set"; an admin of another campaign can neither see nor change them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Target
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import CampaignCredential, Role
from monitor.services.campaigns import NewCampaign, add_campaign, get_campaign, grant_role
from monitor.services.credentials import set_credential
from monitor.services.sources import Owner, ensure_source
from monitor.web.app import create_app
from tests.web.auth_helpers import TestClient, app_client, csrf_token, login, make_user

TOKEN_A = "force-a-own-token-1b7e"
TOKEN_B = "force-b-own-token-93aa"
PAGE_A, PAGE_B = "/admin/campaigns/force-a/credentials", "/admin/campaigns/force-b/credentials"


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure(HASHTAGS="CEADAY21", SECRET_KEY="web-test-secret")


@pytest.fixture
def app(sqlite_engine: Engine, settings: Settings) -> FastAPI:
    with session_scope(sqlite_engine) as session:
        for slug in ("force-a", "force-b"):
            add_campaign(
                session,
                settings,
                NewCampaign(slug, slug.title(), [slug.replace("-", "")]),
                actor="t",
            )
        set_credential(
            session,
            settings,
            slug="force-b",
            platform="x",
            key="X_BEARER_TOKEN",
            value=TOKEN_B,
            actor="bea",
        )
    make_user(sqlite_engine, "root", "admin")
    make_user(sqlite_engine, "ann", "none")
    with session_scope(sqlite_engine) as session:
        grant_role(session, settings, name="ann", slug="force-a", role=Role.ADMIN, actor="t")
    return create_app(settings, engine=sqlite_engine)


@pytest.fixture
def ann(app: FastAPI) -> Iterator[TestClient]:
    """Force A's campaign admin (no role anywhere else)."""
    with app_client(app) as client:
        login(client, "ann")
        yield client


def _sealed(engine: Engine) -> dict[tuple[int, str], str]:
    with Session(engine) as session:
        return {(r.campaign_id, r.key): r.sealed for r in session.exec(select(CampaignCredential))}


def test_a_campaign_admin_sets_and_clears_its_own_and_sees_no_value(
    ann: TestClient, sqlite_engine: Engine
) -> None:
    form = {"csrf_token": csrf_token(ann), "platform": "x", "key": "X_BEARER_TOKEN"}
    done = ann.post(PAGE_A, data=form | {"value": TOKEN_A}, follow_redirects=False)
    assert done.status_code == 303
    page = ann.get(PAGE_A)
    assert page.status_code == 200
    assert "X_BEARER_TOKEN for x in campaign force-a is set" in page.text
    assert "by ann" in page.text and TOKEN_A not in page.text
    # The adapter's own model refuses a malformed value, in its words; nothing changes.
    refused = ann.post(PAGE_A, data=form | {"value": "two words"}).text
    assert "Not done: X_BEARER_TOKEN: the token must be one line" in refused
    cleared = ann.post(PAGE_A, data=form | {"clear": "yes"}).text
    assert "polls with the install&#39;s credentials again" in cleared
    assert len(_sealed(sqlite_engine)) == 1  # force B's only


def test_a_campaign_admin_finds_the_page_from_the_queue(ann: TestClient) -> None:
    ann.post("/queue/campaign", data={"csrf_token": csrf_token(ann), "campaign": "force-a"})
    assert f'href="{PAGE_A}"' in ann.get("/queue").text


def test_an_admin_of_campaign_a_can_neither_see_nor_change_bs(
    ann: TestClient, sqlite_engine: Engine
) -> None:
    before = _sealed(sqlite_engine)
    page = ann.get(PAGE_B)
    assert page.status_code == 403
    assert "by bea" not in page.text and "X_BEARER_TOKEN" not in page.text
    token = csrf_token(ann)
    for data in (
        {"platform": "x", "key": "X_BEARER_TOKEN", "value": TOKEN_A},
        {"platform": "x", "key": "X_BEARER_TOKEN", "clear": "yes"},
    ):
        assert ann.post(PAGE_B, data={"csrf_token": token, **data}).status_code == 403
    # The default campaign's are the install's: nobody sets them here.
    assert ann.get("/admin/campaigns/default/credentials").status_code == 403
    assert _sealed(sqlite_engine) == before
    assert TOKEN_B not in page.text


def test_an_install_admin_sees_every_campaigns_state_and_no_value(
    app: FastAPI, sqlite_engine: Engine, settings: Settings
) -> None:
    with session_scope(sqlite_engine) as session:
        force_b = get_campaign(session, settings, "force-b")
        owner = Owner(force_b.id or 0, force_b.slug)
        ensure_source(session, "x", Target("", ("forceb",)), owner=owner)
        ensure_source(session, "x", Target("", ("forcea",)))
    with app_client(app) as root:
        login(root, "root")
        listing = root.get("/admin/campaigns")
        assert "its own for x" in listing.text and PAGE_B in listing.text
        page = root.get(PAGE_B)
        assert page.status_code == 200 and "by bea" in page.text and TOKEN_B not in page.text
        refused = root.post(PAGE_B, data={"platform": "x", "key": "X_BEARER_TOKEN", "value": "v"})
        assert refused.status_code == 403  # no CSRF token
        sources = root.get("/admin/sources").text
        assert "X: #forceb (campaign force-b&#39;s account)" in sources
        assert "<td>campaign force-b</td>" in sources and "<td>the install's</td>" in sources
