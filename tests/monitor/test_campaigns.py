"""Campaigns: what is watched and when, on a clock the test controls.

Reproduces the campaigns issue's findings: one install was one hashtag list in the
environment, so next year's campaign meant editing ``HASHTAGS`` and this year's
sources stayed in status and every digest; nothing could start or stop on a date.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import _alembic_config, create_db_engine, session_scope, upgrade
from monitor.errors import UserError
from monitor.models import AuditEvent, Campaign, CampaignPost, Source
from monitor.services.campaigns import (
    CampaignState,
    NewCampaign,
    add_campaign,
    archive_campaign,
    end_campaign,
    get_campaign,
    list_campaigns,
    state_on,
    watched,
)
from monitor.services.health import health_report
from monitor.services.polling import PollSummary, poll_all
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FakeRequest
from tests.processes import CliResult

TODAY = date(2026, 12, 1)


def _add(engine: Engine, settings: Settings, **fields: object) -> Campaign:
    values: dict[str, object] = {"name": "A campaign", "hashtags": ["KnifeFree"]} | fields
    with session_scope(engine) as session:
        return add_campaign(session, settings, NewCampaign(**values), actor="test", today=TODAY)  # type: ignore[arg-type]


def _watched(engine: Engine, settings: Settings, today: date) -> dict[str, tuple[str, ...]]:
    with Session(engine) as session:
        return watched(session, settings, today).tags


def _live_keys(engine: Engine, settings: Settings) -> set[str]:
    with Session(engine) as session:
        return {health.key for health in health_report(session, settings).sources}


def test_a_single_campaign_install_watches_its_settings_with_no_campaign_command(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21,HelpingHands")
    assert _watched(engine, settings, TODAY) == {"mastodon": ("CEADAY21", "HelpingHands")}
    with Session(engine) as session:
        [default] = list_campaigns(session, settings)
    assert default.is_default and default.slug == "default"
    # The default campaign follows the settings: a new HASHTAGS is what it watches.
    changed = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY22")
    assert _watched(engine, changed, TODAY) == {"mastodon": ("CEADAY22",)}


def test_a_campaign_polls_only_between_its_dates(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    _add(
        engine,
        settings,
        slug="knife-crime-week",
        starts_on=TODAY + timedelta(days=1),
        ends_on=TODAY + timedelta(days=7),
    )
    with Session(engine) as session:
        campaign = get_campaign(session, settings, "knife-crime-week")
    assert state_on(campaign, TODAY) is CampaignState.UPCOMING
    assert _watched(engine, settings, TODAY) == {"mastodon": ("CEADAY21",)}
    assert _watched(engine, settings, TODAY + timedelta(days=1)) == {
        "mastodon": ("CEADAY21", "KnifeFree")
    }
    assert _watched(engine, settings, TODAY + timedelta(days=7))["mastodon"][-1] == "KnifeFree"
    assert state_on(campaign, TODAY + timedelta(days=8)) is CampaignState.ENDED
    assert _watched(engine, settings, TODAY + timedelta(days=8)) == {"mastodon": ("CEADAY21",)}


def test_next_years_campaign_starts_without_this_years_sources_haunting_it(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    mastodon.add_many(2)
    poll_all(engine=engine, settings=settings)
    this_year = f"mastodon:{mastodon.url}|CEADAY21"
    assert this_year in _live_keys(engine, settings)

    _add(engine, settings, slug="ceaday22", hashtags=["CEADAY22"])
    with session_scope(engine) as session:
        end_campaign(session, settings, "default", actor="test")
    summaries = poll_all(engine=engine, settings=settings)

    assert [summary.source for summary in summaries] == [f"mastodon:{mastodon.url}|CEADAY22"]
    assert _live_keys(engine, settings) == {f"mastodon:{mastodon.url}|CEADAY22"}
    with Session(engine) as session:
        old = session.exec(select(Source).where(Source.key == this_year)).one()
        assert old.retired_at is not None  # kept for the days it watched


def test_an_ended_campaigns_tag_stays_watched_while_another_campaign_runs_with_it(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21,HelpingHands")
    _add(engine, settings, slug="force-b", hashtags=["HelpingHands", "ForceB"])
    with session_scope(engine) as session:
        end_campaign(session, settings, "default", actor="test")
    assert _watched(engine, settings, TODAY) == {"mastodon": ("HelpingHands", "ForceB")}


def test_fifty_campaigns_sharing_twenty_tags_poll_each_tag_once(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="Tag0")
    for number in range(50):
        tags = [f"Tag{(number + offset) % 20}" for offset in range(3)]
        _add(engine, settings, slug=f"force-{number}", hashtags=tags)
    before = mastodon.server.hits("/api/v1/timelines/tag/")
    summaries = poll_all(engine=engine, settings=settings)
    assert len(summaries) == 20 and all(summary.ok for summary in summaries)
    assert mastodon.server.hits("/api/v1/timelines/tag/") - before == 20


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"slug": "Force B"}, "lower-case letters, digits and hyphens"),
        ({"slug": "default"}, "exists already"),
        ({"hashtags": ["2022"]}, "not 2022"),
        ({"hashtags": [" "]}, "one or more hashtags"),
        ({"platforms": ["myspace"]}, "unknown platform myspace"),
        (
            {"starts_on": date(2027, 1, 2), "ends_on": date(2027, 1, 1)},
            "--ends 2027-01-01 is before --starts 2027-01-02",
        ),
        ({"ends_on": TODAY - timedelta(days=1)}, "is in the past"),
        ({"name": "  "}, "--name"),
    ],
)
def test_a_bad_campaign_is_refused_with_the_reason_and_nothing_added(
    engine: Engine, configure: Callable[..., Settings], fields: dict[str, object], message: str
) -> None:
    settings = configure()
    with pytest.raises(UserError, match=message):
        _add(engine, settings, **({"slug": "force-b"} | fields))
    with Session(engine) as session:
        assert [c.slug for c in list_campaigns(session, settings)] == ["default"]


def test_ending_and_archiving_are_audited_and_in_order(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure()
    _add(engine, settings, slug="force-b")
    with session_scope(engine) as session, pytest.raises(UserError, match="end it first"):
        archive_campaign(session, settings, "force-b", actor="test")
    with session_scope(engine) as session:
        end_campaign(session, settings, "force-b", actor="test")
    with session_scope(engine) as session, pytest.raises(UserError, match="already ended"):
        end_campaign(session, settings, "force-b", actor="test")
    with session_scope(engine) as session:
        archive_campaign(session, settings, "force-b", actor="test")
    with Session(engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id))]
        assert state_on(get_campaign(session, settings, "force-b"), TODAY) is (
            CampaignState.ARCHIVED
        )
    assert actions == ["campaign_added", "campaign_ended", "campaign_archived"]


def test_the_commands(cli: Callable[..., CliResult], env: FakeMastodon) -> None:
    assert cli("db", "upgrade")[0] == 0
    code, out, err = cli(
        "campaigns", "add", "force-b", "--name", "Force B", "--hashtags", "ForceB,#HelpingHands",
        "--platforms", "mastodon", "--starts", "2099-01-01",
    )  # fmt: skip
    assert code == 0, err
    assert "Added campaign force-b." in out and "state: upcoming" in out
    assert "hashtags: #ForceB, #HelpingHands" in out

    code, out, _ = cli("campaigns", "list")
    assert code == 0
    assert [line.split("\t")[:2] for line in out.splitlines()] == [
        ["default", "running"],
        ["force-b", "upcoming"],
    ]
    assert cli("campaigns", "add", "force-b", "--name", "X", "--hashtags", "X")[2] == (
        "error: a campaign with the slug 'force-b' exists already\n"
    )
    assert (
        "--starts '18/03/2027': give a date"
        in cli("campaigns", "add", "c", "--name", "C", "--hashtags", "C", "--starts", "18/03/2027")[
            2
        ]
    )
    unknown = cli("campaigns", "show", "nope")[2]
    assert unknown == "error: no campaign 'nope'; campaigns: default, force-b\n"
    assert cli("campaigns", "end", "force-b")[0] == 0
    code, out, _ = cli("campaigns", "archive", "force-b")
    assert code == 0 and "410 Gone" in out
    code, out, _ = cli("campaigns", "show", "force-b")
    assert "state: archived" in out
    # The upcoming campaign never polled, the ended one does not: only CEADAY21 is.
    code, out, _ = cli("poll")
    assert code == 0 and "|CEADAY21: ok" in out and "ForceB" not in out


def test_retention_periods_from_the_command_line(
    cli: Callable[..., CliResult], env: FakeMastodon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_PENDING_DAYS", "60")
    assert cli("db", "upgrade")[0] == 0
    code, out, err = cli(
        "campaigns", "add", "force-b", "--name", "Force B", "--hashtags", "ForceB",
        "--retention-rejected-days", "7", "--retention-removed-days", "0",
    )  # fmt: skip
    assert code == 0, err
    assert cli("campaigns", "retention", "force-b")[1] == (
        "force-b: rejected 7 days, pending 60 days (install), removed 0 days.\n"
    )
    code, out, err = cli(
        "campaigns", "retention", "force-b", "--rejected-days", "install", "--pending-days", "400"
    )
    assert code == 0, err
    assert out == "force-b: rejected 30 days (install), pending 400 days, removed 0 days.\n"
    # The default campaign has periods of its own too.
    code, out, _ = cli("campaigns", "retention", "default", "--removed-days", "3")
    assert (
        out == "default: rejected 30 days (install), pending 60 days (install), removed 3 days.\n"
    )

    bad = cli("campaigns", "retention", "force-b", "--pending-days", "soon")
    assert bad[0] != 0
    assert bad[2] == "error: pending days 'soon': give a number of days, or install\n"
    too_long = cli("campaigns", "retention", "force-b", "--removed-days", "40000")
    assert "a retention period is 0 to 36500 days, not 40000" in too_long[2]
    refused = cli(
        "campaigns", "add", "force-c", "--name", "Force C", "--hashtags", "ForceC",
        "--retention-rejected-days", "-5",
    )  # fmt: skip
    assert refused[0] != 0
    assert refused[2] == "error: rejected days '-5': give a number of days, or install\n"
    assert "force-c" not in cli("campaigns", "list")[1]  # nothing half-added
    assert cli("campaigns", "retention", "force-b")[1] == (
        "force-b: rejected 30 days (install), pending 400 days, removed 0 days.\n"
    )
    engine = create_db_engine(os.environ["DATABASE_URL"])
    with Session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.action == "retention_set").order_by(AuditEvent.id)  # type: ignore[arg-type]
        ).all()
        assert [(e.actor, e.detail["campaign"]) for e in events] == [
            ("cli", "force-b"),
            ("cli", "force-b"),
            ("cli", "default"),
        ]
        assert events[1].detail["to"] == {"rejected": None, "pending": 400, "removed": 0}
    engine.dispose()


def test_a_database_from_before_campaigns_migrates_to_one_default_campaign(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 posts and their decisions, from the schema before campaigns: all kept."""
    monkeypatch.setenv("HASHTAGS", "CEADAY21,#HelpingHands")
    monkeypatch.setenv("PLATFORMS", "Mastodon,bluesky")
    engine = create_db_engine(db_url)
    command.upgrade(_alembic_config(engine), "0016")
    at = datetime(2021, 3, 18, tzinfo=UTC).replace(tzinfo=None)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)"
                " INSERT INTO posts (platform, external_id, ref, url, author_handle, author_name,"
                " text, html, content_hash, created_at, first_seen_at, last_seen_at, status,"
                " sensitive, flagged, version) SELECT 'mastodon', CAST(i AS VARCHAR(20)), 'r',"
                " 'https://x.example', '@a', 'a', 't', 't', 'h', :at, :at, :at,"
                " CASE WHEN i % 3 = 0 THEN 'approved' ELSE 'pending' END, false, false, 1 FROM n"
            ),
            {"at": at},
        )
        connection.execute(
            sa.text(
                "INSERT INTO moderation_events (post_id, at, actor, action, to_status)"
                " SELECT id, :at, 'alice', 'approve', 'approved' FROM posts"
                " WHERE status = 'approved'"
            ),
            {"at": at},
        )
    upgrade(engine)
    with Session(engine) as session:
        [default] = session.exec(select(Campaign)).all()
        counts = session.execute(
            sa.text("SELECT status, count(*) FROM posts GROUP BY status ORDER BY status")
        ).all()
        decisions = session.execute(sa.text("SELECT count(*) FROM moderation_events")).scalar()
    assert (default.slug, default.is_default) == ("default", True)
    assert (default.hashtags, default.platforms) == ("CEADAY21,HelpingHands", "mastodon,bluesky")
    assert [tuple(row) for row in counts] == [("approved", 33333), ("pending", 66667)]
    assert decisions == 33333
    engine.dispose()


