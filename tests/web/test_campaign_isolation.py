"""Two forces in one install: each team sees and decides only its campaign's posts, and a
post with both campaigns' tags is decided separately on each gallery.

The attack is tried through every way in a route offers: a post id in a form or a
path, a selection, a cursor, the ids a live queue page says it shows, a staged media
file, an undo, and the public feeds of the other campaign.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import (
    AuditEvent,
    Campaign,
    CampaignPost,
    DigestSend,
    Escalation,
    MediaItem,
    Post,
    PostStatus,
    Role,
    utcnow,
)
from monitor.services import rollup
from monitor.services.analysis import blur_faces
from monitor.services.audit import describe
from monitor.services.campaigns import (
    NewCampaign,
    add_campaign,
    archive_campaign,
    end_campaign,
    get_campaign,
    grant_role,
)
from monitor.services.consent import record_consent
from monitor.services.escalation import escalate
from monitor.services.export import iter_export_records
from monitor.services.gallery import set_gallery_paused
from monitor.services.ingest import record_posts
from monitor.services.looks import pinned_ids
from monitor.services.media import is_published_media
from monitor.services.placements import scope_of, set_status
from monitor.services.static_export import export_site
from monitor.web.app import create_app
from monitor.web.live import LiveEvent, LiveHub
from tests.factories import make_post
from tests.web.auth_helpers import TestClient, app_client, csrf_token, login, make_user

JSON = {"accept": "application/json"}


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure(HASHTAGS="CEADAY21")


@pytest.fixture
def posts(sqlite_engine: Engine, settings: Settings) -> dict[str, int]:
    """Force B's campaign beside the default one, and a post of each and one of both."""
    with session_scope(sqlite_engine) as session:
        add_campaign(session, settings, NewCampaign("force-b", "Force B", ["ForceB"]), actor="test")
    stored = {
        "a": make_post(media=(), text="Only A #CEADAY21", hashtags=("ceaday21",)),
        "b": make_post(media=(), text="Only B #ForceB", hashtags=("forceb",)),
        "both": make_post(media=(), text="Both #CEADAY21 #ForceB", hashtags=("ceaday21", "forceb")),
    }
    with session_scope(sqlite_engine) as session:
        ids = record_posts(session=session, posts=list(stored.values()), settings=settings).new_ids
    return dict(zip(stored, ids, strict=True))


@pytest.fixture
def app(sqlite_engine: Engine, settings: Settings, posts: dict[str, int]) -> FastAPI:
    make_user(sqlite_engine, "mo", "moderator")  # the default campaign's moderator
    make_user(sqlite_engine, "bob", "none")  # force B's only
    with session_scope(sqlite_engine) as session:
        grant_role(session, settings, name="bob", slug="force-b", role=Role.MODERATOR, actor="t")
    return create_app(settings, engine=sqlite_engine)


@pytest.fixture
def bob(app: FastAPI) -> Iterator[TestClient]:
    with app_client(app) as client:
        login(client, "bob")
        yield client


@pytest.fixture
def mo(app: FastAPI) -> Iterator[TestClient]:
    with app_client(app) as client:
        login(client, "mo")
        yield client


def _placements(engine: Engine) -> dict[tuple[str, int], str]:
    with Session(engine) as session:
        slugs = {c.id: c.slug for c in session.exec(select(Campaign))}
        rows = session.exec(select(CampaignPost)).all()
        return {(slugs[row.campaign_id], row.post_id): row.status for row in rows}


def _decide(client: TestClient, post_id: int, action: str, **extra: str) -> dict[str, str]:
    """A decision's form, at the version stored now (what the moderator's card shows)."""
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        version = session.get_one(Post, post_id).version
    fields = {"csrf_token": csrf_token(client), "post_id": str(post_id), "action": action}
    return {**fields, "version": str(version), **extra}


def test_a_post_is_placed_in_every_campaign_whose_tags_it_carries(
    sqlite_engine: Engine, posts: dict[str, int]
) -> None:
    assert _placements(sqlite_engine) == {
        ("default", posts["a"]): "pending",
        ("force-b", posts["b"]): "pending",
        ("default", posts["both"]): "pending",
        ("force-b", posts["both"]): "pending",
    }


def test_each_team_sees_only_its_campaigns_queue(
    mo: TestClient, bob: TestClient, posts: dict[str, int]
) -> None:
    mine = bob.get("/queue").text
    assert "Only B" in mine and "Both" in mine and "Only A" not in mine
    theirs = mo.get("/queue").text
    assert "Only A" in theirs and "Both" in theirs and "Only B" not in theirs


