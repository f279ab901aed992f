"""The digest's figures against fixture data whose answers are worked out here, by hand
and by plain Python over the same fixture lists (never by the code under test)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import AuditEvent, EngagementSnapshot, PollRun, Post, PostHashtag, Source
from monitor.services.digest import Format, Period, _local_hours, compute_digest, parse_day

LONDON = ZoneInfo("Europe/London")
DAY = date(2021, 3, 18)  # GMT: local time equals UTC, so the hand-worked hours are plain
NOW = datetime(2021, 3, 19, 8, 0, tzinfo=UTC)
METRIC_NAMES = ("likes", "shares", "replies", "quotes", "views")


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A local wall-clock time in London as an aware datetime."""
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=LONDON)


@dataclasses.dataclass
class PostSpec:
    key: str
    platform: str
    author: str
    created: datetime
    tags: tuple[str, ...] = ("ceaday21",)
    status: str = "pending"
    text: str = "A post about #CEADAY21"
    author_name: str = "Someone"
    flagged: bool = False
    first_seen: datetime | None = None
    #: (taken_at, likes, shares, replies, quotes, views)
    snapshots: list[tuple[datetime, int | None, ...]] = dataclasses.field(default_factory=list)


def add_posts(engine: Engine, specs: list[PostSpec]) -> dict[str, int]:
    """Store posts, their hashtags and snapshots; Post's counters are the last snapshot's."""
    ids: dict[str, int] = {}
    with Session(engine) as session:
        for spec in specs:
            last = max(spec.snapshots, key=lambda s: s[0]) if spec.snapshots else None
            post = Post(
                platform=spec.platform,
                external_id=spec.key,
                ref=f"{spec.platform}:{spec.key}",
                url=f"https://{spec.platform}.example/{spec.key}",
                author_handle=spec.author,
                author_name=spec.author_name,
                text=spec.text,
                html=spec.text,
                content_hash=spec.key,
                created_at=spec.created,
                first_seen_at=spec.first_seen or spec.created + timedelta(minutes=5),
                last_seen_at=spec.created + timedelta(minutes=5),
                status=spec.status,
                flagged=spec.flagged,
                **dict(zip(METRIC_NAMES, last[1:], strict=True)) if last else {},
            )
            session.add(post)
            session.flush()
            assert post.id is not None
            ids[spec.key] = post.id
            session.add_all(PostHashtag(post_id=post.id, tag=tag) for tag in spec.tags)
            session.add_all(
                EngagementSnapshot(
                    post_id=post.id, taken_at=s[0], **dict(zip(METRIC_NAMES, s[1:], strict=True))
                )
                for s in spec.snapshots
            )
        session.commit()
    return ids


