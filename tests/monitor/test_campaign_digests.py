"""Each campaign's own digest: its posts, its tags that day, its sources, its recipients.

Reproduces the campaigns issue's digest findings: one digest for the whole install,
counting every campaign's posts and every source ever configured, sent to one list at
one time; a tag removed from a campaign mid-day left no word in that day's digest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, Campaign, DigestSend, PollRun, PostStatus, Source
from monitor.services.campaigns import (
    NewCampaign,
    add_campaign,
    as_new,
    digest_of,
    edit_campaign,
    end_campaign,
    get_campaign,
)
from monitor.services.digest import Digest, compute_digest
from monitor.services.ingest import record_posts
from monitor.services.mail import SENT, render_digest_text, send_due_digest
from monitor.services.placements import set_status
from tests.factories import make_post
from tests.monitor.test_digest import DAY, LONDON, NOW, at, build_scenario
from tests.monitor.test_mail import SmtpCapture, mail_settings

#: Days in November 2026: past for the digest's "has this day ended" check.
FIRST = date(2026, 11, 10)
LAST = date(2026, 11, 12)


def _add(engine: Engine, settings: Settings, slug: str, tags: list[str], **fields: object) -> None:
    new = NewCampaign(slug=slug, name=f"Force {slug.upper()}", hashtags=tags, **fields)  # type: ignore[arg-type]
    with session_scope(engine) as session:
        add_campaign(session, settings, new, actor="test", today=date(2026, 11, 1))


def _campaign(engine: Engine, settings: Settings, slug: str | None) -> Campaign:
    with Session(engine) as session:
        campaign = get_campaign(session, settings, slug)
        session.expunge(campaign)
        return campaign


def _digest(
    engine: Engine, settings: Settings, day: date, slug: str | None, now: datetime | None = None
) -> Digest:
    with Session(engine) as session:
        campaign = get_campaign(session, settings, slug)
        return compute_digest(session, settings, day, now=now or NOW, campaign=campaign)


def _store(engine: Engine, settings: Settings, *posts: tuple[str, datetime]) -> list[int]:
    """Posts with these tags at these times, placed as ingestion places them."""
    fetched = [
        make_post(media=(), text=f"A post #{tag}", hashtags=(tag.lower(),), created_at=when)
        for tag, when in posts
    ]
    with session_scope(engine) as session:
        return record_posts(session=session, posts=fetched, settings=settings).new_ids


def _comparable(digest: Digest) -> dict[str, object]:
    """Every figure, without what names the campaign."""
    fields = dataclasses.asdict(digest)  # type: ignore[call-overload]
    for name in ("campaign", "tag_changes", "generated_at"):
        fields.pop(name)
    return fields  # type: ignore[no-any-return]


def test_a_campaigns_figures_from_its_placements_are_the_roll_ups_figures(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    """The two row sources agree: the same posts give the same digest, figure by figure."""
    settings = configure(HASHTAGS="CEADAY21,HelpingHands")
    build_scenario(engine)
    alone = _digest(engine, settings, DAY, None)
    # A second campaign (with posts of its own, elsewhere): the default campaign's digest
    # now reads its placements, every scenario post placed in it with its own status.
    _add(engine, settings, "force-b", ["ForceB"])
    with session_scope(engine) as session:
        default = get_campaign(session, settings, None)
        session.execute(
            sa.text(
                "INSERT INTO campaign_posts (campaign_id, post_id, status, created_at)"
                " SELECT :campaign, id, status, created_at FROM posts"
            ),
            {"campaign": default.id},
        )
    _store(engine, settings, ("ForceB", at(DAY, 11)), ("ForceB", at(DAY - timedelta(days=1), 9)))
    placed = _digest(engine, settings, DAY, None)

    assert placed.campaign == "Default campaign" and alone.campaign is None
    assert _comparable(placed) == _comparable(alone)
    assert alone.posts.value > 0 and alone.top_posts and alone.moderation.decisions == 3


def test_each_campaigns_digest_counts_and_quotes_only_its_own_posts(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(HASHTAGS="CEADAY21")
    _add(engine, settings, "force-b", ["ForceB"])
    day = FIRST
    _, approved_in_b, _ = _store(
        engine,
        settings,
        ("CEADAY21", at(day, 9)),
        ("ForceB", at(day, 10)),
        ("ForceB", at(day, 11)),
    )
    with session_scope(engine) as session:
        b = get_campaign(session, settings, "force-b")
        set_status(session, [approved_in_b], PostStatus.APPROVED, campaign_id=b.id)
    later = datetime(2026, 11, 11, 8, 0, tzinfo=UTC)
    digest_b = _digest(engine, settings, day, "force-b", later)
    digest_a = _digest(engine, settings, day, None, later)

    assert (digest_b.posts.value, digest_a.posts.value) == (2, 1)
    assert list(digest_b.hashtags) == ["ForceB"] and list(digest_a.hashtags) == ["CEADAY21"]
    assert digest_b.moderation.pending == 1 and digest_a.moderation.pending == 1
    assert digest_b.reach.approved == 1 and digest_a.reach.approved == 0
    assert digest_b.campaign == "Force FORCE-B"
    text = render_digest_text(digest_b, settings)
    assert "Hashtag digest for 2026-11-10: Force FORCE-B" in text and "#CEADAY21" not in text


def _source(
    engine: Engine,
    key: str,
    hashtags: str,
    day: date,
    *,
    ok_hours: range,
    created: datetime | None = None,
    retired: datetime | None = None,
) -> None:
    start = datetime.combine(day, datetime.min.time(), tzinfo=LONDON).astimezone(UTC)
    with Session(engine) as session:
        source = Source(
            key=key,
            platform="mastodon",
            hashtags=hashtags,
            created_at=created,
            retired_at=retired,
            last_success_at=start + timedelta(hours=ok_hours.stop),
        )
        session.add(source)
        session.flush()
        for hour in ok_hours:
            started = start + timedelta(hours=hour, minutes=10)
            session.add(
                PollRun(
                    source_id=source.id,
                    started_at=started,
                    finished_at=started + timedelta(seconds=1),
                    ok=True,
                )
            )
        session.commit()


def test_a_past_days_coverage_is_its_campaigns_sources_of_that_day(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(HASHTAGS="CEADAY21")
    _add(engine, settings, "force-b", ["ForceB"])
    day = FIRST
    _source(engine, "mastodon:m|forceb", "forceb", day, ok_hours=range(24))
    # Force B's source from last year, retired before the day: not in the day's coverage.
    _source(
        engine,
        "mastodon:m|forceb2025",
        "forceb",
        day - timedelta(days=400),
        ok_hours=range(2),
        retired=at(day - timedelta(days=1), 9),
    )
    # The default campaign's source: not Force B's, however it fared.
    _source(engine, "mastodon:m|ceaday21", "ceaday21", day, ok_hours=range(3))
    # Polled the whole day, failing today: the past day is judged by that day's runs.
    with session_scope(engine) as session:
        source = session.exec(select(Source).where(Source.key == "mastodon:m|forceb")).one()
        source.last_error, source.failures_in_row = "HTTP 503 now", 9
        source.failing_since = datetime(2026, 11, 30, tzinfo=UTC)

    digest = _digest(engine, settings, day, "force-b", datetime(2026, 12, 1, tzinfo=UTC))

    assert [c.key for c in digest.coverage] == ["mastodon:m|forceb"]
    assert not digest.incomplete and digest.coverage[0].hours_polled == 24
    assert digest.coverage[0].state.value == "ok"
    default = _digest(engine, settings, day, None, datetime(2026, 12, 1, tzinfo=UTC))
    assert [c.key for c in default.coverage] == ["mastodon:m|ceaday21"] and default.incomplete


def test_a_tag_removed_mid_day_is_said_and_counted_until_then(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(HASHTAGS="CEADAY21")
    _add(engine, settings, "force-b", ["ForceB", "knifefree"])
    day = FIRST
    _store(engine, settings, ("knifefree", at(day, 10)), ("ForceB", at(day, 11)))
    with session_scope(engine) as session:
        wanted = as_new(get_campaign(session, settings, "force-b"), settings)
        done = edit_campaign(
            session,
            settings,
            "force-b",
            dataclasses.replace(wanted, hashtags=["ForceB", "Safer"]),
            actor="admin",
            now=at(day, 14, 5),
        )
    assert done == ["hashtag #Safer added", "hashtag #knifefree removed"]
    _store(engine, settings, ("knifefree", at(day, 15)), ("Safer", at(day, 16)))
    later = datetime(2026, 11, 11, 8, 0, tzinfo=UTC)

    digest = _digest(engine, settings, day, "force-b", later)

    assert digest.tag_notes == [
        "#Safer was added to this campaign at 14:05; its figures cover from then",
        "#knifefree was removed from this campaign at 14:05; its figures cover until then",
    ]
    assert {tag: f.value for tag, f in digest.hashtags.items()} == {
        "ForceB": 1,
        "Safer": 1,
        "knifefree": 1,  # the 10:00 post; the 15:00 one is no longer Force B's
    }
    assert digest.posts.value == 3
    text = render_digest_text(digest, settings)
    assert "Note: #knifefree was removed from this campaign at 14:05;" in text
    # The next day had the new tags only, and nothing to say.
    next_day = _digest(engine, settings, day + timedelta(days=1), "force-b", later)
    assert set(next_day.hashtags) == {"ForceB", "Safer"} and next_day.tag_notes == []
    # A day before the change had the old tags, with nothing to say either.
    before = _digest(engine, settings, day - timedelta(days=1), "force-b", later)
    assert set(before.hashtags) == {"ForceB", "knifefree"} and before.tag_notes == []


def test_a_tag_removed_from_hashtags_mid_day_is_said_from_its_retired_source(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    """The default campaign's tags are HASHTAGS: its change leaves only the retirement."""
    settings = configure(HASHTAGS="CEADAY21")
    _add(engine, settings, "force-b", ["ForceB"])
    day = FIRST
    _source(engine, "mastodon:m|ceaday21", "ceaday21", day, ok_hours=range(24))
    _source(
        engine,
        "mastodon:m|helpinghands",
        "helpinghands",
        day,
        ok_hours=range(15),
        created=at(day - timedelta(days=3), 9),
        retired=at(day, 14, 5),
    )
    digest = _digest(engine, settings, day, None, datetime(2026, 11, 11, 8, tzinfo=UTC))
    assert digest.tag_notes == [
        "#helpinghands was removed from this campaign at 14:05; its figures cover until then"
    ]
    assert set(digest.hashtags) == {"CEADAY21", "helpinghands"}
    assert not digest.incomplete  # watched for as long as it was meant to be


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hashtags": ["2022"]}, "not 2022"),
        ({"starts_on": date(2027, 1, 2), "ends_on": date(2027, 1, 1)}, "is before --starts"),
        ({"ends_on": date(2026, 11, 30)}, "is in the past"),
        ({"platforms": ["myspace"]}, "unknown platform myspace"),
        ({"digest_to": ["partners@b.example", "not an address"]}, "--digest-to: 'not an"),
        ({"digest_from": "Force B <digest@b"}, "--digest-from: "),
        ({"digest_time": "25:00"}, "--digest-time: must be HH:MM"),
        ({}, "nothing to change"),
    ],
)
def test_a_bad_edit_is_refused_with_the_reason_and_nothing_changed(
    engine: Engine, configure: Callable[..., Settings], change: dict[str, object], message: str
) -> None:
    settings = configure(HASHTAGS="CEADAY21")
    _add(engine, settings, "force-b", ["ForceB"])
    before = as_new(_campaign(engine, settings, "force-b"), settings)
    with session_scope(engine) as session, pytest.raises(UserError, match=message):
        edit_campaign(
            session,
            settings,
            "force-b",
            dataclasses.replace(before, **change),  # type: ignore[arg-type]
            actor="admin",
            now=datetime(2026, 12, 1, 12, tzinfo=UTC),
        )
    assert as_new(_campaign(engine, settings, "force-b"), settings) == before
    with Session(engine) as session:
        assert (
            session.exec(select(AuditEvent).where(AuditEvent.action == "campaign_edited")).all()
            == []
        )