def test_the_other_campaigns_post_cannot_be_reached_by_any_route(
    sqlite_engine: Engine, bob: TestClient, posts: dict[str, int]
) -> None:
    other = posts["a"]
    token = csrf_token(bob)
    answers = {
        "post page": bob.get(f"/queue/posts/{other}", headers=JSON),
        "reposts": bob.get(f"/queue/posts/{other}/reposts", headers=JSON),
        "decide": bob.post("/queue/decide", data=_decide(bob, other, "approve"), headers=JSON),
        "reveal": bob.post(
            "/queue/reveal", data={"csrf_token": token, "post_id": str(other)}, headers=JSON
        ),
        "consent": bob.post(
            "/queue/consent",
            data={
                "csrf_token": token,
                "post_id": str(other),
                "how": "x",
                "obtained_on": "2021-03-18",
            },
            headers=JSON,
        ),
        "escalate": bob.post(
            f"/queue/posts/{other}/escalate",
            data={"csrf_token": token, "reason": "testing"},
            headers=JSON,
        ),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(
        answers, 404
    )
    assert all("Only A" not in answer.text for answer in answers.values())
    bulk = bob.post(
        "/queue/bulk",
        data={"csrf_token": token, "selected": f"{other}:1", "action": "approve"},
        headers=JSON,
    )
    assert bulk.status_code == 409 and str(other) in bulk.json()["refused"]
    # The live queue says nothing about a post the page claims to show from elsewhere.
    live = bob.get(f"/queue/live?tab=pending&shown={other}:0", headers=JSON).json()
    assert live["changed"] == [] and live["gone"] == []
    with Session(sqlite_engine) as session:
        assert session.get_one(Post, other).status == "pending"
        about_posts = select(AuditEvent).where(
            AuditEvent.actor == "bob",
            AuditEvent.post_id.is_not(None),  # type: ignore[union-attr]
        )
        assert session.exec(about_posts).all() == []


def test_a_post_with_both_tags_is_decided_separately_on_each_gallery(
    sqlite_engine: Engine, mo: TestClient, bob: TestClient, posts: dict[str, int]
) -> None:
    both = posts["both"]
    approved = mo.post("/queue/decide", data=_decide(mo, both, "approve"), headers=JSON)
    assert approved.status_code == 200, approved.text
    assert _placements(sqlite_engine)[("force-b", both)] == "pending"
    assert "Both" in bob.get("/queue?tab=pending").text  # still waiting for force B

    default_feed = mo.get("/gallery.json").json()["posts"]
    b_feed = mo.get("/c/force-b/gallery.json").json()["posts"]
    assert [p["text"] for p in default_feed] == ["Both #CEADAY21 #ForceB"]
    assert b_feed == []

    rejected = bob.post(
        "/queue/decide",
        data=_decide(bob, both, "reject", reason_note="not for our wall"),
        headers=JSON,
    )
    assert rejected.status_code == 200, rejected.text
    assert _placements(sqlite_engine)[("force-b", both)] == "rejected"
    assert _placements(sqlite_engine)[("default", both)] == "approved"
    with Session(sqlite_engine) as session:
        assert session.get_one(Post, both).status == "approved"  # public somewhere
        # The roll-ups the digest reads follow a status set across campaigns.
        assert rollup.approved_posts(session, 0, 2**40) == (3, 1)
    assert [p["text"] for p in mo.get("/gallery.json").json()["posts"]] == [
        "Both #CEADAY21 #ForceB"
    ]
    assert mo.get("/c/force-b/gallery.json").json()["posts"] == []
    # Force B's report form does not serve a post its own gallery does not show.
    assert mo.get(f"/c/force-b/gallery/report/{both}").status_code == 404
    assert mo.get(f"/gallery/report/{both}").status_code == 200
    # Bob cannot undo mo's decision in the default campaign.
    with Session(sqlite_engine) as session:
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.actor == "mo", AuditEvent.action == "approve")
        ).all()
    undo = bob.post(
        "/queue/undo", data={"csrf_token": csrf_token(bob), "event_id": str(event.id)}, headers=JSON
    )
    assert undo.status_code == 409
    assert _placements(sqlite_engine)[("default", both)] == "approved"


def test_an_edit_at_source_sends_the_post_back_to_every_campaigns_queue(
    sqlite_engine: Engine,
    mo: TestClient,
    bob: TestClient,
    posts: dict[str, int],
    settings: Settings,
) -> None:
    both = posts["both"]
    assert mo.post("/queue/decide", data=_decide(mo, both, "approve"), headers=JSON).is_success
    assert bob.post("/queue/decide", data=_decide(bob, both, "approve"), headers=JSON).is_success
    with session_scope(sqlite_engine) as session:
        row = session.get_one(Post, both)
        edited = make_post(
            media=(), external_id=row.external_id, text="Changed", hashtags=("ceaday21", "forceb")
        )
        record_posts(session=session, posts=[edited], settings=settings)
    assert _placements(sqlite_engine)[("default", both)] == "pending"
    assert _placements(sqlite_engine)[("force-b", both)] == "pending"
    assert mo.get("/gallery.json").json()["posts"] == []
    assert mo.get("/c/force-b/gallery.json").json()["posts"] == []


