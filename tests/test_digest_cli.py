"""``hashtag-monitor digest preview|send`` through the real entry point: exit codes,
one-line errors, and mail delivered to a local SMTP server."""

from __future__ import annotations

import email
import email.policy
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.cli import main
from monitor.config import Settings
from tests.monitor.test_digest import SCRIPT_TEXT, build_scenario
from tests.monitor.test_mail import FROM, TO, SmtpCapture
from tests.processes import free_port

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    """Run the console entry point with these arguments: (exit code, stdout, stderr).

    The command points the root logger at the captured stderr; it is put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def invoke(args: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["hashtag-monitor", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out, err = capsys.readouterr()
        code = exit_info.value.code
        return (code if isinstance(code, int) else 1), out, err

    yield invoke
    root.handlers[:] = handlers
    root.setLevel(level)


def cli_settings(
    configure: Callable[..., Settings], engine: Engine, smtp_port: int, **extra: str
) -> Settings:
    env = {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "HASHTAGS": "CEADAY21,HelpingHands",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "DIGEST_FROM": FROM,
        "DIGEST_TO": ",".join(TO),
        # The test SMTP server logs each session at INFO in this process; keep stderr for us.
        "LOG_LEVEL": "WARNING",
    }
    return configure(**{**env, **extra})


def test_preview_prints_the_text_digest(
    engine: Engine, configure: Callable[..., Settings], run: Run
) -> None:
    build_scenario(engine)
    cli_settings(configure, engine, free_port())

    code, out, err = run(["digest", "preview", "--date", "2021-03-18"])

    assert code == 0, err
    assert out.startswith("Subject: Hashtag digest 2021-03-18: potential reach not available")
    assert "4 contributors, 5 new posts," in out.splitlines()[0]
    assert SCRIPT_TEXT in out
    assert "FAILING since 2021-03-18 12:10 GMT" in out


def test_preview_out_writes_the_whole_email(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run, tmp_path: Path
) -> None:
    build_scenario(sqlite_engine)
    cli_settings(configure, sqlite_engine, free_port())
    target = tmp_path / "digest.eml"

    code, out, _ = run(["digest", "preview", "--date", "2021-03-18", "--out", str(target)])

    assert code == 0 and out.strip() == f"Wrote the digest for 2021-03-18 to {target}"
    message = email.message_from_bytes(target.read_bytes(), policy=email.policy.default)
    assert message.get_content_type() == "multipart/related"
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/related",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "image/png",
    ]


def test_preview_before_any_data_says_nothing_was_watched(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run
) -> None:
    cli_settings(configure, sqlite_engine, free_port())

    code, out, _ = run(["digest", "preview", "--date", "2001-01-01"])

    assert code == 0
    assert "0 new posts" in out and "No source has ever been polled" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "18/03/2021"], "error: '18/03/2021' is not a date: give it as YYYY-MM-DD"),
        (["--date", "2021-02-30"], "error: '2021-02-30' is not a date: give it as YYYY-MM-DD"),
        (["--date", "2999-01-01"], "error: 2999-01-01 has not ended yet in Europe/London"),
    ],
)
@pytest.mark.parametrize("command", ["preview", "send"])
def test_bad_dates_fail_with_one_line(
    sqlite_engine: Engine,
    configure: Callable[..., Settings],
    run: Run,
    command: str,
    args: list[str],
    message: str,
) -> None:
    cli_settings(configure, sqlite_engine, free_port())

    code, out, err = run(["digest", command, *args])

    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1
    assert "Traceback" not in err


def test_send_refuses_today_which_has_not_ended(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run
) -> None:
    settings = cli_settings(configure, sqlite_engine, free_port())
    today = datetime.now(settings.zone).date()

    code, _, err = run(["digest", "send", "--date", today.isoformat()])

    assert code == 2
    yesterday = (today - timedelta(days=1)).isoformat()
    assert err.strip().endswith(f"give a day up to {yesterday}")


def test_send_without_recipients_fails_with_one_line(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run
) -> None:
    cli_settings(configure, sqlite_engine, free_port(), DIGEST_TO="")

    code, _, err = run(["digest", "send", "--date", "2021-03-18"])

    assert code == 2
    assert err == "error: DIGEST_TO is empty: set it to a comma-separated list of addresses\n"


def test_send_delivers_once_and_again_only_with_force(
    engine: Engine, configure: Callable[..., Settings], run: Run
) -> None:
    build_scenario(engine)
    with SmtpCapture() as smtp:
        cli_settings(configure, engine, smtp.port)

        first = run(["digest", "send", "--date", "2021-03-18"])
        second = run(["digest", "send", "--date", "2021-03-18"])
        forced = run(["digest", "send", "--date", "2021-03-18", "--force"])

    assert first == (0, f"Sent the digest for 2021-03-18 to {', '.join(TO)}.\n", "")
    assert second[0] == 0
    assert "already sent; use --force to send it again" in second[1]
    assert forced[0] == 0 and forced[1].startswith("Sent the digest")
    assert len(smtp.messages) == 2
    assert "4 contributors, 5 new posts" in smtp.messages[0]["Subject"]


def test_send_reports_a_refused_login_in_one_line(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run
) -> None:
    with SmtpCapture(password="right") as smtp:
        cli_settings(configure, sqlite_engine, smtp.port, SMTP_USERNAME="u", SMTP_PASSWORD="wrong")
        code, _, err = run(["digest", "send", "--date", "2021-03-18"])

    assert code == 2
    assert err.startswith("error: digest not sent: SMTP 535") and err.count("\n") == 1
    code, out, _ = run(["status"])
    assert code == 0
    assert out.startswith("digest for 2021-03-18: NOT SENT: digest not sent: SMTP 535")


def test_preview_out_to_a_missing_folder_fails_with_one_line(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run, tmp_path: Path
) -> None:
    cli_settings(configure, sqlite_engine, free_port())
    target = tmp_path / "no-such-folder" / "digest.eml"

    code, _, err = run(["digest", "preview", "--date", "2021-03-18", "--out", str(target)])

    assert code == 2
    assert err == f"error: cannot write {target}: No such file or directory\n"


def test_preview_out_html_writes_a_page_with_the_chart_inlined(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run, tmp_path: Path
) -> None:
    build_scenario(sqlite_engine)
    cli_settings(configure, sqlite_engine, free_port())
    target = tmp_path / "digest.html"

    code, out, err = run(["digest", "preview", "--date", "2021-03-18", "--out", str(target)])

    assert code == 0, err
    page = target.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "MIME-Version" not in page and "cid:" not in page
    assert 'src="data:image/png;base64,' in page


def test_preview_refuses_an_out_file_it_cannot_name_the_format_of(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run, tmp_path: Path
) -> None:
    cli_settings(configure, sqlite_engine, free_port())
    target = tmp_path / "digest.pdf"

    code, _, err = run(["digest", "preview", "--date", "2021-03-18", "--out", str(target)])

    assert code == 2 and err == f"error: --out {target}: name a .html or .eml file\n"
    assert not target.exists()


def test_preview_date_defaults_to_yesterday_in_the_configured_zone(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run
) -> None:
    settings = cli_settings(configure, sqlite_engine, free_port())
    yesterday = datetime.now(settings.zone).date() - timedelta(days=1)

    code, out, err = run(["digest", "preview"])

    assert code == 0, err
    assert out.startswith(f"Subject: Hashtag digest {yesterday.isoformat()}:")


def test_a_campaigns_digest_and_report_from_the_command_line_are_its_own(
    sqlite_engine: Engine, configure: Callable[..., Settings], run: Run, tmp_path: Path
) -> None:
    """``--campaign`` on digest preview, digest send and report; ``campaigns edit`` sets
    where its digest goes. Nothing of the default campaign's is in Force B's."""
    build_scenario(sqlite_engine)  # the default campaign's posts and decisions
    with sqlite_engine.begin() as connection:  # placed there, as ingestion places them
        connection.execute(
            sa.text(
                "INSERT INTO campaign_posts (campaign_id, post_id, status, created_at)"
                " SELECT campaigns.id, posts.id, posts.status, posts.created_at"
                " FROM posts, campaigns WHERE campaigns.is_default"
            )
        )
    with SmtpCapture() as smtp:
        cli_settings(configure, sqlite_engine, smtp.port)
        added = run(["campaigns", "add", "force-b", "--name", "Force B", "--hashtags", "ForceB",
                     "--digest-to", "not-an-address"])  # fmt: skip
        assert added[0] == 2 and "--digest-to: 'not-an-address' is not an email address" in added[2]
        assert (
            run(["campaigns", "add", "force-b", "--name", "Force B", "--hashtags", "ForceB"])[0]
            == 0
        )
        unsent = run(["digest", "send", "--date", "2021-03-18", "--campaign", "force-b"])
        assert unsent[0] == 2 and "campaign 'force-b' has no digest recipients" in unsent[2]
        code, out, err = run(["campaigns", "edit", "force-b", "--digest-to", "b@force-b.example",
                              "--digest-time", "06:30",
                              "--hashtags", "ForceB,KnifeFree"])  # fmt: skip
        assert code == 0, err
        assert (
            "Changed campaign force-b: hashtag #KnifeFree added; digest_to - -> b@force-b.example;"
            in out
        )
        assert "digest: b@force-b.example at 06:30 from digest@vrn.example" in out
        refused = run(["campaigns", "edit", "default", "--hashtags", "Other"])
        assert refused[0] == 2 and "HASHTAGS and PLATFORMS" in refused[2]
        assert run(["campaigns", "edit", "force-b"])[2].startswith("error: give what to change")

        code, out, _ = run(["digest", "preview", "--date", "2021-03-18", "--campaign", "force-b"])
        assert code == 0
        assert "Subject: Hashtag digest 2021-03-18 (Force B): " in out and "0 new posts" in out
        # Its tags of that day: #KnifeFree was added since.
        assert "#ForceB" in out and "#KnifeFree" not in out
        assert "#CEADAY21" not in out and SCRIPT_TEXT not in out
        default = run(["digest", "preview", "--date", "2021-03-18"])[1]
        assert "(Default campaign)" in default and "#CEADAY21" in default

        sent = run(["digest", "send", "--date", "2021-03-18", "--campaign", "force-b"])
        assert sent == (0, "Sent the digest for 2021-03-18 to b@force-b.example.\n", "")
        [message] = smtp.messages
        assert message["To"] == "b@force-b.example" and "(Force B)" in message["Subject"]

    out = tmp_path / "b.csv"
    code, said, _ = run(
        ["report", "--from", "2021-03-18", "--campaign", "force-b", "--out", str(out)]
    )
    assert code == 0 and "Wrote the campaign report" in said
    report = out.read_text()
    assert "headline,posts,0," in report and "alice:approved" not in report
    run(["report", "--from", "2021-03-18", "--out", str(tmp_path / "default.csv")])
    assert "alice:approved" in (tmp_path / "default.csv").read_text()