def test_roles_per_campaign_from_the_command_line(
    cli: Callable[..., CliResult], env: FakeMastodon
) -> None:
    env.add_many(1)  # a #CEADAY21 post: the default campaign's
    assert cli("db", "upgrade")[0] == 0
    assert cli("poll")[0] == 0
    assert cli("campaigns", "add", "force-b", "--name", "Force B", "--hashtags", "ForceB")[0] == 0
    added = cli("users", "add", "bob", "--role", "moderator", "--campaign", "force-b",
                "--password-stdin", stdin="a long enough password\n")  # fmt: skip
    assert added[0] == 0 and "in campaign force-b (no role in the others)" in added[1]
    code, out, _ = cli("export", "--format", "jsonl")
    [record] = [json.loads(line) for line in out.splitlines()]
    ref = f"mastodon:{record['external_id']}"
    # Bob is force B's moderator only: the default campaign's post is not his to decide.
    code, _, err = cli("moderate", "approve", ref, "--as", "bob")
    assert code == 2 and "bob is not a member in campaign 'default'" in err
    code, _, err = cli("moderate", "approve", ref, "--as", "bob", "--campaign", "force-b")
    assert code == 2 and "is not in campaign 'force-b'" in err
    # Every command that acts on posts is scoped the same way.
    for verb, *options in (("escalate", "--reason", "worried"), ("blur-faces",)):
        code, _, err = cli("moderate", verb, ref, "--as", "bob", *options)
        assert code == 2 and "bob is not a member in campaign 'default'" in err, err
        code, _, err = cli("moderate", verb, ref, "--as", "bob", "--campaign", "force-b", *options)
        assert code == 2 and "is not in campaign 'force-b'" in err, err
    assert cli("export", "--campaign", "force-b")[1] == ""  # nothing of the default's leaks
    assert cli("users", "grant", "bob", "--campaign", "force-b", "--role", "viewer")[0] == 0
    code, out, _ = cli("users", "grant", "bob", "--campaign", "force-b", "--role", "none")
    assert code == 0 and "bob is now none in campaign force-b" in out
    assert (
        "already has that role"
        in cli("users", "grant", "bob", "--campaign", "force-b", "--role", "none")[2]
    )
    assert (
        "no campaign 'nope'"
        in cli("users", "grant", "bob", "--campaign", "nope", "--role", "viewer")[2]
    )


