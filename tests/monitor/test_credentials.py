"""A campaign's own platform credentials: a force polling X with its own account.

What must hold: a campaign with its own token polls its tags with it, and only its
tags; every other campaign's go with the install's token; a wrong or unreadable
campaign credential stops that campaign's source only; the value is never stored,
audited or shown in clear.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import CampaignPost, Post, PostStatus, Source
from monitor.scheduler import Monitor
from monitor.services.campaigns import NewCampaign, add_campaign, get_campaign, watched
from monitor.services.credentials import clear_credential, credential_states, set_credential
from monitor.services.health import health_report
from monitor.services.placements import set_status
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from tests.fakes import x
from tests.fakes.server import FakeRequest, FakeServer, Reply

TODAY = date(2026, 12, 1)
CAMPAIGN_TOKEN = "knife-week-own-token-5f1c"


class TwoAccountX(x.FakeX):
    """X with two apps' tokens accepted: the install's and the campaign's."""

    def __init__(self, server: FakeServer) -> None:
        super().__init__(server)
        self.tokens = {x.TOKEN, CAMPAIGN_TOKEN}

    def _refusal(self, request: FakeRequest) -> Reply | None:
        if request.headers.get("authorization", "").removeprefix("Bearer ") in self.tokens:
            return None
        return Reply.json(self.errors["unauthorized"], 401, self._headers())

    def searches(self) -> dict[str, set[str]]:
        """Per hashtag searched for, the tokens it was searched with."""
        seen: dict[str, set[str]] = {}
        for request in self.server.requests:
            if request.path.startswith("/2/tweets/search/recent"):
                tag = (request.arg("query") or "").split()[0].lstrip("#")
                token = request.headers.get("authorization", "").removeprefix("Bearer ")
                seen.setdefault(tag, set()).add(token)
        return seen


@pytest.fixture
def fake_x() -> Iterator[TwoAccountX]:
    server = FakeServer().start()
    try:
        yield TwoAccountX(server)
    finally:
        server.stop()


@pytest.fixture
def settings(configure: Callable[..., Settings], fake_x: TwoAccountX) -> Settings:
    return configure(
        X_API_BASE=fake_x.url,
        X_BEARER_TOKEN=x.TOKEN,
        PLATFORMS="x",
        HASHTAGS="CEADAY21",
        SECRET_KEY="install-secret-one",
    )


def _add(engine: Engine, settings: Settings, slug: str, tags: list[str]) -> None:
    with session_scope(engine) as session:
        new = NewCampaign(slug=slug, name=slug.title(), hashtags=tags, platforms=["x"])
        add_campaign(session, settings, new, actor="test", today=TODAY)


def _set(engine: Engine, settings: Settings, value: str, slug: str = "knife-week") -> None:
    with session_scope(engine) as session:
        set_credential(
            session,
            settings,
            slug=slug,
            platform="x",
            key="X_BEARER_TOKEN",
            value=value,
            actor="alice",
        )


def _health(engine: Engine, settings: Settings) -> dict[str, str]:
    """Every current source's key and the credentials it polls with."""
    with Session(engine) as session:
        return {h.key: h.credentials for h in health_report(session, settings).sources}


def test_a_campaign_with_its_own_token_polls_its_tags_with_it_and_no_other(
    engine: Engine, settings: Settings, fake_x: TwoAccountX
) -> None:
    _add(engine, settings, "knife-week", ["KnifeFree", "CEADAY21"])
    _add(engine, settings, "school-push", ["HolidaySafe"])
    _set(engine, settings, CAMPAIGN_TOKEN)
    shared = fake_x.add("Both campaigns' tag #CEADAY21")
    fake_x.add("Only ours #KnifeFree")
    fake_x.add("The other force's #HolidaySafe")

    summaries = poll_all(engine=engine, settings=settings)

    assert all(s.ok for s in summaries), [s.error for s in summaries]
    # Its tags with its token; the default campaign's and school-push's with the install's.
    assert fake_x.searches() == {
        "KnifeFree": {CAMPAIGN_TOKEN},
        "CEADAY21": {CAMPAIGN_TOKEN, x.TOKEN},
        "HolidaySafe": {x.TOKEN},
    }
    assert _health(engine, settings) == {
        "x:|CEADAY21": "install",
        "x:|HolidaySafe": "install",
        "x:|CEADAY21@campaign:knife-week": "campaign knife-week",
        "x:|KnifeFree@campaign:knife-week": "campaign knife-week",
    }
    with Session(engine) as session:
        knife = get_campaign(session, settings, "knife-week")
        owned = session.exec(select(Source).where(Source.key.endswith("@campaign:knife-week")))  # type: ignore[attr-defined]
        assert {source.campaign_id for source in owned} == {knife.id}
        # Read by both accounts, stored once, placed in both campaigns as ever.
        [post] = session.exec(select(Post).where(Post.external_id == shared["id"]))
        placed = session.exec(select(CampaignPost).where(CampaignPost.post_id == post.id))
        assert {row.campaign_id for row in placed} == {
            knife.id,
            get_campaign(session, settings, None).id,
        }