def test_an_edit_is_audited_and_the_default_campaign_keeps_its_tags_in_the_environment(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(HASHTAGS="CEADAY21", DIGEST_TO="vrn@partner.example")
    _add(engine, settings, "force-b", ["ForceB"], platforms=["mastodon"])
    campaign = _campaign(engine, settings, "force-b")
    with session_scope(engine) as session:
        edit_campaign(
            session,
            settings,
            "force-b",
            dataclasses.replace(
                as_new(campaign, settings),
                name="Force B North",
                hashtags=["ForceB", "KnifeFree"],
                platforms=["bluesky"],
                digest_to=["b@force-b.example"],
                digest_time="07:15",
            ),
            actor="admin",
        )
    with Session(engine) as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "campaign_edited")).one()
    assert event.campaign_id == campaign.id and event.actor == "admin"
    assert event.detail is not None
    assert (event.detail["tags_added"], event.detail["tags_removed"]) == (["KnifeFree"], [])
    assert (event.detail["platforms_added"], event.detail["platforms_removed"]) == (
        ["bluesky"],
        ["mastodon"],
    )
    assert event.reason is not None and "digest_time - -> 07:15" in event.reason
    plan = digest_of(_campaign(engine, settings, "force-b"), settings)
    assert (plan.recipients, plan.time) == (("b@force-b.example",), "07:15")

    default = as_new(_campaign(engine, settings, None), settings)
    for refused in ({"hashtags": ["CEADAY22"]}, {"platforms": ["bluesky"]}):
        with session_scope(engine) as session, pytest.raises(UserError, match="HASHTAGS and"):
            edit_campaign(
                session,
                settings,
                "default",
                dataclasses.replace(default, **refused),
                actor="a",  # type: ignore[arg-type]
            )
    with session_scope(engine) as session:
        edit_campaign(
            session,
            settings,
            "default",
            dataclasses.replace(
                default, digest_to=["own@vrn.example"], digest_from="d@vrn.example"
            ),
            actor="admin",
        )
    plan = digest_of(_campaign(engine, settings, None), settings)
    assert (plan.recipients, plan.sender, plan.time) == (
        ("own@vrn.example",),
        "d@vrn.example",
        "08:00",
    )


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    with SmtpCapture() as server:
        yield server


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return at(day, hour, minute).astimezone(UTC)