def test_a_campaign_ended_while_its_poll_is_under_way_loses_nothing_and_polls_no_more(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    _add(engine, settings, slug="knife-week", hashtags=["KnifeFree"])
    for number in range(2):
        mastodon.add(f"Knife crime week {number} #KnifeFree", tags=("KnifeFree",))
    inside, release = threading.Event(), threading.Event()

    def hold(request: FakeRequest) -> None:
        if request.path.endswith("/tag/KnifeFree"):
            inside.set()
            release.wait(30)

    mastodon.server.on_request = hold
    polled: list[list[PollSummary]] = []

    def run_poll() -> None:
        polled.append(poll_all(engine=engine, settings=settings))

    poll = threading.Thread(target=run_poll)
    poll.start()
    try:
        assert inside.wait(30), "the poll never reached the campaign's tag"
        with session_scope(engine) as session:
            end_campaign(session, settings, "knife-week", actor="test")
    finally:
        release.set()
        poll.join(60)
    mastodon.server.on_request = None
    knife = f"mastodon:{mastodon.url}|KnifeFree"
    [summaries] = polled
    assert {s.source: s.new for s in summaries}[knife] == 2  # the poll under way finishes
    with Session(engine) as session:
        campaign = get_campaign(session, settings, "knife-week")
        placed = session.exec(
            select(CampaignPost).where(CampaignPost.campaign_id == campaign.id)
        ).all()
        assert len(placed) == 2  # made on the campaign's days: its posts, kept
    # The next cycle does not poll it, and its source retires with its history.
    after = poll_all(engine=engine, settings=settings)
    assert knife not in {summary.source for summary in after}
    with Session(engine) as session:
        source = session.exec(select(Source).where(Source.key == knife)).one()
        assert source.retired_at is not None and source.cursor is not None
    assert knife not in _live_keys(engine, settings)
