"""``/gallery/events`` over a real server: what another process does to the public set
reaches every open wall and screen, in order, resumable, and nothing grows without bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import LatencySample, LatencyStage, Post, TakedownRequest, utcnow
from monitor.services.app_settings import GALLERY_PAUSED, set_app_setting
from monitor.services.live import SCREEN_DELAY
from monitor.web.app import create_app
from monitor.web.live import LiveEvent, LiveHub
from tests.streaming import wait_for
from tests.web.auth_helpers import make_user
from tests.web.live_helpers import (
    approve,
    other_process,
    pending_post,
    reading,
    ref_of,
    set_status,
    wait_until,
)
from tests.web.live_server import LiveServer, live_server


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(MEDIA_DIR=str(tmp_path / "media"), DATA_DIR=str(tmp_path / "data"))


@pytest.fixture
def server(gallery_engine: Engine, settings: Settings) -> Iterator[LiveServer]:
    make_user(gallery_engine, "mod", "moderator")
    app = create_app(settings, engine=gallery_engine)
    # Changes made here by plain SQL leave no audit row: the periodic full look finds them.
    app.state.live_hub.reconcile_seconds = 0.5
    with live_server(app) as running:
        yield running


def _samples(engine: Engine, stage: LatencyStage) -> list[LatencySample]:
    """The stage's latency samples, once written: the hub records them in a thread after
    it has sent the events, so a test that has its event waits for them (a condition)."""

    def written() -> list[LatencySample]:
        with Session(engine) as session:
            return list(session.exec(select(LatencySample).where(LatencySample.stage == stage)))

    return wait_for(written, what=f"a {stage.value} latency sample")


def test_an_approval_elsewhere_reaches_every_open_wall_with_its_card(
    server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = pending_post(gallery_engine, text="Live <b>support</b> from the square")
    with (
        reading(f"{server.url}/gallery/events") as page,
        reading(f"{server.url}/gallery/events?variant=embed") as embed,
        other_process(gallery_engine) as replica,
    ):
        assert page.status == 200 and page.headers is not None
        assert page.headers["content-type"].startswith("text/event-stream")
        assert "set-cookie" not in page.headers
        assert "default-src 'self'" in page.headers["content-security-policy"]
        approve(replica, settings, post_id)
        event = page.next("approved")
        assert event.data["id"] == ref_of(gallery_engine, post_id)
        assert "Live &lt;b&gt;support&lt;/b&gt; from the square" in event.data["html"]
        assert 'target="_blank"' not in event.data["html"]
        assert 'target="_blank"' in embed.next("approved").data["html"]
    [sample] = _samples(gallery_engine, LatencyStage.APPROVAL_TO_GALLERY)
    assert sample.post_id == post_id and sample.seconds >= 0


def test_a_takedown_hold_and_a_rejection_remove_the_post_live(
    server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    held, undone = pending_post(gallery_engine), pending_post(gallery_engine)
    with reading(f"{server.url}/gallery/events") as wall:
        for post_id in (held, undone):
            approve(gallery_engine, settings, post_id)
            wall.next("approved")
        with session_scope(gallery_engine) as session:
            session.add(
                TakedownRequest(
                    post_id=held, at=utcnow(), category="personal_information", client_key="k"
                )
            )
            session.execute(
                sa.update(Post.__table__)
                .where(Post.__table__.c.id == held)
                .values(takedown_hold=True)
            )
        assert wall.next("removed").data == {"id": ref_of(gallery_engine, held)}
        set_status(gallery_engine, undone, status="rejected")
        assert wall.next("removed").data == {"id": ref_of(gallery_engine, undone)}
    [sample] = _samples(gallery_engine, LatencyStage.TAKEDOWN_TO_GALLERY)
    assert sample.post_id == held
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'hashtag_monitor_stage_latency_seconds_count{stage="takedown_to_gallery"} 1.0' in metrics
    assert (
        'hashtag_monitor_stage_latency_seconds_bucket{le="+Inf",stage="approval_to_gallery"} 2.0'
        in metrics
    )


def test_the_kill_switch_blanks_walls_and_screens_and_resuming_redraws(
    server: LiveServer, gallery_engine: Engine
) -> None:
    with (
        reading(f"{server.url}/gallery/events") as wall,
        reading(f"{server.url}/gallery/events?variant=screen") as screen,
    ):
        with session_scope(gallery_engine) as session:
            set_app_setting(session, GALLERY_PAUSED, True, actor="mod")
        assert wall.next().kind == "paused" and screen.next().kind == "paused"
        with session_scope(gallery_engine) as session:
            set_app_setting(session, GALLERY_PAUSED, False, actor="mod")
        assert wall.next().kind == "reset" and screen.next().kind == "reset"


def test_a_filtered_wall_gets_only_its_posts(
    server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    other = pending_post(gallery_engine, hashtags=("helpinghands",))
    mine = pending_post(gallery_engine)
    with reading(f"{server.url}/gallery/events?tag=%23CEADAY21") as wall:
        approve(gallery_engine, settings, other)
        approve(gallery_engine, settings, mine)
        assert wall.next("approved").data["id"] == ref_of(gallery_engine, mine)


def test_a_wall_that_reconnects_gets_what_it_missed_and_an_unknown_id_gets_reset(
    server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    first, second = pending_post(gallery_engine), pending_post(gallery_engine)
    with reading(f"{server.url}/gallery/events") as wall:
        approve(gallery_engine, settings, first)
        seen = wall.next("approved")
        approve(gallery_engine, settings, second)
        wall.next("approved")
    assert seen.id is not None
    # The connection dropped after the first event: the second is replayed, once.
    with reading(f"{server.url}/gallery/events?since={seen.id}") as again:
        replayed = again.next()
        assert (replayed.kind, replayed.data["id"]) == ("approved", ref_of(gallery_engine, second))
    # An id from before a restart (another epoch), or nonsense: reload the list.
    for since in ("0badf00d-3", "x" * 500, "%00"):
        with reading(f"{server.url}/gallery/events?since={since}") as stale:
            assert stale.next().kind == "reset"
    with reading(f"{server.url}/gallery/events") as fresh:
        wait_until(lambda: bool(fresh.raw), "the first line")
        assert fresh.raw[0].startswith("retry:")


def test_the_screen_waits_for_the_delay_and_removals_reach_it_at_once(
    server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    with session_scope(gallery_engine) as session:
        set_app_setting(session, SCREEN_DELAY, 2, actor="admin")
    post_id = pending_post(gallery_engine)
    with (
        reading(f"{server.url}/gallery/events?variant=screen") as screen,
        reading(f"{server.url}/gallery/events") as wall,
    ):
        approve(gallery_engine, settings, post_id)
        wall.next("approved")
        event = screen.next("approved")
        assert event.data["id"] == ref_of(gallery_engine, post_id)
        assert "screen-post" in event.data["html"] and "<a " not in event.data["html"]
        set_status(gallery_engine, post_id, status="rejected")
        assert screen.next("removed").data["id"] == ref_of(gallery_engine, post_id)
    [sample] = _samples(gallery_engine, LatencyStage.APPROVAL_TO_SCREEN)
    assert sample.seconds >= 2  # never before the delay (a lower bound, not a timing)


def test_many_walls_share_one_database_reader(
    server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    hub: LiveHub = server.app.state.live_hub
    looks: list[str] = []

    def count(_conn, _cursor, statement: str, *_args: object) -> None:  # type: ignore[no-untyped-def]
        if "max(moderation_events.id)" in statement:
            looks.append(statement)

    readers = [reading(f"{server.url}/gallery/events") for _ in range(20)]
    opened = [reader.__enter__() for reader in readers]
    try:
        wait_until(lambda: hub.listeners == 20, "20 listeners")
        sa.event.listen(gallery_engine, "before_cursor_execute", count)
        steps_before = hub.steps
        post_id = pending_post(gallery_engine)
        approve(gallery_engine, settings, post_id)
        for reader in opened:
            assert reader.next("approved").data["id"] == ref_of(gallery_engine, post_id)
        sa.event.remove(gallery_engine, "before_cursor_execute", count)
        # One look per step of the one hub, however many walls listen.
        assert 0 < len(looks) <= hub.steps - steps_before + 1
    finally:
        for reader in readers:
            reader.__exit__(None, None, None)


def test_a_stalled_listener_is_told_to_reset_not_buffered_for(
    gallery_engine: Engine, settings: Settings
) -> None:
    async def scenario() -> list[bytes]:
        hub = LiveHub(engine=gallery_engine, settings=settings, render=lambda *_: {})
        stream = hub.listen(variant="page", tag=None, platform=None, since=hub.position())
        frames = [await anext(stream)]
        for _ in range(600):  # more than the ring holds, while the listener reads nothing
            hub._publish(LiveEvent(hub.seq + 1, "removed", {"page": b"event: removed\n\n"}))
        frames.append(await anext(stream))
        # After the reset (the wall reloads its list) it follows from the newest event.
        hub._publish(LiveEvent(hub.seq + 1, "removed", {"page": b"event: removed\n\n"}))
        frames.append(await anext(stream))
        await stream.aclose()
        return frames

    retry, reset, after = asyncio.run(scenario())
    assert retry.startswith(b"retry:") and b"event: reset" in reset
    assert after == b"event: removed\n\n"
    hub_events = LiveHub(engine=gallery_engine, settings=settings, render=lambda *_: {}).events
    assert hub_events.maxlen is not None and hub_events.maxlen <= 1000


def test_stopping_the_server_ends_open_streams(gallery_engine: Engine, settings: Settings) -> None:
    server = LiveServer(create_app(settings, engine=gallery_engine)).start()
    try:
        with reading(f"{server.url}/gallery/events") as wall:
            server.stop()
            assert wall.ended()
    finally:
        server.stop()


@pytest.mark.parametrize(
    "query", ["variant=all", "tag=%3Cscript%3E", "platform=../etc", "tag=" + "a" * 500]
)
def test_bad_parameters_are_refused_in_words(server: LiveServer, query: str) -> None:
    response = httpx.get(f"{server.url}/gallery/events?{query}")
    assert response.status_code == 400 and "must be" in response.text


def test_the_event_screen_page_has_the_help_panel_and_a_local_qr_code(
    server: LiveServer, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = pending_post(gallery_engine, text="On the big screen")
    approve(gallery_engine, settings, post_id)
    # Approved before the screen's hub first looked: shown at once (the delay is 0).
    page = httpx.get(f"{server.url}/gallery/screen")
    assert page.status_code == 200 and "set-cookie" not in page.headers
    assert "On the big screen" in page.text and "Worried about a child?" in page.text
    assert (
        "<svg" in page.text and 'aria-label="QR code: http://127.0.0.1:8000/gallery"' in page.text
    )
    assert 'data-mode="slideshow"' in page.text
    mosaic = httpx.get(f"{server.url}/gallery/screen?mode=mosaic")
    assert 'data-mode="mosaic"' in mosaic.text
    assert 'data-mode="slideshow"' in httpx.get(f"{server.url}/gallery/screen?mode=<x>").text


def test_the_hub_outlives_a_database_outage(
    gallery_engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> tuple[bool, int]:
        hub = LiveHub(engine=gallery_engine, settings=settings, render=lambda *_: {})
        hub.tick_seconds = 0.01
        await hub.start()
        healthy = hub._read_fingerprint
        broken = 0

        def outage() -> tuple[object, ...]:
            nonlocal broken
            broken += 1
            raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

        hub._read_fingerprint = outage  # type: ignore[method-assign]
        while broken < 3:
            await asyncio.sleep(0.01)
        hub._read_fingerprint = healthy  # type: ignore[method-assign]
        steps = hub.steps
        while hub.steps < steps + 2:
            await asyncio.sleep(0.01)
        alive = hub._task is not None and not hub._task.done()
        await hub.close()
        return alive, broken

    caplog.set_level(logging.INFO, logger="monitor.web.live")
    alive, broken = asyncio.run(scenario())
    assert alive and broken >= 3
    warnings = [
        r.getMessage() for r in caplog.records if "cannot read the database" in r.getMessage()
    ]
    assert len(warnings) == 1  # said once, not every tick
    assert any("answers again" in r.getMessage() for r in caplog.records)
