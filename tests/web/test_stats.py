"""``/stats``: the digest's numbers for viewers and up, the chart, the CSV, bad input."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.models import DigestSend, Source, utcnow
from monitor.web.app import create_app
from tests.monitor.test_digest import build_scenario
from tests.web.auth_helpers import TestClient, login, make_user

DAY_QUERY = "from=2021-03-18"


@pytest.fixture
def app(sqlite_engine: Engine, configure: Callable[..., Settings]) -> FastAPI:
    build_scenario(sqlite_engine)
    make_user(sqlite_engine, "vi", "viewer")
    make_user(sqlite_engine, "mo", "moderator")
    return create_app(configure(HASHTAGS="CEADAY21,HelpingHands"), engine=sqlite_engine)


def csv_rows(text: str) -> dict[tuple[str, str], list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "section",
        "name",
        "value",
        "period_before",
        "average_of_7_before",
        "incomplete",
    ]
    return {(row[0], row[1]): row[2:] for row in rows[1:]}


def test_a_viewer_sees_the_digest_numbers_for_a_day(viewer: TestClient) -> None:
    page = viewer.get(f"/stats?{DAY_QUERY}")

    assert page.status_code == 200
    html = page.text
    assert "<h1>Stats for 2021-03-18</h1>" in html
    assert "These figures are incomplete." in html
    assert "<td>5</td><td>2</td><td>+3 (+150%)</td>" in html  # all posts, day before, change
    assert "<td>10,000,015</td>" in html and "not available" in html
    assert "Failing since 2021-03-18 12:10 GMT" in html and "<td>12 of 24; 12 failed" in html
    assert "<strong>Disabled</strong> (X_BEARER_TOKEN is not set)" in html
    # The approved post is quoted, escaped; the pending one is counted only.
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html and "<script>" not in html
    assert "Pending: never quoted" not in html
    assert f'src="/stats/chart.png?{DAY_QUERY}&amp;to=2021-03-18"' in html
    assert f'href="/stats.csv?{DAY_QUERY}&amp;to=2021-03-18"' in html


def test_a_moderator_may_see_stats_too(client: TestClient) -> None:
    login(client, "mo")

    assert client.get(f"/stats?{DAY_QUERY}").status_code == 200


def test_stats_need_a_login(client: TestClient) -> None:
    page = client.get(
        f"/stats?{DAY_QUERY}", headers={"accept": "text/html"}, follow_redirects=False
    )
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert client.get("/stats.csv").status_code == 401
    assert client.get("/stats/chart.png").status_code == 401


def test_a_range_is_compared_with_the_range_before(viewer: TestClient) -> None:
    page = viewer.get("/stats?from=2021-03-17&to=2021-03-18")

    assert page.status_code == 200
    assert "<h1>Stats for 2021-03-17 to 2021-03-18</h1>" in page.text
    assert "<td>7</td><td>3</td><td>+4 (+133%)</td>" in page.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=18-03-2021", "&#39;18-03-2021&#39; is not a date: give it as YYYY-MM-DD"),
        ("from=2999-01-01", "2999-01-01 has not ended yet in Europe/London"),
        ("from=2021-03-18&to=2021-03-01", "the range ends before it starts"),
        ("from=2021-01-01&to=2021-03-18", "give a range of at most 31 days"),
        ("from=%3Cscript%3E", "&#39;&lt;script&gt;&#39; is not a date"),
    ],
)
def test_bad_dates_are_explained_and_nothing_else_is_shown(
    viewer: TestClient, query: str, message: str
) -> None:
    page = viewer.get(f"/stats?{query}")

    assert page.status_code == 400
    assert message in page.text
    assert "<h2>New posts</h2>" not in page.text and "<script>" not in page.text


def test_the_chart_is_a_png(viewer: TestClient) -> None:
    response = viewer.get(f"/stats/chart.png?{DAY_QUERY}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert viewer.get("/stats/chart.png?from=nope").status_code == 400


def test_the_csv_has_the_same_numbers(viewer: TestClient) -> None:
    response = viewer.get(f"/stats.csv?{DAY_QUERY}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="stats-2021-03-18-2021-03-18.csv"' in response.headers["content-disposition"]
    rows = csv_rows(response.text)
    assert rows[("posts", "all")] == ["5", "2", "1.29", "yes"]
    assert rows[("platform", "mastodon")] == ["3", "2", "1.29", "no"]
    assert rows[("gained", "likes")][0] == "10000015"
    assert rows[("gained", "views")][0] == "not available"
    assert rows[("moderation", "decisions")][0] == "3"
    failing = rows[("coverage", "bluesky:*")]
    assert failing[0] == (
        "Failing since 2021-03-18 12:10 GMT (last error: HTTP 503 from bsky.social)"
    )
    assert rows[("coverage", "x:*")][0] == "Disabled (X_BEARER_TOKEN is not set)"
    assert failing[1] == "12/24 hours polled" and failing[3] == "yes"
    assert len([key for key in rows if key[0] == "hour"]) == 24
    assert len([key for key in rows if key[0] == "day"]) == 14


def test_csv_cells_a_spreadsheet_would_run_are_defused(
    viewer: TestClient, sqlite_engine: Engine
) -> None:
    with Session(sqlite_engine) as session:
        session.add(Source(key='=HYPERLINK("http://evil.example")', platform="rss"))
        session.commit()

    rows = csv_rows(viewer.get(f"/stats.csv?{DAY_QUERY}").text)

    assert ("coverage", '\'=HYPERLINK("http://evil.example")') in rows
    assert not any(name.startswith("=") for _, name in rows)


def test_the_last_digest_failure_is_shown(viewer: TestClient, sqlite_engine: Engine) -> None:
    assert "No digest email has been sent yet." in viewer.get(f"/stats?{DAY_QUERY}").text
    with Session(sqlite_engine) as session:
        session.add(
            DigestSend(
                day=date(2021, 3, 18),
                sent_at=utcnow(),
                recipients="a@partner.example",
                status="failed",
                error="digest not sent: SMTP 535 <bad> credentials",
            )
        )
        session.commit()

    html = viewer.get(f"/stats?{DAY_QUERY}").text

    assert "Last digest email: 2021-03-18," in html
    assert "<strong>not sent</strong>" in html
    assert "digest not sent: SMTP 535 &lt;bad&gt; credentials" in html