def test_each_campaign_gets_its_own_digest_at_its_time_once_for_each_of_its_days(
    sqlite_engine: Engine, configure: Callable[..., Settings], smtp: SmtpCapture
) -> None:
    """The lifecycle on a clock the test sets: upcoming, running, ended, archived."""
    engine = sqlite_engine
    settings = mail_settings(
        configure, smtp.port, HASHTAGS="CEADAY21", DIGEST_TO="vrn@partner.example"
    )
    _add(
        engine,
        settings,
        "force-b",
        ["ForceB"],
        starts_on=FIRST,
        ends_on=LAST,
        digest_to=["b1@force-b.example", "b2@force-b.example"],
        digest_from="Force B <digest@force-b.example>",
        digest_time="06:30",
    )
    _add(engine, settings, "force-c", ["ForceC"])  # no recipients: no digest
    _store(engine, settings, ("ForceB", at(FIRST, 10)), ("CEADAY21", at(FIRST, 11)))

    def run(day: date, hour: int, minute: int = 0) -> list[tuple[str, date, str]]:
        outcomes = send_due_digest(engine=engine, settings=settings, now=_local(day, hour, minute))
        return [(o.campaign, o.day, o.status) for o in outcomes]

    # The morning of its first day: Force B has no day behind it; the default's is due.
    assert run(FIRST, 7) == [("default", FIRST - timedelta(days=2), SENT)]
    assert run(FIRST, 8) == [
        ("default", FIRST - timedelta(days=1), SENT)  # 08:00: the default's time
    ]
    assert run(FIRST + timedelta(days=1), 6, 29) == [
        ("default", FIRST - timedelta(days=1), "already sent")
    ]
    assert run(FIRST + timedelta(days=1), 6, 30) == [
        ("default", FIRST - timedelta(days=1), "already sent"),
        ("force-b", FIRST, SENT),
    ]
    assert run(FIRST + timedelta(days=1), 7) == [
        ("default", FIRST - timedelta(days=1), "already sent"),
        ("force-b", FIRST, "already sent"),
    ]
    [b_mail] = [m for m in smtp.messages if "force-b" in m["To"]]
    assert b_mail["From"] == "digest@force-b.example"  # as DIGEST_FROM is: the bare address
    assert b_mail["To"] == "b1@force-b.example, b2@force-b.example"
    assert b_mail["Subject"].startswith("Hashtag digest 2026-11-10 (Force FORCE-B): ")
    assert "1 new post" in b_mail["Subject"]
    assert all(m["To"] == "vrn@partner.example" for m in smtp.messages if m is not b_mail)
    b_envelope = [e for e in smtp.envelopes if "b1@force-b.example" in e.rcpt_tos]
    assert len(b_envelope) == 1 and b_envelope[0].mail_from == "digest@force-b.example"

    # Ended by a command on its second day: that day is its last, sent the morning after.
    with session_scope(engine) as session:
        end_campaign(
            session, settings, "force-b", actor="test", now=_local(LAST - timedelta(days=1), 12)
        )
    morning_after = LAST
    assert ("force-b", LAST - timedelta(days=1), SENT) in run(morning_after, 6, 45)
    assert [o for o in run(morning_after + timedelta(days=1), 7) if o[0] == "force-b"] == []
    with Session(engine) as session:
        b = get_campaign(session, settings, "force-b")
        days = sorted(
            s.day for s in session.exec(select(DigestSend).where(DigestSend.campaign_id == b.id))
        )
    assert days == [FIRST, LAST - timedelta(days=1)]