def test_a_takedown_upheld_by_one_team_takes_the_post_off_both_galleries(
    sqlite_engine: Engine, mo: TestClient, bob: TestClient, posts: dict[str, int]
) -> None:
    both = posts["both"]
    assert mo.post("/queue/decide", data=_decide(mo, both, "approve"), headers=JSON).is_success
    assert bob.post("/queue/decide", data=_decide(bob, both, "approve"), headers=JSON).is_success
    form = mo.get(f"/c/force-b/gallery/report/{both}").text
    token = form.split('name="token" value="')[1].split('"')[0]
    sent = mo.post(
        f"/gallery/report/{both}",
        data={"token": token, "category": "shows_me_or_my_child", "details": "my son"},
    )
    assert sent.status_code == 200
    assert mo.get("/c/force-b/gallery.json").json()["posts"] == []  # held at once
    # Force B's team sees the request at the top of its queue, and takes the post down.
    assert "my son" in bob.get("/queue?tab=takedowns").text
    resolved = bob.post(
        f"/queue/takedowns/{both}/resolve",
        data={"csrf_token": csrf_token(bob), "outcome": "taken_down"},
        headers=JSON,
    )
    assert resolved.is_success, resolved.text
    assert _placements(sqlite_engine)[("default", both)] == "rejected"
    assert _placements(sqlite_engine)[("force-b", both)] == "rejected"


def test_exports_and_commands_are_scoped_to_the_campaign(
    sqlite_engine: Engine, mo: TestClient, posts: dict[str, int], settings: Settings
) -> None:
    approved = mo.post("/queue/decide", data=_decide(mo, posts["both"], "approve"), headers=JSON)
    assert approved.is_success
    with Session(sqlite_engine) as session:
        in_b = scope_of(session, settings, "force-b")
        b = {r["text"]: r for r in iter_export_records(session, scope=in_b)}
        in_default = scope_of(session, settings)
        default = {r["text"]: r for r in iter_export_records(session, scope=in_default)}
    assert set(b) == {"Only B #ForceB", "Both #CEADAY21 #ForceB"}
    assert b["Both #CEADAY21 #ForceB"]["status"] == "pending"
    assert b["Both #CEADAY21 #ForceB"]["decisions"] == []
    assert default["Both #CEADAY21 #ForceB"]["status"] == "approved"
    assert [d["by"] for d in default["Both #CEADAY21 #ForceB"]["decisions"]] == ["mo"]


def test_an_archived_campaigns_gallery_is_gone_and_an_unknown_one_is_not_found(
    sqlite_engine: Engine, mo: TestClient, settings: Settings, posts: dict[str, int]
) -> None:
    assert mo.get("/c/force-b/gallery").status_code == 200
    assert mo.get("/c/nobody/gallery.json").status_code == 404
    with session_scope(sqlite_engine) as session:
        end_campaign(session, settings, "force-b", actor="t")
    assert mo.get("/c/force-b/gallery.json").status_code == 200  # ended: still up
    with session_scope(sqlite_engine) as session:
        archive_campaign(session, settings, "force-b", actor="t")
    for path in ("/c/force-b/gallery", "/c/force-b/gallery.json", "/c/force-b/embed.js"):
        gone = mo.get(path, headers={"accept": "text/html"})
        assert gone.status_code == 410 and "closed" in gone.text
    assert mo.get("/gallery.json").status_code == 200


def test_the_static_export_of_a_campaign_holds_only_its_approved_posts(
    sqlite_engine: Engine,
    mo: TestClient,
    bob: TestClient,
    posts: dict[str, int],
    settings: Settings,
    tmp_path: Path,
) -> None:
    assert mo.post("/queue/decide", data=_decide(mo, posts["a"], "approve"), headers=JSON)
    assert bob.post("/queue/decide", data=_decide(bob, posts["b"], "approve"), headers=JSON)
    with Session(sqlite_engine) as session:
        export_site(session=session, settings=settings, out=tmp_path / "b", campaign="force-b")
        export_site(session=session, settings=settings, out=tmp_path / "default")
    b = json.loads((tmp_path / "b" / "gallery.json").read_text())["posts"]
    default = json.loads((tmp_path / "default" / "gallery.json").read_text())["posts"]
    assert [p["text"] for p in b] == ["Only B #ForceB"]
    assert b[0]["report_url"].startswith(f"{settings.public_base_url}/c/force-b/gallery/report/")
    assert [p["text"] for p in default] == ["Only A #CEADAY21"]


