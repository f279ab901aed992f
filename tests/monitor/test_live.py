"""What the live wall follows: snapshots of the public set and their differences, the
screen delay, latency samples, looks (WCAG contrast) and the queue's changes."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.db import session_scope
from monitor.models import LatencySample, LatencyStage, Post, PostStatus, TakedownRequest, utcnow
from monitor.services import audit
from monitor.services.app_settings import GALLERY_PAUSED, set_app_setting
from monitor.services.ingest import record_posts
from monitor.services.latency import Sample, histograms, quantile, record_latency, today_figures
from monitor.services.live import (
    LONG_AGO,
    SCREEN_DELAY,
    diff,
    fingerprint,
    open_takedown_times,
    screen_delay,
    screen_view,
    snapshot,
)
from monitor.services.looks import (
    LookRefused,
    check_contrast,
    contrast_ratio,
    load_look,
    normalise_colour,
    save_look,
)
from monitor.services.queue_live import parse_shown, queue_changes
from tests.factories import make_post

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _store(engine: Engine, status: str = PostStatus.APPROVED, **overrides: object) -> int:
    with session_scope(engine) as session:
        post_id = record_posts(session=session, posts=[make_post(**overrides)]).new_ids[0]
        session.execute(
            sa.update(Post.__table__).where(Post.__table__.c.id == post_id).values(status=status)
        )
        return post_id


def _approve(engine: Engine, post_id: int, at: datetime) -> None:
    """What a decision does to the public set: status, version, the audit row."""
    with session_scope(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        post.status, post.version = PostStatus.APPROVED, post.version + 1
        audit.record(
            session,
            actor="mod",
            action=audit.Action.APPROVE,
            post=post,
            from_status="pending",
            at=at,
        )


def _snap(engine: Engine, previous=None, now: datetime = NOW, delay: int = 0):  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return snapshot(session, previous=previous, default_delay_seconds=delay, now=now)


def test_the_first_look_announces_nothing_and_later_approvals_are_announced(
    engine: Engine,
) -> None:
    old = _store(engine)
    first = _snap(engine)
    assert diff(None, first) == [] and first.posts[old].since == LONG_AGO
    new = _store(engine, status=PostStatus.PENDING)
    _approve(engine, new, NOW - timedelta(seconds=3))
    second = _snap(engine, first)
    changes = diff(first, second)
    assert [(c.kind, c.post.id if c.post else None) for c in changes] == [("approved", new)]
    assert second.posts[new].since == NOW - timedelta(seconds=3)
    assert second.posts[new].ref.startswith("mastodon:")


def test_removals_holds_escalations_and_edits_are_removed(engine: Engine) -> None:
    ids = [_store(engine) for _ in range(4)]
    before = _snap(engine)
    table = Post.__table__
    with session_scope(engine) as session:
        session.execute(sa.update(table).where(table.c.id == ids[0]).values(status="removed"))
        session.execute(sa.update(table).where(table.c.id == ids[1]).values(takedown_hold=True))
        session.execute(sa.update(table).where(table.c.id == ids[2]).values(escalated=True))
        # Edited and re-approved: the old card goes, the new one comes.
        session.execute(sa.update(table).where(table.c.id == ids[3]).values(version=9))
    changes = diff(before, _snap(engine, before))
    removed = [c.post.id for c in changes if c.kind == "removed" and c.post]
    approved = [c.post.id for c in changes if c.kind == "approved" and c.post]
    assert sorted(removed) == sorted(ids) and approved == [ids[3]]


def test_the_kill_switch_pauses_and_resumes_every_wall(engine: Engine) -> None:
    _store(engine)
    live = _snap(engine)
    with session_scope(engine) as session:
        set_app_setting(session, GALLERY_PAUSED, True, actor="mod")
    paused = _snap(engine, live)
    assert [c.kind for c in diff(live, paused)] == ["paused"] and paused.posts == {}
    with session_scope(engine) as session:
        set_app_setting(session, GALLERY_PAUSED, False, actor="mod")
    assert [c.kind for c in diff(paused, _snap(engine, paused))] == ["resumed"]


def test_the_fingerprint_moves_with_audit_rows_and_settings(engine: Engine) -> None:
    with Session(engine) as session:
        empty = fingerprint(session)
    post_id = _store(engine, status=PostStatus.PENDING)
    _approve(engine, post_id, NOW)
    with Session(engine) as session:
        after_approval = fingerprint(session)
    with session_scope(engine) as session:
        set_app_setting(session, SCREEN_DELAY, 30, actor="admin")
    with Session(engine) as session:
        after_setting = fingerprint(session)
    assert len({empty, after_approval, after_setting}) == 3


def test_the_screen_shows_a_post_only_after_the_delay(engine: Engine) -> None:
    base = _snap(engine, delay=60)
    post_id = _store(engine, status=PostStatus.PENDING)
    _approve(engine, post_id, NOW)
    later = _snap(engine, base, delay=60)
    assert later.screen_delay == timedelta(seconds=60)
    shown, due = screen_view(later.posts, delay=later.screen_delay, now=NOW + timedelta(seconds=59))
    assert post_id not in shown and due == NOW + timedelta(seconds=60)
    shown, due = screen_view(later.posts, delay=later.screen_delay, now=NOW + timedelta(seconds=60))
    assert post_id in shown and due is None


def test_an_admins_delay_wins_and_nonsense_falls_back(engine: Engine) -> None:
    with session_scope(engine) as session:
        set_app_setting(session, SCREEN_DELAY, 120, actor="admin")
    with Session(engine) as session:
        assert screen_delay(session, 5) == timedelta(seconds=120)
    for value in ("10", -1, True, None):
        with session_scope(engine) as session:
            set_app_setting(session, SCREEN_DELAY, value, actor="admin")
        with Session(engine) as session:
            assert screen_delay(session, 5) == timedelta(seconds=5)


def test_a_latency_sample_is_written_once_per_post_version_on_both_databases(
    engine: Engine,
) -> None:
    sample = Sample(LatencyStage.APPROVAL_TO_GALLERY, 7, 2, NOW, 1.5)
    for seconds in (1.5, 99.0):
        with session_scope(engine) as session:
            record_latency(session, [dataclasses.replace(sample, seconds=seconds)])
    with session_scope(engine) as session:
        record_latency(session, [Sample(LatencyStage.APPROVAL_TO_GALLERY, 7, 3, NOW, float("nan"))])
        rows = session.execute(sa.select(LatencySample.__table__)).all()
    assert [(row.version, row.seconds) for row in rows] == [(2, 1.5)]
    with engine.connect() as connection:
        [histogram] = histograms(connection)
    assert histogram.stage == LatencyStage.APPROVAL_TO_GALLERY and histogram.count == 1
    assert histogram.cumulative[0] == 0 and histogram.cumulative[-1] == 1


def test_todays_figures_use_the_local_day(engine: Engine) -> None:
    zone = ZoneInfo("Europe/London")
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    samples = [Sample(LatencyStage.APPROVAL_TO_GALLERY, n, 1, now, float(n)) for n in range(1, 21)]
    # 23:30 UTC on 30 June is 00:30 on 1 July in London (summer time): today.
    samples.append(
        Sample(
            LatencyStage.APPROVAL_TO_GALLERY, 50, 1, datetime(2026, 6, 30, 23, 30, tzinfo=UTC), 50.0
        )
    )
    samples.append(
        Sample(
            LatencyStage.APPROVAL_TO_GALLERY,
            51,
            1,
            datetime(2026, 6, 30, 22, 30, tzinfo=UTC),
            999.0,
        )
    )
    with session_scope(engine) as session:
        record_latency(session, samples)
    with Session(engine) as session:
        figures = {f.stage: f for f in today_figures(session, zone=zone, now=now).stages}
    gallery = figures[LatencyStage.APPROVAL_TO_GALLERY]
    assert (gallery.count, gallery.p50, gallery.p95) == (21, 11.0, 20.0)
    assert figures["takedown_to_gallery"].p50 is None


def test_quantile_is_a_value_that_was_measured() -> None:
    assert quantile([], 0.5) is None
    assert quantile([3.0], 0.95) == 3.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0


def test_open_takedown_times_only_for_held_posts(engine: Engine) -> None:
    held, flagged = _store(engine), _store(engine)
    table = Post.__table__
    with session_scope(engine) as session:
        session.execute(sa.update(table).where(table.c.id == held).values(takedown_hold=True))
        for post_id in (held, flagged):
            session.add(TakedownRequest(post_id=post_id, at=NOW, category="other", client_key="k"))
    with Session(engine) as session:
        assert open_takedown_times(session, [held, flagged]) == {held: NOW}


@pytest.mark.parametrize(
    ("text", "background", "accent", "refused"),
    [
        ("#1b1b1b", "#ffffff", "#0b3d6b", None),
        ("#777777", "#ffffff", "#0b3d6b", "text on the background"),
        ("#000000", "#ffffff", "#ffdd00", "accent (links) on the background"),
        ("#000000", "#000000", "#000000", "text on the background"),
        ("#ffffff", "#000000", "#ffffff", "white header and button text on the accent"),
    ],
)
def test_colours_below_wcag_aa_are_refused_with_the_reason(
    text: str, background: str, accent: str, refused: str | None
) -> None:
    if refused is None:
        check_contrast(background=background, text=text, accent=accent)
        return
    with pytest.raises(LookRefused, match=re.escape(refused)) as caught:
        check_contrast(background=background, text=text, accent=accent)
    assert "4.5:1" in str(caught.value)


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    assert round(contrast_ratio("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast_ratio("#777777", "#ffffff"), 2) == 4.48
    assert contrast_ratio("#123456", "#123456") == 1.0


@pytest.mark.parametrize("value", ["red", "#12345", "#ggg", "javascript:x", "#fff;}body{x"])
def test_only_hex_colours_are_accepted(value: str) -> None:
    with pytest.raises(LookRefused, match="not a colour"):
        normalise_colour(value)
    assert normalise_colour("#ABC") == "#aabbcc"


def test_a_look_is_saved_checked_and_a_logo_needs_its_alt_text(engine: Engine) -> None:
    fields = {
        "layout": "masonry",
        "background": "#fffff0",
        "text": "#111111",
        "accent": "#8a1538",
        "help_message": "  Worried about a child?  Call 101. ",
        "help_url": "https://force.example/help",
        "logo": None,
        "logo_alt": "",
    }
    with session_scope(engine) as session:
        assert save_look(session, actor="admin", **fields) == "Saved the gallery's look."
    with Session(engine) as session:
        look = load_look(session)
    assert (look.layout, look.help_message) == ("masonry", "Worried about a child? Call 101.")
    refusals = [
        ({"layout": "spiral"}, "choose a layout"),
        ({"help_url": "javascript:alert(1)"}, "http:// or https://"),
        ({"help_message": "x" * 301}, "under 300"),
        ({"logo": "a" * 64 + "-320.jpg"}, "describe the logo"),
    ]
    for change, reason in refusals:
        with session_scope(engine) as session, pytest.raises(LookRefused, match=reason):
            save_look(session, actor="admin", **{**fields, **change})
    with Session(engine) as session:
        assert load_look(session) == look


def test_a_damaged_stored_look_falls_back_to_the_default(engine: Engine) -> None:
    with session_scope(engine) as session:
        set_app_setting(
            session, "gallery_look", {"text": "#ffffff", "background": "#ffffff"}, actor="x"
        )
    with Session(engine) as session:
        assert load_look(session).text == "#1b1b1b"


def test_queue_changes_name_who_did_what(engine: Engine) -> None:
    decided, untouched, requested = (_store(engine, status=PostStatus.PENDING) for _ in range(3))
    with Session(engine) as session:
        versions = {pid: session.get(Post, pid).version for pid in (decided, untouched, requested)}  # type: ignore[union-attr]
    _approve(engine, decided, utcnow())
    with session_scope(engine) as session:
        session.add(TakedownRequest(post_id=requested, at=NOW, category="other", client_key="k"))
    shown = {**versions, 10**9: 1}
    with Session(engine) as session:
        changes = queue_changes(session, shown)
    assert [(c.post_id, c.status, c.note) for c in changes.changed] == [
        (decided, "approved", "mod: approved")
    ]
    assert changes.requested == [requested] and changes.gone == [10**9]


def test_the_pages_list_of_shown_posts_is_parsed_defensively() -> None:
    assert parse_shown("1:2,3:4, x:1,5:,:6,7:8:9," + "9" * 30 + ":1") == {1: 2, 3: 4}
    assert len(parse_shown(",".join(f"{n}:1" for n in range(1000)))) == 200