def test_cleared_credentials_retire_the_campaigns_source_and_the_install_covers_it(
    engine: Engine, settings: Settings, fake_x: TwoAccountX
) -> None:
    _add(engine, settings, "knife-week", ["KnifeFree"])
    _set(engine, settings, CAMPAIGN_TOKEN)
    poll_all(engine=engine, settings=settings)
    assert "x:|KnifeFree@campaign:knife-week" in _health(engine, settings)

    with session_scope(engine) as session:
        said = clear_credential(
            session, settings, slug="knife-week", platform="x", key="X_BEARER_TOKEN", actor="bob"
        )
    assert "polls with the install's credentials again" in said
    fake_x.server.requests.clear()
    poll_all(engine=engine, settings=settings)

    assert fake_x.searches() == {"KnifeFree": {x.TOKEN}, "CEADAY21": {x.TOKEN}}
    assert _health(engine, settings) == {"x:|CEADAY21": "install", "x:|KnifeFree": "install"}


def test_a_refused_campaign_token_fails_only_that_campaigns_source(
    engine: Engine, settings: Settings, fake_x: TwoAccountX
) -> None:
    _add(engine, settings, "knife-week", ["KnifeFree"])
    _set(engine, settings, "revoked-token-of-knife-week")

    summaries = {s.source: s for s in poll_all(engine=engine, settings=settings)}

    refused = summaries["x:|KnifeFree@campaign:knife-week"]
    assert not refused.ok and "401" in (refused.error or "")
    assert summaries["x:|CEADAY21"].ok
    with Session(engine) as session:
        states = {h.key: h for h in health_report(session, settings).sources}
    assert states["x:|KnifeFree@campaign:knife-week"].alarming
    assert not states["x:|CEADAY21"].alarming
    # The refused token was never tried for anyone else's tag.
    assert fake_x.searches()["CEADAY21"] == {x.TOKEN}


def test_a_malformed_value_is_refused_by_the_adapters_own_model_and_nothing_kept(
    engine: Engine, settings: Settings
) -> None:
    _add(engine, settings, "knife-week", ["KnifeFree"])
    with pytest.raises(UserError, match="^X_BEARER_TOKEN: the token must be one line"):
        _set(engine, settings, "two words")
    with pytest.raises(UserError, match="a campaign may set: X_BEARER_TOKEN$"):
        with session_scope(engine) as session:
            set_credential(
                session,
                settings,
                slug="knife-week",
                platform="x",
                key="X_API_BASE",
                value="http://127.0.0.1:1",
                actor="alice",
            )
    with pytest.raises(UserError, match="default campaign polls with the install's"):
        _set(engine, settings, CAMPAIGN_TOKEN, slug="default")
    with Session(engine) as session:
        [state] = [
            s
            for s in credential_states(session, get_campaign(session, settings, "knife-week"))
            if s.platform == "x"
        ]
        assert not state.in_use


def test_the_value_is_sealed_at_rest_and_never_in_the_audit_trail(
    engine: Engine, settings: Settings
) -> None:
    _add(engine, settings, "knife-week", ["KnifeFree"])
    _set(engine, settings, CAMPAIGN_TOKEN)

    with engine.connect() as connection:
        [sealed] = connection.execute(sa.text("SELECT sealed FROM campaign_credentials")).scalars()
        audit = connection.execute(sa.text("SELECT * FROM moderation_events")).all()
    assert CAMPAIGN_TOKEN not in sealed and "knife-week-own" not in sealed
    assert all(CAMPAIGN_TOKEN not in str(row) for row in audit)
    assert any("X_BEARER_TOKEN for x in knife-week" in str(row) for row in audit)
    with Session(engine) as session:
        [state] = [
            s
            for s in credential_states(session, get_campaign(session, settings, "knife-week"))
            if s.platform == "x"
        ]
    assert state.in_use and state.keys[0].set_by == "alice"
    assert CAMPAIGN_TOKEN not in repr(state)


