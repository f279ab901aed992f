"""``hashtag-monitor report`` and the /stats button: the PDF parsed back (its text and
page count), the CSV and the workbook read back, and the report of an empty campaign."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.web.app import create_app
from tests.monitor.test_digest import build_scenario
from tests.test_digest_cli import Run
from tests.test_digest_cli import run as run  # noqa: F401  (the fixture)
from tests.web.auth_helpers import app_client, login, make_user

RANGE = ["--from", "2021-03-12", "--to", "2021-03-18"]


@pytest.fixture
def settings(sqlite_engine: Engine, configure: Callable[..., Settings]) -> Settings:
    return configure(
        DATABASE_URL=sqlite_engine.url.render_as_string(hide_password=False),
        HASHTAGS="CEADAY21,HelpingHands",
    )


def pdf_text(path: Path) -> tuple[str, int]:
    reader = PdfReader(str(path))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def test_the_pdf_reads_back_with_every_section(
    sqlite_engine: Engine, settings: Settings, run: Run, tmp_path: Path
) -> None:
    build_scenario(sqlite_engine)
    out = tmp_path / "board.pdf"
    code, stdout, stderr = run(["report", *RANGE, "--out", str(out)])
    assert code == 0, stderr
    assert "Wrote the campaign report for 2021-03-12 to 2021-03-18" in stdout
    text, pages = pdf_text(out)
    assert 1 <= pages <= 6
    for heading in (
        "Campaign report",
        "Potential reach",
        "Contributors",
        "By platform",
        "Top approved posts",
        "Moderation",
        "Sources",
        "These figures are incomplete.",
    ):
        assert heading in text
    assert "Escalations to safeguarding" in text and "never added together" in text


def test_the_csv_and_the_workbook_read_back_the_same_figures(
    sqlite_engine: Engine, settings: Settings, run: Run, tmp_path: Path
) -> None:
    build_scenario(sqlite_engine)
    assert run(["report", *RANGE, "--out", str(tmp_path / "r.csv")])[0] == 0
    assert run(["report", *RANGE, "--out", str(tmp_path / "r.xlsx")])[0] == 0
    rows = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert rows[0] == ["section", "name", "value", "note"]
    by_key = {(r[0], r[1]): r[2] for r in rows[1:]}
    book = load_workbook(tmp_path / "r.xlsx")
    moderation = {r[0]: r[1] for r in book["moderation"].iter_rows(min_row=2, values_only=True)}
    assert str(moderation["decisions"]) == by_key[("moderation", "decisions")]
    assert by_key[("headline", "potential_reach")] == "not available"
    assert set(book.sheetnames) >= {"headline", "platform", "moderation", "coverage"}


def test_an_empty_campaign_still_makes_a_readable_report(
    settings: Settings, run: Run, tmp_path: Path
) -> None:
    out = tmp_path / "empty.pdf"
    assert run(["report", "--from", "campaign", "--out", str(out)])[0] == 0
    text, pages = pdf_text(out)
    assert pages >= 1
    assert "No posts were found" in text and "No source was configured or polled." in text


def test_a_wrong_suffix_is_one_line_and_writes_nothing(
    settings: Settings, run: Run, tmp_path: Path
) -> None:
    code, _, stderr = run(["report", *RANGE, "--out", str(tmp_path / "r.docx")])
    assert code != 0 and "name a .pdf, .csv or .xlsx file" in stderr
    assert not (tmp_path / "r.docx").exists()


def test_the_stats_page_button_downloads_the_pdf(sqlite_engine: Engine, settings: Settings) -> None:
    build_scenario(sqlite_engine)
    make_user(sqlite_engine, "vi", "viewer")
    with app_client(create_app(settings, engine=sqlite_engine)) as client:
        assert client.get("/stats/report.pdf?from=2021-03-18").status_code in (302, 303, 401)
        login(client, "vi")
        page = client.get("/stats?from=2021-03-18")
        assert 'href="/stats/report.pdf?from=2021-03-18&amp;to=2021-03-18"' in page.text
        response = client.get("/stats/report.pdf?from=2021-03-18&to=2021-03-18")
        assert response.status_code == 200 and response.content.startswith(b"%PDF")
        reader = PdfReader(io.BytesIO(response.content))
        assert "Campaign report" in reader.pages[0].extract_text()
        assert client.get("/stats/report.doc?from=2021-03-18").status_code == 404