def test_an_archived_campaign_gets_no_digest(
    sqlite_engine: Engine, configure: Callable[..., Settings], smtp: SmtpCapture
) -> None:
    from monitor.services.campaigns import archive_campaign

    engine = sqlite_engine
    settings = mail_settings(configure, smtp.port, HASHTAGS="CEADAY21", DIGEST_TO="")
    _add(engine, settings, "force-b", ["ForceB"], digest_to=["b@force-b.example"])
    with session_scope(engine) as session:
        end_campaign(session, settings, "force-b", actor="t", now=_local(FIRST, 12))
        archive_campaign(session, settings, "force-b", actor="t", now=_local(FIRST, 13))
    assert send_due_digest(engine=engine, settings=settings, now=_local(FIRST, 23)) == []
    assert smtp.messages == []


def test_the_sends_on_record_before_the_upgrade_are_the_default_campaigns(
    db_url: str, configure: Callable[..., Settings]
) -> None:
    """Migration 0019: a day sent before it is not sent again after it."""
    from alembic import command

    from monitor.db import _alembic_config, create_db_engine, upgrade

    engine = create_db_engine(db_url)
    for revision in ("0017", "0018"):
        command.upgrade(_alembic_config(engine), revision)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO digest_sends (day, sent_at, recipients, status, forced)"
                " VALUES (:day, :at, 'vrn@partner.example', 'sent', false)"
            ),
            {"day": FIRST, "at": datetime(2026, 11, 11, 8, tzinfo=UTC).replace(tzinfo=None)},
        )
    upgrade(engine)
    settings = configure(HASHTAGS="CEADAY21", SMTP_HOST="127.0.0.1", DIGEST_FROM="d@vrn.example",
                         DIGEST_TO="vrn@partner.example")  # fmt: skip
    with Session(engine) as session:
        [send] = session.exec(select(DigestSend)).all()
        default = get_campaign(session, settings, None)
        assert send.campaign_id == default.id and default.digest_to is None
    outcomes = send_due_digest(
        engine=engine, settings=settings, now=_local(FIRST + timedelta(days=1), 9)
    )
    assert [(o.campaign, o.day, o.status) for o in outcomes] == [("default", FIRST, "already sent")]
    engine.dispose()