def test_the_admin_adds_ends_and_archives_campaigns_on_the_campaigns_page(
    sqlite_engine: Engine, app: FastAPI, mo: TestClient, bob: TestClient
) -> None:
    make_user(sqlite_engine, "ad", "admin")
    with app_client(app) as admin:
        login(admin, "ad")
        token = csrf_token(admin)
        page = admin.get("/admin/campaigns")
        assert page.status_code == 200 and "force-b" in page.text and "running" in page.text
        refused = admin.post(
            "/admin/campaigns",
            data={"csrf_token": token, "slug": "x", "name": "X", "hashtags": "X",
                  "starts": "2030-01-02", "ends": "2030-01-01"},
        )  # fmt: skip
        assert "Not done: --ends 2030-01-01 is before --starts 2030-01-02" in refused.text
        added = admin.post(
            "/admin/campaigns",
            data={"csrf_token": token, "slug": "knife-week", "name": "Knife crime week",
                  "hashtags": "KnifeFree", "starts": "2099-06-01"},
        )  # fmt: skip
        assert "Added campaign knife-week." in added.text and "upcoming" in added.text
        assert (
            "Ended campaign force-b"
            in admin.post("/admin/campaigns/force-b/end", data={"csrf_token": token}).text
        )
        archived = admin.post("/admin/campaigns/force-b/archive", data={"csrf_token": token})
        assert "Archived campaign force-b" in archived.text
        assert (
            "Not done: no campaign &#39;nope&#39;"
            in admin.post("/admin/campaigns/nope/end", data={"csrf_token": token}).text
        )
    # Only install admins manage campaigns.
    assert mo.get("/admin/campaigns", headers=JSON).status_code == 403
    assert bob.post("/admin/campaigns/knife-week/end", data={"csrf_token": csrf_token(bob)},
                    headers=JSON).status_code == 403  # fmt: skip


def _approve_in(engine: Engine, settings: Settings, placed: dict[str, list[int]]) -> None:
    """Approve posts in campaigns (slug -> post ids), as a decision there would."""
    with session_scope(engine) as session:
        for slug, ids in placed.items():
            campaign_id = scope_of(session, settings, slug).campaign_id
            set_status(session, ids, PostStatus.APPROVED, campaign_id=campaign_id)


def _switch(client: TestClient, state: str) -> str:
    answer = client.post(
        "/queue/gallery",
        data={"csrf_token": csrf_token(client), "state": state, "return_to": "/queue"},
        headers=JSON,
    )
    return str(answer.json()["message"])


def _texts(client: TestClient, path: str) -> tuple[bool, list[str]]:
    feed = client.get(path).json()
    return feed["paused"], sorted(post["text"] for post in feed["posts"])


def test_a_campaigns_kill_switch_blanks_its_gallery_and_no_other_campaigns(
    sqlite_engine: Engine, settings: Settings, mo: TestClient, bob: TestClient,
    posts: dict[str, int],
) -> None:  # fmt: skip
    _approve_in(
        sqlite_engine,
        settings,
        {"default": [posts["a"], posts["both"]], "force-b": [posts["b"], posts["both"]]},
    )
    assert _switch(bob, "pause") == "The gallery of Force B is paused."
    assert _texts(mo, "/c/force-b/gallery.json") == (True, [])
    # Force A's wall is untouched, the post both approved included.
    assert _texts(mo, "/gallery.json") == (False, ["Both #CEADAY21 #ForceB", "Only A #CEADAY21"])
    assert mo.get(f"/c/force-b/gallery/report/{posts['b']}").status_code == 404
    assert mo.get(f"/gallery/report/{posts['both']}").status_code == 200
    assert "the public gallery is paused" in bob.get("/queue").text
    assert "the public gallery is paused" not in mo.get("/queue").text
    # Force A's moderator has no say on B's switch: theirs is A's, which is live.
    assert _switch(mo, "resume") == "The gallery of Default campaign was already live."
    assert _texts(mo, "/c/force-b/gallery.json")[0] is True
    with Session(sqlite_engine) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "setting_changed"))
        assert (
            event.actor == "bob"
            and event.campaign_id == scope_of(session, settings, "force-b").campaign_id
        )
        assert describe(event) == "gallery paused"
    assert _switch(bob, "resume") == "The gallery of Force B is live again."
    assert _texts(mo, "/c/force-b/gallery.json") == (
        False, ["Both #CEADAY21 #ForceB", "Only B #ForceB"]
    )  # fmt: skip