def test_a_changed_secret_key_disables_that_campaigns_source_with_a_clear_message(
    engine: Engine, settings: Settings, configure: Callable[..., Settings], fake_x: TwoAccountX
) -> None:
    _add(engine, settings, "knife-week", ["KnifeFree"])
    _set(engine, settings, CAMPAIGN_TOKEN)
    rotated = configure(
        X_API_BASE=fake_x.url,
        X_BEARER_TOKEN=x.TOKEN,
        PLATFORMS="x",
        HASHTAGS="CEADAY21",
        SECRET_KEY="install-secret-two",
    )

    summaries = {s.source: s for s in poll_all(engine=engine, settings=rotated)}

    message = (
        "credentials for x in campaign knife-week can't be read: SECRET_KEY changed; set them again"
    )
    assert summaries["x:*@campaign:knife-week"].error == f"disabled: {message}"
    assert summaries["x:|CEADAY21"].ok
    with Session(engine) as session:
        states = {h.key: h for h in health_report(session, rotated).sources}
    assert states["x:*|@campaign:knife-week"].disabled_reason == message
    assert fake_x.searches() == {"CEADAY21": {x.TOKEN}}


def test_the_scheduler_follows_a_credential_change_at_its_next_look(
    sqlite_engine: Engine, configure: Callable[..., Settings], fake_x: TwoAccountX
) -> None:
    settings = configure(
        X_API_BASE=fake_x.url,
        X_BEARER_TOKEN=x.TOKEN,
        PLATFORMS="x",
        HASHTAGS="CEADAY21",
        SECRET_KEY="install-secret-one",
    )
    _add(sqlite_engine, settings, "knife-week", ["KnifeFree"])

    async def scenario() -> list[set[str]]:
        monitor = Monitor(engine=sqlite_engine, settings=settings)
        monitor.start()
        seen = []
        try:
            await monitor._elect()
            seen.append({j.id for j in monitor.scheduler.get_jobs() if j.id.startswith("poll:")})
            _set(sqlite_engine, settings, CAMPAIGN_TOKEN)
            await monitor._replan()
            jobs = {j.id: j for j in monitor.scheduler.get_jobs() if j.id.startswith("poll:")}
            seen.append(set(jobs))
            owner = jobs["poll:x:|KnifeFree@campaign:knife-week"].args[2]
            assert owner.slug == "knife-week"
            # What its own account finds, it re-checks at source with it too.
            refresh = monitor.scheduler.get_job("refresh:x@campaign:knife-week")
            assert refresh is not None and refresh.args[1] == owner
            with session_scope(sqlite_engine) as session:
                clear_credential(
                    session,
                    settings,
                    slug="knife-week",
                    platform="x",
                    key="X_BEARER_TOKEN",
                    actor="test",
                )
            await monitor._replan()
            seen.append({j.id for j in monitor.scheduler.get_jobs() if j.id.startswith("poll:")})
            refreshes = {j.id for j in monitor.scheduler.get_jobs() if j.id.startswith("refresh:")}
            assert refreshes == {"refresh:x"}  # the campaign's account retired with it
        finally:
            monitor.shutdown()
        return seen

    before, with_own, after = asyncio.run(scenario())
    assert before == after == {"poll:x:|CEADAY21", "poll:x:|KnifeFree"}
    assert with_own == {"poll:x:|CEADAY21", "poll:x:|KnifeFree@campaign:knife-week"}
    with Session(sqlite_engine) as session:
        assert watched(session, settings, TODAY).own == {}


def test_a_post_found_only_with_a_campaigns_account_is_rechecked_at_source_with_it(
    engine: Engine, configure: Callable[..., Settings], fake_x: TwoAccountX
) -> None:
    # The install has no X account of its own: only knife-week can read X.
    settings = configure(
        X_API_BASE=fake_x.url, PLATFORMS="x,mastodon", HASHTAGS="CEADAY21",
        SECRET_KEY="install-secret-one", MASTODON_INSTANCES="http://127.0.0.1:9",
    )  # fmt: skip
    _add(engine, settings, "knife-week", ["KnifeFree"])
    _set(engine, settings, CAMPAIGN_TOKEN)
    tweet = fake_x.add("Ours #KnifeFree")
    assert any(s.ok and s.new == 1 for s in poll_all(engine=engine, settings=settings))
    with session_scope(engine) as session:
        [post] = session.exec(select(Post).where(Post.platform == "x")).all()
        campaign = get_campaign(session, settings, "knife-week")
        set_status(session, [post.id or 0], PostStatus.APPROVED, campaign_id=campaign.id)
    fake_x.delete(tweet["id"])

    summaries = {s.platform: s for s in refresh_all(engine=engine, settings=settings)}

    ours = summaries["x (campaign knife-week)"]
    assert ours.ok and (ours.checked, ours.removed) == (1, 1), ours
    assert not summaries["x"].ok  # the install's own X is not configured
    with Session(engine) as session:
        assert session.get_one(Post, post.id).status == PostStatus.REMOVED
    lookups = [r for r in fake_x.server.requests if r.path.startswith("/2/tweets") and
               not r.path.startswith("/2/tweets/search")]  # fmt: skip
    assert lookups and {r.headers["authorization"] for r in lookups} == {f"Bearer {CAMPAIGN_TOKEN}"}