def add_source(
    engine: Engine,
    key: str,
    platform: str,
    *,
    ok_hours: list[int],
    failed_hours: tuple[int, ...] = (),
    day: date = DAY,
    hashtags: str = "ceaday21,helpinghands",
    disabled_reason: str | None = None,
    failing_since: datetime | None = None,
    last_error: str | None = None,
    gap_hour: int | None = None,
) -> None:
    """A source with one poll run at HH:10 (UTC hours from the day's start) per listed hour."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=LONDON).astimezone(UTC)
    last_ok = start + timedelta(hours=max(ok_hours), minutes=10) if ok_hours else None
    with Session(engine) as session:
        source = Source(
            key=key,
            platform=platform,
            hashtags=hashtags,
            disabled_reason=disabled_reason,
            last_success_at=last_ok,
            failures_in_row=len(failed_hours),
            failing_since=failing_since,
            last_error=last_error,
        )
        session.add(source)
        session.flush()
        for hour, ok in [(h, True) for h in ok_hours] + [(h, False) for h in failed_hours]:
            started = start + timedelta(hours=hour, minutes=10)
            session.add(
                PollRun(
                    source_id=source.id,
                    started_at=started,
                    finished_at=started + timedelta(seconds=2),
                    ok=ok,
                    error=None if ok else last_error,
                    gap="results older than the API allows" if hour == gap_hour else None,
                )
            )
        session.commit()


def add_event(engine: Engine, post_id: int | None, when: datetime, action: str) -> None:
    to_status = {"approve": "approved", "reject": "rejected"}.get(action)
    with Session(engine) as session:
        session.add(
            AuditEvent(
                post_id=post_id,
                at=when,
                actor="alice" if to_status else "system",
                action=action,
                from_status="pending" if to_status else None,
                to_status=to_status,
            )
        )
        session.commit()


SCRIPT_TEXT = '<b>Helping</b> hands <script>alert("x")</script> & more #CEADAY21'
SCRIPT_AUTHOR = "Ann <img src=x onerror=alert(1)>"


def scenario_posts() -> list[PostSpec]:
    """18 March 2021 and the days around it; see each line for what it exercises."""
    d = DAY
    posts = [
        # The day itself: 3 on mastodon (authors a, a, b), 2 on bluesky (a, c).
        PostSpec(
            "p1",
            "mastodon",
            "@a",
            at(d, 9),
            ("ceaday21", "helpinghands"),
            "approved",
            text=SCRIPT_TEXT,
            author_name=SCRIPT_AUTHOR,
            first_seen=at(d, 9, 5),
            snapshots=[
                (at(d, 9, 5), 1, 0, 0, None, None),
                (at(d, 20), 10, 2, 1, None, None),
                (at(d + timedelta(days=1), 1), 50, 2, 1, None, None),  # after the day
            ],
        ),
        PostSpec(
            "p3",
            "mastodon",
            "@a",
            at(d, 11),
            status="rejected",
            first_seen=at(d, 11, 5),
            snapshots=[(at(d, 11, 5), 3, 0, 0, None, None)],
        ),
        PostSpec("p4", "mastodon", "@b", at(d, 9, 30), ("helpinghands",)),
        PostSpec(
            "p2",
            "bluesky",
            "@a",
            at(d, 13),
            status="pending",
            text="Pending: never quoted",
            flagged=True,
            first_seen=at(d, 13, 30),
            snapshots=[(at(d, 13, 30), 10_000_000, 5, 2, 1, None)],
        ),
        PostSpec("p6", "bluesky", "@c", at(d, 13, 59, 59), ("ceaday21", "other")),
        # An older approved post that keeps gaining: 7 likes before the day, 9 at its end.
        PostSpec(
            "p0",
            "mastodon",
            "@a",
            at(d - timedelta(days=3), 10),
            status="approved",
            text="Older approved post",
            snapshots=[
                (at(d - timedelta(days=3), 10, 5), 5, 1, 0, None, None),
                (at(d - timedelta(days=1), 23), 7, 1, 0, None, None),
                (at(d, 10), 9, 3, 0, None, None),
            ],
        ),
        # The day before: two posts; flagged, but not on the day.
        PostSpec("q1", "mastodon", "@z", at(d - timedelta(days=1), 8), flagged=True),
        PostSpec("q2", "mastodon", "@z", at(d - timedelta(days=1), 23, 59, 59)),
        # Just outside the day on either side.
        PostSpec("edge-next", "mastodon", "@z", at(d + timedelta(days=1), 0)),
        PostSpec("too-old", "mastodon", "@z", at(d - timedelta(days=8), 12)),
    ]
    # One post on each of the six days before the day before.
    posts += [
        PostSpec(f"w{k}", "mastodon", "@w", at(d - timedelta(days=k), 12), ("helpinghands",))
        for k in range(2, 8)
    ]
    return posts


def build_scenario(engine: Engine) -> dict[str, int]:
    """The posts above, three sources (one failing from noon, one disabled), and decisions."""
    ids = add_posts(engine, scenario_posts())
    add_source(engine, "mastodon:https://m.example", "mastodon", ok_hours=list(range(24)))
    add_source(
        engine,
        "bluesky:*",
        "bluesky",
        ok_hours=list(range(12)),
        failed_hours=tuple(range(12, 24)),
        failing_since=at(DAY, 12, 10),
        last_error="HTTP 503 from bsky.social",
    )
    add_source(
        engine,
        "x:*",
        "x",
        ok_hours=[],
        hashtags="",
        disabled_reason="X_BEARER_TOKEN is not set",
        last_error="X_BEARER_TOKEN is not set",
    )
    add_event(engine, ids["p0"], at(DAY, 8), "approve")
    add_event(engine, ids["p1"], at(DAY, 10, 5), "approve")
    add_event(engine, ids["p3"], at(DAY, 12), "reject")
    add_event(engine, ids["q1"], at(DAY - timedelta(days=1), 12), "approve")  # not on the day
    add_event(engine, ids["p2"], at(DAY, 15), "takedown_requested")
    add_event(engine, ids["w2"], at(DAY, 16), "deleted_at_source")
    return ids


def local_day(moment: datetime) -> date:
    return moment.astimezone(LONDON).date()


def count_posts(specs: list[PostSpec], day: date, platform: str | None = None) -> int:
    return sum(
        1
        for s in specs
        if local_day(s.created) == day and (platform is None or s.platform == platform)
    )


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure(HASHTAGS="CEADAY21,HelpingHands")


def test_post_counts_match_an_independent_count(engine: Engine, settings: Settings) -> None:
    build_scenario(engine)
    specs = scenario_posts()
    with Session(engine) as session:
        digest = compute_digest(session, settings, DAY, now=NOW)

    assert digest.posts.value == count_posts(specs, DAY) == 5
    assert digest.posts.previous == count_posts(specs, DAY - timedelta(days=1)) == 2
    week = [count_posts(specs, DAY - timedelta(days=k)) for k in range(1, 8)]
    assert digest.posts.average == pytest.approx(sum(week) / 7) == pytest.approx(9 / 7)  # p0 too
    assert digest.posts.change == 3
    assert digest.posts.change_pct == pytest.approx(150.0)
    assert digest.platforms["mastodon"].value == count_posts(specs, DAY, "mastodon") == 3
    assert digest.platforms["bluesky"].value == 2
    assert digest.platforms["x"].value == 0
    on_day = [s for s in specs if local_day(s.created) == DAY]
    assert digest.authors.value == len({(s.platform, s.author) for s in on_day}) == 4
    assert digest.hashtags["CEADAY21"].value == sum("ceaday21" in s.tags for s in on_day) == 4
    assert digest.hashtags["HelpingHands"].value == 2
    assert set(digest.hashtags) == {"CEADAY21", "HelpingHands"}  # "other" is not a campaign tag
    assert digest.hashtags["HelpingHands"].average == pytest.approx(6 / 7)


def test_engagement_gained_is_last_in_day_minus_last_before(
    engine: Engine, settings: Settings
) -> None:
    build_scenario(engine)
    with Session(engine) as session:
        digest = compute_digest(session, settings, DAY, now=NOW)

    # p1 10-0 (first seen on the day), p0 9-7, p2 10,000,000-0, p3 3-0
    assert digest.gains["likes"] == 10 + 2 + 10_000_000 + 3
    assert digest.gains["shares"] == 2 + 2 + 5 + 0
    assert digest.gains["replies"] == 1 + 0 + 2 + 0
    assert digest.gains["quotes"] == 1  # only bluesky gives quotes
    assert digest.gains["views"] is None  # nobody gives views: not available, never 0
    assert digest.gains_by_platform["mastodon"] == {
        "likes": 15,
        "shares": 4,
        "replies": 1,
        "quotes": None,
        "views": None,
    }
    # Campaign totals are the posts' counters as last seen (p1 reached 50 after the day).
    assert digest.totals == {
        "likes": 50 + 3 + 10_000_000 + 9,
        "shares": 2 + 0 + 5 + 3,
        "replies": 1 + 0 + 2 + 0,
        "quotes": 1,
        "views": None,
    }
    assert Format.count(digest.gains["views"]) == "not available"
    assert Format.count(digest.gains["likes"]) == "10,000,015"


def test_top_posts_quote_only_approved_ones(engine: Engine, settings: Settings) -> None:
    build_scenario(engine)
    with Session(engine) as session:
        digest = compute_digest(session, settings, DAY, now=NOW)

    ranked = [(t.platform, t.status, t.gained, t.quoted) for t in digest.top_posts]
    assert ranked == [
        ("bluesky", "pending", 10_000_008, False),
        ("mastodon", "approved", 13, True),
        ("mastodon", "approved", 4, True),
        ("mastodon", "rejected", 3, False),
    ]
    pending = digest.top_posts[0]
    assert pending.text is None and pending.url is None and pending.author_handle is None
    assert digest.top_posts[1].text == SCRIPT_TEXT
    assert digest.top_posts[1].url == "https://mastodon.example/p1"


def test_moderation_figures(engine: Engine, settings: Settings) -> None:
    build_scenario(engine)
    specs = {s.key: s for s in scenario_posts()}
    with Session(engine) as session:
        digest = compute_digest(session, settings, DAY, now=NOW)

    waits = [
        at(DAY, 8) - (specs["p0"].created + timedelta(minutes=5)),
        at(DAY, 10, 5) - at(DAY, 9, 5),
        at(DAY, 12) - at(DAY, 11, 5),
    ]
    pending = [s for s in specs.values() if s.status == "pending"]
    oldest = min(s.first_seen or s.created + timedelta(minutes=5) for s in pending)
    m = digest.moderation
    assert (m.decisions, m.approved, m.rejected) == (3, 2, 1)
    assert m.median_decision_time == statistics.median(waits) == timedelta(hours=1)
    assert m.pending == len(pending)
    assert m.oldest_pending_age == NOW - oldest
    assert m.flagged == 1  # q1 was flagged the day before
    assert m.removed_at_source == 1
    assert m.takedown_requests == 1


def test_a_source_failing_half_the_day_marks_its_figures_incomplete(
    engine: Engine, settings: Settings
) -> None:
    build_scenario(engine)
    with Session(engine) as session:
        digest = compute_digest(session, settings, DAY, now=NOW)

    coverage = {c.platform: c for c in digest.coverage}
    assert coverage["mastodon"].complete and coverage["mastodon"].hours_polled == 24
    bluesky = coverage["bluesky"]
    assert (bluesky.state, bluesky.hours_polled, bluesky.hours_expected) == ("failing", 12, 24)
    assert bluesky.health.since == at(DAY, 12, 10)
    assert bluesky.health.last_error == "HTTP 503 from bsky.social"
    assert bluesky.failed_polls == 12 and not bluesky.complete
    assert coverage["x"].state == "disabled" and not coverage["x"].complete
    assert coverage["x"].health.disabled_reason == "X_BEARER_TOKEN is not set"
    assert not digest.platforms["mastodon"].incomplete
    assert digest.platforms["bluesky"].incomplete and digest.platforms["x"].incomplete
    assert digest.posts.incomplete and digest.incomplete
    assert digest.hashtags["CEADAY21"].incomplete
    assert "INCOMPLETE: 2 source(s) not watched" in digest.headline


def test_a_reported_gap_makes_a_fully_polled_source_incomplete(
    engine: Engine, settings: Settings
) -> None:
    add_source(
        engine, "mastodon:https://m.example", "mastodon", ok_hours=list(range(24)), gap_hour=3
    )
    with Session(engine) as session:
        digest = compute_digest(session, settings, DAY, now=NOW)

    (source,) = digest.coverage
    assert source.gaps == ("results older than the API allows",)
    assert source.hours_polled == 24 and not source.complete and digest.incomplete


def test_a_day_with_no_posts_and_no_sources_says_nothing_was_watched(
    engine: Engine, settings: Settings
) -> None:
    with Session(engine) as session:
        digest = compute_digest(session, settings, date(2020, 1, 1), now=NOW)

    assert digest.posts.value == 0 and digest.posts.change_pct is None
    assert digest.top_posts == [] and digest.coverage == []
    assert all(value is None for value in digest.gains.values())
    assert digest.incomplete and digest.posts.incomplete
    assert digest.headline.endswith("; INCOMPLETE: no source was watched")
    assert [b.posts for b in digest.daily] == [0] * 14
    assert len(digest.hourly) == 24


def test_spring_forward_day_has_23_hours(engine: Engine, settings: Settings) -> None:
    day = date(2021, 3, 28)
    utc = [
        datetime(2021, 3, 27, 23, 59, tzinfo=UTC),  # 23:59 GMT on the 27th: out
        datetime(2021, 3, 28, 0, 0, tzinfo=UTC),  # 00:00 GMT: first instant of the day
        datetime(2021, 3, 28, 0, 30, tzinfo=UTC),  # 00:30 GMT
        datetime(2021, 3, 28, 2, 30, tzinfo=UTC),  # 03:30 BST (01:00-02:00 never happened)
        datetime(2021, 3, 28, 22, 59, 59, tzinfo=UTC),  # 23:59:59 BST: last second of the day
        datetime(2021, 3, 28, 23, 0, tzinfo=UTC),  # 00:00 BST on the 29th: out
    ]
    add_posts(engine, [PostSpec(f"s{i}", "mastodon", "@a", t) for i, t in enumerate(utc)])
    add_source(engine, "mastodon:*", "mastodon", ok_hours=list(range(23)), day=day)
    with Session(engine) as session:
        digest = compute_digest(session, settings, day, now=NOW + timedelta(days=30))

    assert digest.period.hours == 23 and len(digest.hourly) == 23
    assert [b.label for b in digest.hourly][:3] == ["00:00", "02:00", "03:00"]
    assert digest.posts.value == 4
    assert {b.label: b.posts for b in digest.hourly if b.posts} == {
        "00:00": 2,
        "03:00": 1,
        "23:00": 1,
    }
    assert digest.coverage[0].hours_expected == 23 and digest.coverage[0].complete


def test_fall_back_day_has_25_hours_and_shows_one_oclock_twice(
    engine: Engine, settings: Settings
) -> None:
    day = date(2021, 10, 31)
    utc = [
        datetime(2021, 10, 30, 22, 59, tzinfo=UTC),  # 23:59 BST on the 30th: out
        datetime(2021, 10, 30, 23, 30, tzinfo=UTC),  # 00:30 BST on the 31st
        datetime(2021, 10, 31, 0, 30, tzinfo=UTC),  # 01:30 BST
        datetime(2021, 10, 31, 1, 30, tzinfo=UTC),  # 01:30 GMT, an hour later
        datetime(2021, 10, 31, 23, 30, tzinfo=UTC),  # 23:30 GMT
        datetime(2021, 11, 1, 0, 0, tzinfo=UTC),  # 00:00 GMT on 1 November: out
    ]
    add_posts(engine, [PostSpec(f"f{i}", "mastodon", "@a", t) for i, t in enumerate(utc)])
    with Session(engine) as session:
        digest = compute_digest(session, settings, day, now=NOW + timedelta(days=300))

    assert digest.period.hours == 25 and len(digest.hourly) == 25
    assert digest.posts.value == 4
    counts = {b.label: b.posts for b in digest.hourly}
    assert counts["01:00 BST"] == 1 and counts["01:00 GMT"] == 1
    assert counts["00:00"] == 1 and counts["23:00"] == 1
    assert digest.daily[-1] == digest.daily[-1].__class__("2021-10-31", 4)
    assert digest.daily[-2].posts == 1  # the 23:59 BST post belongs to the 30th


def test_range_compares_with_the_range_before(engine: Engine, settings: Settings) -> None:
    build_scenario(engine)
    with Session(engine) as session:
        digest = compute_digest(session, settings, DAY - timedelta(days=1), DAY, now=NOW)

    assert digest.period.days == 2 and digest.period.label == "2021-03-17 to 2021-03-18"
    assert digest.posts.value == 5 + 2
    specs = scenario_posts()
    before = [count_posts(specs, DAY - timedelta(days=k)) for k in (2, 3)]
    assert digest.posts.previous == sum(before) == 3  # the 16th (w2), the 15th (w3, p0)
    assert len(digest.hourly) == 24


def test_the_longest_range_spans_a_clock_change(engine: Engine, settings: Settings) -> None:
    build_scenario(engine)
    with Session(engine) as session:
        digest = compute_digest(session, settings, date(2021, 3, 10), date(2021, 4, 9), now=NOW)

    assert digest.period.days == 31 and digest.period.hours == 31 * 24 - 1
    assert digest.posts.value == sum(
        1 for s in scenario_posts() if date(2021, 3, 10) <= local_day(s.created) <= date(2021, 4, 9)
    )
    assert [b.label for b in digest.hourly] == [f"{h:02d}:00" for h in range(24)]
    assert sum(b.posts for b in digest.hourly) == digest.posts.value


def test_today_counts_only_elapsed_hours_as_expected(engine: Engine, settings: Settings) -> None:
    add_source(engine, "mastodon:*", "mastodon", ok_hours=list(range(10)))
    with Session(engine) as session:
        digest = compute_digest(session, settings, DAY, now=at(DAY, 9, 30))

    assert digest.coverage[0].hours_expected == 10 and digest.coverage[0].complete


@pytest.mark.parametrize("value", ["2021-13-01", "yesterday", "", "2021-03-18; DROP TABLE"])
def test_malformed_dates_are_refused_with_the_expected_form(value: str) -> None:
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        parse_day(value)


def test_ranges_that_are_backwards_or_before_any_post_are_refused_any_length_is_not() -> None:
    with pytest.raises(UserError, match=r"ends \(2021-03-17\) before it starts"):
        Period.of(DAY, DAY - timedelta(days=1), LONDON)
    with pytest.raises(UserError, match="before any post could have been written"):
        Period.of(date(1999, 1, 1), DAY, LONDON)
    year = Period.of(DAY - timedelta(days=364), DAY, LONDON)
    assert year.days == 365 and year.hours == 365 * 24  # one spring and one autumn change


def test_formatting_reads_well() -> None:
    assert Format.count(None) == "not available"
    assert Format.count(10_000_000) == "10,000,000"
    assert Format.count(8 / 7) == "1.1"
    assert Format.change(3, 150.0) == "+3 (+150%)"
    assert Format.change(-1, -50.0) == "-1 (-50%)"
    assert Format.change(4, None) == "+4 (new)"
    assert Format.change(0, 0.0) == "0"
    assert Format.duration(timedelta(hours=70, minutes=5)) == "2d 22h"
    assert Format.duration(timedelta(minutes=55)) == "55m"
    assert Format.duration(None) == "-"
    assert Format.breakdown({"likes": 3, "shares": 0, "replies": None, "quotes": -1}) == (
        "likes +3, quotes -1"
    )


def test_decision_time_p50_and_p95_interpolate_between_the_decisions(
    engine: Engine, settings: Settings
) -> None:
    """Twenty decisions 1..20 minutes after arrival: half within 10.5, 95 in 100 within
    19.05 minutes (linear between ranks, as statistics.quantiles' inclusive method)."""
    specs = [
        PostSpec(f"d{i}", "mastodon", f"@d{i}", at(DAY, 9), first_seen=at(DAY, 9))
        for i in range(1, 21)
    ]
    ids = add_posts(engine, specs)
    for i in range(1, 21):
        add_event(engine, ids[f"d{i}"], at(DAY, 9, i), "approve")
    with Session(engine) as session:
        moderation = compute_digest(session, settings, DAY, now=NOW).moderation
    waits = [60.0 * i for i in range(1, 21)]
    expected = statistics.quantiles(waits, n=20, method="inclusive")
    assert moderation.decisions == 20
    assert moderation.median_decision_time == timedelta(minutes=10, seconds=30)
    assert moderation.p95_decision_time == timedelta(seconds=expected[-1])


@pytest.mark.parametrize(
    "zone", ["Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
)
def test_a_range_local_hours_are_the_hour_by_hour_ones(zone: str) -> None:
    """Worked out a day at a time, the local hour of each hour of a range across both
    clock changes is what converting every hour gives (Lord Howe moves by half an hour)."""
    tz = ZoneInfo(zone)
    period = Period.of(date(2021, 1, 1), date(2021, 12, 31), tz)
    brute = [(period.start + timedelta(hours=h)).astimezone(tz).hour for h in range(period.hours)]
    assert _local_hours(period, tz) == brute