def test_a_paused_campaigns_media_is_not_served_unless_another_live_gallery_shows_it(
    sqlite_engine: Engine, settings: Settings, posts: dict[str, int]
) -> None:
    _approve_in(sqlite_engine, settings, {"default": [posts["both"]], "force-b": [posts["b"]]})
    with session_scope(sqlite_engine) as session:
        for name in ("b", "both"):
            session.add(
                MediaItem(
                    post_id=posts[name],
                    kind="image",
                    url="https://x.test/1.jpg",
                    pinned_hash=name * 8,
                )  # fmt: skip
            )
    with Session(sqlite_engine) as session:
        force_b = scope_of(session, settings, "force-b").campaign_id
        default = scope_of(session, settings, None).campaign_id
        assert is_published_media(session, "b" * 8, paused={force_b}) is False
        assert is_published_media(session, "both" * 8, paused={force_b}) is True
        assert is_published_media(session, "both" * 8, paused={force_b, default}) is False
        assert is_published_media(session, "b" * 8) is True


def test_only_an_install_admin_pauses_every_campaigns_gallery_and_resumes_it(
    sqlite_engine: Engine, settings: Settings, app: FastAPI, bob: TestClient,
    posts: dict[str, int],
) -> None:  # fmt: skip
    _approve_in(sqlite_engine, settings, {"default": [posts["a"]], "force-b": [posts["b"]]})
    make_user(sqlite_engine, "ada", "admin")
    with app_client(app) as admin:
        login(admin, "ada")
        token = csrf_token(admin)
        paused = admin.post("/admin/gallery", data={"csrf_token": token, "state": "pause"})
        assert "Every campaign&#39;s gallery is paused." in paused.text
        assert _texts(admin, "/gallery.json") == (True, [])
        assert _texts(admin, "/c/force-b/gallery.json") == (True, [])
        # A campaign's moderator cannot lift the install's switch from their queue.
        assert "only an install admin can resume it" in _switch(bob, "resume")
        assert _texts(admin, "/c/force-b/gallery.json")[0] is True
        with session_scope(sqlite_engine) as session:
            with pytest.raises(UserError, match="only install admins pause the gallery"):
                set_gallery_paused(
                    session=session, pause=False, actor="bob", reason=None, campaign=None
                )
        admin.post("/admin/gallery", data={"csrf_token": token, "state": "resume"})
        assert _texts(admin, "/c/force-b/gallery.json") == (False, ["Only B #ForceB"])


def test_a_paused_campaigns_walls_redraw_blank_while_the_others_follow_on(
    sqlite_engine: Engine, settings: Settings, posts: dict[str, int]
) -> None:
    _approve_in(sqlite_engine, settings, {"default": [posts["a"]], "force-b": [posts["b"]]})
    make_user(sqlite_engine, "bob", "none")
    with session_scope(sqlite_engine) as session:
        grant_role(session, settings, name="bob", slug="force-b", role=Role.MODERATOR, actor="t")
        force_b = get_campaign(session, settings, "force-b")
        b_id, a_id = force_b.id or 0, scope_of(session, settings, None).campaign_id

    def switch(pause: bool) -> None:
        with session_scope(sqlite_engine) as session:
            campaign = get_campaign(session, settings, "force-b")
            set_gallery_paused(session=session, pause=pause, actor="bob", reason=None,
                               campaign=campaign)  # fmt: skip

    async def scenario() -> tuple[list[LiveEvent], list[LiveEvent], LiveHub]:
        hub = LiveHub(engine=sqlite_engine, settings=settings, render=lambda *_: {})
        hub._fingerprint = hub._read_fingerprint()
        hub.wall = hub._read_snapshot(None, utcnow())
        switch(True)
        await hub.step()
        paused = list(hub.events)
        assert posts["b"] not in hub.wall.posts and posts["a"] in hub.wall.posts
        assert hub.wall.paused_for(b_id) and not hub.wall.paused_for(a_id)
        switch(False)
        await hub.step()
        return paused, list(hub.events)[len(paused) :], hub

    paused, resumed, hub = asyncio.run(scenario())
    [blank] = [event for event in paused if event.kind == "paused"]
    assert blank.frame_for("page", None, None, b_id) is not None
    assert blank.frame_for("page", None, None, a_id) is None  # force A's wall carries on
    assert [event.kind for event in paused if event is not blank] == ["removed"]
    [reset] = resumed
    assert reset.kind == "reset" and reset.frame_for("embed", None, None, a_id) is None
    assert reset.frame_for("embed", None, None, b_id) is not None
    assert hub.wall is not None and hub.wall.posts[posts["b"]].campaigns == {b_id}


