"""The fault suite, on streams: seeded schedules of drops, stalls, junk frames, posts the
stream never delivers, database failures and too-old cursors, against the real consumer.
The server's truth is compared with the database at the end: nothing lost, nothing twice."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import monitor.streaming
from monitor.config import Settings
from monitor.models import Post, Source
from monitor.services.health import SourceMode
from tests.fakes.bluesky import APP_PASSWORD, HANDLE, FakeBluesky
from tests.fakes.jetstream import FakeJetstream
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon_stream import TOKEN, FakeMastodonStream
from tests.fakes.server import FakeServer
from tests.faults.conftest import FaultFigures
from tests.streaming import running_streams, wait_for

STEPS = 60


def _stored(engine: Engine, platform: str) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Post.external_id).where(Post.platform == platform)))


def _modes(engine: Engine, platform: str) -> set[str | None]:
    with Session(engine) as session:
        query = select(Source.mode).where(Source.platform == platform, Source.scope != "*")
        return set(session.exec(query))


@pytest.fixture
def flaky_database(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``fail(n)``: the next ``n`` stream commits fail as a locked database does."""
    real = monitor.streaming.store_batch
    left = {"n": 0}

    def store(**kwargs: object) -> object:
        if left["n"] > 0:
            left["n"] -= 1
            raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(monitor.streaming, "store_batch", store)
    return lambda count: left.__setitem__("n", count)


def _account(
    engine: Engine, platform: str, truth: set[str], figures: FaultFigures, faults: int
) -> None:
    wait_for(lambda: truth <= set(_stored(engine, platform)), timeout=60, what="every post")
    stored = _stored(engine, platform)
    figures.schedules += 1
    figures.faults += faults
    figures.posts += len(truth)
    figures.lost += len(truth - set(stored))
    figures.duplicated += len(stored) - len(set(stored))
    assert len(stored) == len(set(stored)) == len(truth)


@pytest.mark.parametrize("seed", [1500, pytest.param(15, marks=pytest.mark.slow)])
def test_mastodon_stream_schedule_loses_nothing(
    seed: int,
    engine: Engine,
    configure: Callable[..., Settings],
    mastodon: FakeMastodon,
    flaky_database: Callable[[int], None],
    fault_figures: FaultFigures,
) -> None:
    rng = random.Random(seed)
    live = FakeMastodonStream(mastodon)
    settings = configure(
        PLATFORMS="mastodon",
        MASTODON_INSTANCES=mastodon.url,
        MASTODON_ACCESS_TOKEN=TOKEN,
        HASHTAGS="CEADAY21",
    )
    truth: set[str] = set()
    faults = 0
    with running_streams(engine, settings):
        wait_for(lambda: _modes(engine, "mastodon") == {"streaming"}, what="streaming")
        for step in range(STEPS):
            roll = rng.random()
            if roll < 0.55:
                truth.add(live.post(f"Step {step} #CEADAY21")["uri"])
                continue
            faults += 1
            if roll < 0.65:
                truth.add(live.post(f"Missed {step} #CEADAY21", stream=False)["uri"])
                live.drop_all()  # the reconnect's catch-up must find it
            elif roll < 0.75:
                junk = [b"event: update\ndata: {oops\n\n", b"data: \xff\xfe\n\n", b":" * 99 + b"\n"]
                live.send_raw("ceaday21", rng.choice(junk))
            elif roll < 0.85:
                flaky_database(rng.randint(1, 3))
            elif roll < 0.93:
                stalled_at = live.connections
                live.stall()
                # The client gave up on the silent stream and opened another (silent too).
                wait_for(lambda n=stalled_at: live.connections > n, what="a new connection")
                live.unstall()
            else:
                status = live.post(f"Deleted at once {step} #CEADAY21")
                live.delete(status["id"])  # stored then removed, or never stored: both fine
                truth.add(status["uri"])
        # A status deleted before we stored it may rightly never be stored: leave them out.
        at_source = {status["uri"] for status in mastodon.statuses.values()}
        deleted = truth - at_source
        wait_for(
            lambda: (truth - deleted) <= set(_stored(engine, "mastodon")),
            timeout=60,
            what="every live post",
        )
        truth -= deleted - set(_stored(engine, "mastodon"))
        _account(engine, "mastodon", truth, fault_figures, faults)


def _note(engine: Engine) -> str:
    with Session(engine) as session:
        notes = session.exec(select(Source.mode_note).where(Source.platform == "mastodon"))
        return " ".join(note or "" for note in notes)


@pytest.fixture
def bluesky(fake_server: FakeServer) -> FakeBluesky:
    return FakeBluesky(fake_server)


@pytest.fixture
def jetstream(bluesky: FakeBluesky) -> Iterator[FakeJetstream]:
    fake = FakeJetstream(bluesky).start()
    yield fake
    fake.stop()


def test_jetstream_schedule_loses_nothing(
    sqlite_engine: Engine,
    configure: Callable[..., Settings],
    bluesky: FakeBluesky,
    jetstream: FakeJetstream,
    flaky_database: Callable[[int], None],
    fault_figures: FaultFigures,
) -> None:
    engine = sqlite_engine
    rng = random.Random(2026)
    settings = configure(
        PLATFORMS="bluesky",
        BLUESKY_HANDLE=HANDLE,
        BLUESKY_APP_PASSWORD=APP_PASSWORD,
        BLUESKY_API_BASE=bluesky.url,
        JETSTREAM_URLS=f"ws://jetstream.invalid,{jetstream.url}",
        HASHTAGS="CEADAY21",
    )
    truth: set[str] = set()
    faults = 1  # the first instance does not resolve
    with running_streams(engine, settings):
        wait_for(lambda: _modes(engine, "bluesky") == {SourceMode.STREAMING.value}, what="live")
        for step in range(STEPS):
            roll = rng.random()
            if roll < 0.5:
                jetstream.noise(rng.randint(1, 50))
                truth.add(jetstream.post(f"Step {step} #CEADAY21")["uri"])
                continue
            faults += 1
            if roll < 0.65:
                truth.add(jetstream.post(f"Before a drop {step} #CEADAY21")["uri"])
                jetstream.drop_all()  # the replay from the rewound cursor delivers again
            elif roll < 0.75:
                jetstream.send_raw(rng.choice([b"{oops #CEADAY21", b"[]", b'{"kind":"commit"}']))
            elif roll < 0.85:
                flaky_database(rng.randint(1, 3))
            else:
                # Missed by the stream and gone from its history: only search finds it.
                truth.add(jetstream.post(f"Only search {step} #CEADAY21", stream=False)["uri"])
                jetstream.forget_before(jetstream.now_us())
                jetstream.commit(
                    "at://did:plc:z/app.bsky.feed.post/1",
                    "delete",
                    time_us=jetstream.now_us() + 300_000_000,
                )
                jetstream.drop_all()
        _account(engine, "bluesky", truth, fault_figures, faults)