def test_the_navigations_takedown_count_is_the_campaigns_own(
    mo: TestClient, bob: TestClient, posts: dict[str, int]
) -> None:
    only_a = posts["a"]
    assert mo.post("/queue/decide", data=_decide(mo, only_a, "approve"), headers=JSON).is_success
    form = mo.get(f"/gallery/report/{only_a}").text
    token = form.split('name="token" value="')[1].split('"')[0]
    sent = mo.post(f"/gallery/report/{only_a}", data={"token": token, "category": "other"})
    assert sent.status_code == 200
    count = 'Takedown requests <span class="count">{}</span>'
    assert count.format(1) in mo.get("/queue").text
    # Force B's team is not told of a request on a post that is none of theirs.
    assert count.format(0) in bob.get("/queue").text
    assert count.format(0) in bob.get("/queue?tab=takedowns").text


def test_a_campaigns_safeguarding_lead_sees_and_closes_only_its_posts_escalations(
    sqlite_engine: Engine, settings: Settings, app: FastAPI, posts: dict[str, int]
) -> None:
    make_user(sqlite_engine, "lee", "none")  # force B's safeguarding lead only
    make_user(sqlite_engine, "dee", "safeguarding")  # the default campaign's lead
    with session_scope(sqlite_engine) as session:
        grant_role(session, settings, name="lee", slug="force-b", role=Role.SAFEGUARDING,
                   actor="t")  # fmt: skip
        for name in ("a", "b"):
            post = session.get_one(Post, posts[name])
            actor = "mo" if name == "a" else "bob"  # each campaign's moderator
            escalate(
                session=session, settings=settings, post=post, actor=actor,
                reason=f"disclosure {name}",
            )  # fmt: skip
    with Session(sqlite_engine) as session:
        ids = {e.post_id: e.id for e in session.exec(select(Escalation))}
    with app_client(app) as lee, app_client(app) as dee:
        login(lee, "lee")
        login(dee, "dee")
        page = lee.get("/queue/escalations").text
        assert "disclosure b" in page and "disclosure a" not in page
        assert 'Escalations <span class="count">1</span>' in lee.get("/queue").text
        theirs = dee.get("/queue/escalations").text
        assert "disclosure a" in theirs and "disclosure b" not in theirs
        refused = lee.post(
            f"/queue/escalations/{ids[posts['a']]}/close",
            data={"csrf_token": csrf_token(lee), "outcome": "done"},
            headers=JSON,
        )
        assert refused.status_code == 409
        assert "lee is not a member in this post's campaigns: only safeguarding" in refused.text
        closed = lee.post(
            f"/queue/escalations/{ids[posts['b']]}/close",
            data={"csrf_token": csrf_token(lee), "outcome": "Referred"},
            headers=JSON,
        )
        assert closed.is_success, closed.text
    with Session(sqlite_engine) as session:
        assert session.get_one(Escalation, ids[posts["a"]]).closed_at is None
        assert session.get_one(Escalation, ids[posts["b"]]).closed_by == "lee"


def _notice(response: object) -> str:
    text = str(response.text)  # type: ignore[attr-defined]
    found = re.findall(r'<p class="notice">([^<]*)</p>', text)
    assert found, text
    return html.unescape(found[0])


def test_a_campaigns_admins_choose_its_gallerys_look_and_pins_and_no_other_campaigns(
    sqlite_engine: Engine, settings: Settings, app: FastAPI, mo: TestClient,
    posts: dict[str, int],
) -> None:  # fmt: skip
    _approve_in(sqlite_engine, settings, {"default": [posts["a"]], "force-b": [posts["b"]]})
    make_user(sqlite_engine, "bea", "none")  # force B's admin only
    with session_scope(sqlite_engine) as session:
        grant_role(session, settings, name="bea", slug="force-b", role=Role.ADMIN, actor="t")
        refs = {n: f"{p.platform}:{p.external_id}" for n in ("a", "b")
                if (p := session.get_one(Post, posts[n]))}  # fmt: skip
    with app_client(app) as bea:
        login(bea, "bea")
        page = bea.get("/admin/looks").text
        assert "Force B" in page and "shows the install's look until you save" in page
        assert 'href="/admin/looks"' in bea.get("/queue").text  # her navigation leads there
        look = {"layout": "list", "background": "#fdf6e3", "text": "#1b1b1b",
                "accent": "#8a1538", "help_message": "Force B helpline"}  # fmt: skip
        saved = bea.post("/admin/looks", data={"csrf_token": csrf_token(bea), **look})
        assert _notice(saved) == "Saved the gallery's look."
        pin = {"csrf_token": csrf_token(bea), "action": "pin"}
        assert _notice(bea.post("/admin/curation", data={**pin, "ref": refs["b"]})) == (
            f"Pinned {refs['b']}."
        )
        refused = _notice(bea.post("/admin/curation", data={**pin, "ref": refs["a"]}))
        assert "only a post approved on this gallery" in refused  # force A's post
        # The install's pages and switches stay the install admins'.
        assert bea.get("/admin", headers=JSON).status_code == 403
        delay = {"csrf_token": csrf_token(bea), "seconds": "5"}
        assert bea.post("/admin/screen-delay", data=delay, headers=JSON).status_code == 403
    b_page = mo.get("/c/force-b/gallery").text
    [theme] = re.findall(r'href="(/c/force-b/gallery/theme\.css\?v=[0-9a-f]+)"', b_page)
    assert "--paper: #fdf6e3" in mo.get(theme).text and "layout-list" in b_page
    assert "Force B helpline" in b_page and "Force B helpline" not in mo.get("/gallery").text
    default_page = mo.get("/gallery").text
    assert "theme.css" not in default_page and "layout-list" not in default_page
    with Session(sqlite_engine) as session:
        assert pinned_ids(session) == []  # force A's gallery pins nothing new
        assert pinned_ids(session, get_campaign(session, settings, "force-b")) == [posts["b"]]
    # Force A's moderator has no say on any gallery's look.
    assert mo.get("/admin/looks", headers=JSON).status_code == 403


def test_blurring_faces_is_for_the_moderators_of_a_campaign_the_post_is_in(
    sqlite_engine: Engine, settings: Settings, app: FastAPI, posts: dict[str, int]
) -> None:
    def blur(actor: str, post: str) -> str:
        with pytest.raises(UserError) as refused:
            blur_faces(engine=sqlite_engine, settings=settings, post_id=posts[post], actor=actor)
        return str(refused.value)

    # Force B's moderator passes the role check on B's post (it has no faces to blur) ...
    assert blur("bob", "b").startswith("no faces were found")
    # ... and no moderator reaches a post outside their campaigns.
    assert "bob moderates no campaign this post is in" in blur("bob", "a")
    assert "mo moderates no campaign this post is in" in blur("mo", "b")


def test_consent_is_recorded_by_the_moderators_of_a_campaign_the_post_is_in(
    sqlite_engine: Engine, app: FastAPI, posts: dict[str, int]
) -> None:
    def record(actor: str, post: str) -> None:
        with session_scope(sqlite_engine) as session:
            chosen = session.get_one(Post, posts[post])
            when = date(2021, 3, 18)
            record_consent(session=session, post=chosen, actor=actor, how="by message",
                           obtained_on=when)  # fmt: skip

    record("bob", "b")  # force B's moderator, on force B's post
    with pytest.raises(UserError, match="mo moderates no campaign this post is in"):
        record("mo", "b")


def test_a_rule_from_the_queue_is_its_campaigns_own_and_rejects_only_there(
    bob: TestClient, sqlite_engine: Engine, posts: dict[str, int]
) -> None:
    """Force B's moderator blocks a word every post here carries: the preview and the run
    over the backlog count and change only B's queue, and A's posts stay pending."""
    rule = {"kind": "blocked_term", "pattern": "ForceB", "rule_action": "reject"}
    token = csrf_token(bob)
    preview = bob.post(
        "/queue/rules", data={**rule, "step": "preview", "csrf_token": token}, headers=JSON
    ).json()
    assert preview["message"].startswith("Preview: this rule would reject 2 pending posts")
    applied = bob.post(
        "/queue/rules", data={**rule, "step": "apply", "csrf_token": token}, headers=JSON
    ).json()
    assert "rejected 2" in applied["message"]
    assert _placements(sqlite_engine) == {
        ("default", posts["a"]): "pending",
        ("force-b", posts["b"]): "rejected",
        ("default", posts["both"]): "pending",
        ("force-b", posts["both"]): "rejected",
    }


def test_stats_and_the_report_are_the_logged_in_campaigns_only(
    sqlite_engine: Engine,
    app: FastAPI,
    mo: TestClient,
    bob: TestClient,
    posts: dict[str, int],
    settings: Settings,
) -> None:
    """Force B's moderator reads Force B's figures, report and last email, and nothing of
    the default campaign's, whatever the address asks for."""
    assert mo.post("/queue/decide", data=_decide(mo, posts["a"], "approve"), headers=JSON)
    with session_scope(sqlite_engine) as session:
        session.add(
            DigestSend(
                day=date(2021, 3, 17),
                sent_at=datetime(2021, 3, 18, 8, tzinfo=UTC),
                recipients="partners@vrn.example",
                status="sent",
                campaign_id=get_campaign(session, settings, None).id,
            )
        )
    day = "from=2021-03-18"
    page = bob.get(f"/stats?{day}&campaign=default").text
    assert "Force B" in page and "#ForceB" in page and "#CEADAY21" not in page
    assert "partners@vrn.example" not in page and "No digest email has been sent yet" in page
    theirs = mo.get(f"/stats?{day}").text
    assert "#CEADAY21" in theirs and "partners@vrn.example" in theirs and "#ForceB" not in theirs

    def figures(client: TestClient) -> dict[tuple[str, str], str]:
        rows = [line.split(",") for line in client.get(f"/stats.csv?{day}").text.splitlines()]
        return {(row[0], row[1]): row[2] for row in rows[1:]}

    mine, default = figures(bob), figures(mo)
    assert ("hashtag", "ForceB") in mine and ("hashtag", "CEADAY21") not in mine
    assert ("hashtag", "CEADAY21") in default and ("hashtag", "ForceB") not in default
    assert (mine[("moderation", "pending_now")], default[("moderation", "pending_now")]) == (
        "2",
        "1",
    )
    # The default campaign's decision (made today) is in its report, never in Force B's.
    assert "team,mo:approved,1" in mo.get("/stats/report.csv?from=campaign").text
    report = bob.get("/stats/report.csv?from=campaign")
    assert report.status_code == 200 and "mo:approved" not in report.text
    assert ",decisions,0" in bob.get("/stats.csv?from=campaign").text
    # A login with no role in any campaign reads no stats at all.
    make_user(sqlite_engine, "nobody", "none")
    with app_client(app) as nobody:
        login(nobody, "nobody")
        for path in ("/stats", "/stats.csv", "/stats/chart.png", "/stats/report.csv"):
            assert nobody.get(path, headers=JSON).status_code == 403


def test_the_admin_changes_a_campaign_on_the_campaigns_page(
    sqlite_engine: Engine, app: FastAPI, bob: TestClient, settings: Settings
) -> None:
    make_user(sqlite_engine, "ad", "admin")
    with app_client(app) as admin:
        login(admin, "ad")
        token = csrf_token(admin)
        page = admin.get("/admin/campaigns").text
        assert 'action="/admin/campaigns/force-b/edit"' in page
        form = {"csrf_token": token, "name": "Force B", "hashtags": "ForceB,KnifeFree",
                "platforms": "", "digest_to": "b@force-b.example",
                "digest_time": "06:30"}  # fmt: skip
        changed = admin.post("/admin/campaigns/force-b/edit", data=form).text
        assert "Changed campaign force-b: hashtag #KnifeFree added;" in changed
        assert "digest: b@force-b.example at 06:30" in changed
        bad = admin.post("/admin/campaigns/force-b/edit", data=form | {"digest_time": "6.30"}).text
        assert "Not done: --digest-time: must be HH:MM (24-hour)" in bad
        refused = admin.post(
            "/admin/campaigns/default/edit",
            data={"csrf_token": token, "name": "Default campaign", "hashtags": "Other"},
        ).text
        assert "Not done: the default campaign&#39;s hashtags and platforms are HASHTAGS" in refused
        kept = admin.post(
            "/admin/campaigns/default/edit",
            data={"csrf_token": token, "name": "Default campaign", "digest_to": "v@vrn.example"},
        ).text
        assert "Changed campaign default: digest_to - -&gt; v@vrn.example." in kept
    with Session(sqlite_engine) as session:
        [edit, *_] = session.exec(
            select(AuditEvent).where(AuditEvent.action == "campaign_edited")
        ).all()
        assert edit.actor == "ad" and edit.detail is not None
        assert edit.detail["tags_added"] == ["KnifeFree"]
    assert bob.post("/admin/campaigns/force-b/edit", data={"csrf_token": csrf_token(bob)},
                    headers=JSON).status_code == 403  # fmt: skip


def test_stats_follow_the_campaign_the_login_switched_to(
    sqlite_engine: Engine, app: FastAPI, posts: dict[str, int]
) -> None:
    make_user(sqlite_engine, "ad", "admin")
    with app_client(app) as admin:
        login(admin, "ad")
        assert "#CEADAY21" in admin.get("/stats?from=2021-03-18").text
        switched = admin.post(
            "/queue/campaign", data={"csrf_token": csrf_token(admin), "campaign": "force-b"}
        )
        assert switched.status_code in (200, 303)
        page = admin.get("/stats?from=2021-03-18").text
        assert "Stats for 2021-03-18: Force B" in page and "#CEADAY21" not in page
        assert 'id="campaign-choice"' in page
