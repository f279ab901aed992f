"""The command line as a person uses it: output, exit codes, one-line errors."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import create_db_engine, session_scope
from monitor.models import Source, WebSession, utcnow
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import Reply
from tests.processes import CliResult


def test_poll_status_export_round_trip(cli: Callable[..., CliResult], env: FakeMastodon) -> None:
    env.add_many(3)
    assert cli("db", "upgrade")[0] == 0

    code, out, _ = cli("poll")
    assert code == 0
    assert "|CEADAY21: ok: 3 fetched, 3 new" in out

    code, out, _ = cli("status")
    assert code == 0 and "|CEADAY21  OK" in out and "failures in a row: 0" in out

    code, out, _ = cli("export", "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 3 and records[0]["status"] == "pending"
    # The followers the account entity gave at ingest (the fake gives 100 per number).
    assert all(
        r["author"]["followers"] % 100 == 0 and r["author"]["followers"] > 0 for r in records
    )

    code, out, _ = cli("export", "--format", "csv", "--status", "approved")
    assert code == 0 and out.splitlines()[0].startswith("platform,external_id")
    assert len(out.splitlines()) == 1


def test_failing_poll_exits_1_and_status_tells(
    cli: Callable[..., CliResult], env: FakeMastodon
) -> None:
    cli("db", "upgrade")
    env.server.fail("status", times=5, status=500)
    code, out, _ = cli("poll")
    assert code == 1 and "FAILED:" in out and "HTTP 500" in out
    code, out, _ = cli("status")
    assert "FAILING since" in out and "failures in a row: 1" in out and "HTTP 500" in out


def test_a_mastodon_server_closed_to_anonymous_readers_says_so_in_status(
    cli: Callable[..., CliResult], env: FakeMastodon
) -> None:
    """Mastodon 4.5 may answer 401 to an unauthenticated hashtag timeline: say what to set."""
    cli("db", "upgrade")
    refusal = Reply.json({"error": "This method requires an authenticated user"}, status=401)
    env.server.route("GET", r"/api/v1/timelines/tag/.*", lambda _r: refusal, first=True)
    code, out, _ = cli("poll")
    assert code == 1 and "FAILED:" in out
    code, out, _ = cli("status")
    assert "FAILING since" in out
    assert "requires an access token for hashtag timelines; set MASTODON_ACCESS_TOKEN" in out


def test_users_and_moderate_from_a_script(cli: Callable[..., CliResult], env: FakeMastodon) -> None:
    [status] = env.add_many(1)
    cli("db", "upgrade")
    cli("poll")
    code, out, err = cli(
        "users",
        "add",
        "alice",
        "--role",
        "moderator",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert code == 0, err
    assert cli("users", "list")[1].strip() == "alice\tmoderator\tactive"

    ref = f"mastodon:{status['uri']}"
    code, out, err = cli("moderate", "approve", ref, "--as", "alice", "--reason", "lovely")
    assert code == 0, err
    assert out.strip() == f"{ref}: pending -> approved"
    [record] = [json.loads(line) for line in cli("export")[1].splitlines()]
    assert record["decisions"][0]["by"] == "alice" and record["decisions"][0]["reason"] == "lovely"

    code, _, err = cli("moderate", "reject", "mastodon:nope", "--as", "alice", "--reason", "x")
    assert code == 2 and err.strip() == "error: no post mastodon:nope"
    cli("users", "disable", "alice")
    code, _, err = cli("moderate", "reject", ref, "--as", "alice", "--reason", "spam")
    assert code == 2 and "no active user named 'alice'" in err


def test_a_viewer_cannot_decide(cli: Callable[..., CliResult], env: FakeMastodon) -> None:
    [status] = env.add_many(1)
    cli("db", "upgrade")
    cli("poll")
    cli(
        "users",
        "add",
        "vic",
        "--role",
        "viewer",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    code, _, err = cli("moderate", "approve", f"mastodon:{status['uri']}", "--as", "vic")
    assert code == 2 and "only moderators and admins decide" in err


@pytest.mark.parametrize(
    ("args", "env_key", "env_value", "message"),
    [
        (["poll"], "POLL_INTERVAL_SECONDS", "abc", "error: POLL_INTERVAL_SECONDS: Input should be"),
        (
            ["status"],
            "DATABASE_URL",
            "postgresql+psycopg://u@127.0.0.1:1/x",
            "error: database unreachable",
        ),
        (["poll"], "DATABASE_URL", "sqlite:///./fresh.db", "error: the database is empty"),
        (
            ["backfill", "--since", "18/03/2021"],
            None,
            None,
            "error: --since '18/03/2021': give a date",
        ),
        (
            ["backfill", "--since", "2999-01-01"],
            None,
            None,
            "error: --since 2999-01-01: that day has not begun",
        ),
        (
            ["users", "add", "bob", "--role", "admin", "--password-stdin"],
            None,
            None,
            "error: password: at least 12",
        ),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env_key: str | None,
    env_value: str | None,
    message: str,
) -> None:
    if env_key is None:
        monkeypatch.setenv("DATABASE_URL", "sqlite:///./cli.db")
        cli("db", "upgrade")
    else:
        monkeypatch.setenv(env_key, env_value)
    code, _, err = cli(*args, stdin="short\n")
    assert code == 2
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_backfill_walks_back_and_resumes(cli: Callable[..., CliResult], env: FakeMastodon) -> None:
    env.add_many(90)
    cli("db", "upgrade")
    code, out, err = cli("backfill", "--since", "2000-01-01")
    assert code == 0, err
    assert "ok: 90 fetched, 90 new" in out
    code, out, _ = cli("backfill", "--since", "2000-01-01", "--platform", "mastodon")
    assert code == 0 and "90 fetched, 0 new" in out


def test_refresh_reports_per_platform(cli: Callable[..., CliResult], env: FakeMastodon) -> None:
    statuses = env.add_many(2)
    cli("db", "upgrade")
    cli("poll")
    env.delete(statuses[0]["id"])
    code, out, _ = cli("refresh")
    assert code == 0 and "mastodon: ok: 2 checked" in out and "1 removed at source" in out


def test_purge_dry_run_then_purge_and_erase(
    cli: Callable[..., CliResult], env: FakeMastodon, monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses = env.add_many(2)
    cli("db", "upgrade")
    cli("poll")
    env.delete(statuses[0]["id"])
    cli("refresh")  # the deleted one becomes "removed", kept 0 days by default

    code, out, _ = cli("purge", "--dry-run")
    assert code == 0
    assert out.splitlines() == [
        f"would delete mastodon:{statuses[0]['uri']} (removed)",
        "campaign default: 1 post(s) would go",
        "1 post(s) would be deleted.",
    ]
    assert len(cli("export")[1].splitlines()) == 2

    code, out, _ = cli("purge")
    assert code == 0 and out.strip() == "Deleted 1 post(s): 1 removed."
    assert len(cli("export")[1].splitlines()) == 1

    handle = json.loads(cli("export")[1])["author"]["handle"]
    code, out, _ = cli("erase", "--author", handle, "--platform", "mastodon")
    assert code == 0 and out.startswith("Erased 1 post(s)")
    assert cli("export")[1] == ""


def test_logs_are_json_lines_and_never_carry_a_secret(
    cli: Callable[..., CliResult], env: FakeMastodon, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "MASTODON_ACCESS_TOKEN": "tok-very-secret-123",
        "SMTP_PASSWORD": "smtp-hunter2-pass",
        "SECRET_KEY": "s3cret-key-for-sessions",
        "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
    }
    for key, value in {**secrets, "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}.items():
        monkeypatch.setenv(key, value)
    # A platform that echoes the credentials back in its error body.
    env.server.route(
        "GET",
        r"/api/v1/timelines/tag/.*",
        lambda request: Reply.json({"error": f"bad token {request.headers['authorization']}"}, 401),
        first=True,
    )
    cli("db", "upgrade")
    code, out, err = cli("poll")
    assert code == 1 and "credentials refused" in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert "bad token ***" in err
    for value in secrets.values():
        assert value not in err and value not in out


def test_a_key_set_twice_in_dotenv_is_refused(cli: Callable[..., CliResult]) -> None:
    Path(".env").write_text("HASHTAGS=CEADAY21\nPORT=8001\nhashtags=Other\n")
    code, _, err = cli("status")
    assert code == 2
    assert err.strip() == "error: .env: HASHTAGS is set twice (lines 1 and 3); keep one"


def test_run_refuses_a_media_dir_it_cannot_write(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("not-a-dir").write_text("a file where the media folder should be")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./monitor.db")
    monkeypatch.setenv("MEDIA_DIR", "not-a-dir/media")
    code, _, err = cli("run")
    assert code == 2
    assert err.startswith("error: MEDIA_DIR: cannot write to not-a-dir/media: Not a directory")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["users", "add"],
            "error: Missing argument 'name'. (see `hashtag-monitor users add --help`)",
        ),
        (
            ["users", "add", "bob", "--role", "boss"],
            "error: Invalid value for '--role': 'boss' is not one of 'viewer', 'moderator',"
            " 'admin', 'safeguarding', 'none'. (see `hashtag-monitor users add --help`)",
        ),
        (["poll", "--nope"], "error: No such option: --nope (see `hashtag-monitor poll --help`)"),
        (["no-such-command"], "error: No such command 'no-such-command'."),
    ],
)
def test_usage_errors_are_one_line_on_stderr(
    cli: Callable[..., CliResult], args: list[str], message: str
) -> None:
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err


def test_version_prints_the_installed_version(cli: Callable[..., CliResult]) -> None:
    from importlib.metadata import version

    assert cli("--version") == (0, f"hashtag-monitor {version('hashtag-monitor')}\n", "")


def test_users_add_without_a_terminal_says_to_use_password_stdin(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./cli.db")
    cli("db", "upgrade")
    code, _, err = cli("users", "add", "bob", "--role", "admin")
    assert code == 2
    assert err == "error: no terminal to ask for the password: pipe it in with --password-stdin\n"
    assert not [w for w in recwarn.list if issubclass(w.category, getpass.GetPassWarning)]


def test_status_check_exits_1_while_a_current_source_fails(
    cli: Callable[..., CliResult], env: FakeMastodon
) -> None:
    cli("db", "upgrade")
    assert cli("status", "--check")[0] == 1  # nothing polled yet: nothing is watched
    env.add_many(1)
    assert cli("poll")[0] == 0
    assert cli("status", "--check")[0] == 0

    env.server.fail("status", times=5, status=500)
    cli("poll")
    code, out, _ = cli("status", "--check", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    [source] = report["sources"]
    assert source["state"] == "failing" and source["needs_attention"] is True
    assert source["failures_in_row"] == 1 and "HTTP 500" in source["last_error"]


def test_status_check_counts_a_disabled_source_but_not_an_old_one(
    cli: Callable[..., CliResult], env: FakeMastodon, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.add_many(1)
    cli("db", "upgrade")
    env.server.fail("status", times=2, status=500)  # both tries of the first poll
    assert cli("poll")[0] == 1
    # The failing source is for a hashtag no longer watched: shown, but no alarm.
    monkeypatch.setenv("HASHTAGS", "HelpingHands")
    code, out, _ = cli("status", "--check")
    assert "[no longer configured]" in out
    cli("poll")
    assert cli("status", "--check")[0] == 0

    monkeypatch.setenv("PLATFORMS", "mastodon,x")  # x without its bearer token
    cli("poll")
    code, out, _ = cli("status", "--check", "--json")
    assert code == 1
    states = {s["platform"]: s["state"] for s in json.loads(out)["sources"] if s["current"]}
    assert states == {"mastodon": "ok", "x": "disabled"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["poll", "--platform", "bluesky"],
            "error: --platform bluesky: not enabled (enabled: mastodon); add it to PLATFORMS"
            " or set its credentials",
        ),
        (["poll", "--platform", "myspace"], "error: --platform myspace: unknown platform; known:"),
        (
            ["poll", "--tag", "Other"],
            "error: --tag Other: no running campaign watches it (watched: CEADAY21)",
        ),
        (["refresh", "--platform", "x"], "error: --platform x: not enabled"),
        (
            ["erase", "--author", "nobody", "--platform", "tiktok"],
            "error: --platform tiktok: unknown platform; known:",
        ),
    ],
)
def test_a_platform_or_tag_that_is_not_watched_is_named(
    cli: Callable[..., CliResult], env: FakeMastodon, args: list[str], message: str
) -> None:
    cli("db", "upgrade")
    code, _, err = cli(*args)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err


def test_poll_tag_accepts_any_case_and_a_hash(
    cli: Callable[..., CliResult], env: FakeMastodon
) -> None:
    env.add_many(1)
    cli("db", "upgrade")
    code, out, _ = cli("poll", "--tag", "#ceaday21")
    assert code == 0 and "|CEADAY21: ok: 1 fetched, 1 new" in out


def test_erase_says_when_nothing_matched(cli: Callable[..., CliResult], env: FakeMastodon) -> None:
    cli("db", "upgrade")
    code, out, _ = cli("erase", "--author", "nobody", "--platform", "Mastodon")
    assert code == 0
    assert out.splitlines() == [
        "Nothing matched: no post by nobody on mastodon is held.",
        "Later posts by this author come back flagged.",
    ]


def test_db_upgrade_says_whether_it_created_the_schema(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./new.db")
    assert cli("db", "upgrade")[1] == "Created the database schema on a new database.\n"
    assert cli("db", "upgrade")[1] == "Database schema is up to date.\n"


def test_make_demo_takes_a_port() -> None:
    import subprocess

    root = Path(__file__).resolve().parents[1]
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(root), "demo", "PORT=8123"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "hashtag-monitor demo --port 8123" in dry_run.stdout


def test_account_lifecycle_from_the_command_line(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlmodel import Session, select

    from monitor.db import create_db_engine
    from monitor.models import AuditEvent, User
    from monitor.services.users import verify_password

    monkeypatch.setenv("DATABASE_URL", "sqlite:///./cli.db")
    cli("db", "upgrade")
    password = "a long enough password\n"
    for name, role in (("root", "admin"), ("mo", "moderator")):
        assert cli("users", "add", name, "--role", role, "--password-stdin", stdin=password)[0] == 0

    code, out, err = cli(
        "users", "passwd", "mo", "--password-stdin", stdin="another long password\n"
    )
    assert code == 0, err
    assert out == "Changed the password of mo; their sessions have ended.\n"
    code, out, _ = cli("users", "reset", "mo")
    one_time = out.splitlines()[0].removeprefix("One-time password for mo: ")
    assert code == 0 and len(one_time) >= 12
    assert (
        cli("users", "role", "mo", "viewer")[1]
        == "mo is now a viewer; their sessions have ended.\n"
    )
    assert cli("users", "disable", "mo")[0] == 0
    assert cli("users", "enable", "mo") == (0, "Enabled mo.\n", "")
    assert cli("users", "list")[1].splitlines()[0] == "mo\tviewer\tactive"

    code, _, err = cli("users", "role", "root", "viewer")
    assert code == 2 and err == "error: root is the only active admin; make another admin first\n"
    code, _, err = cli(
        "users", "add", "system", "--role", "admin", "--password-stdin", stdin=password
    )
    assert code == 2 and "reserved" in err
    code, _, err = cli("users", "passwd", "mo")
    assert code == 2 and "--password-stdin" in err

    engine = create_db_engine("sqlite:///./cli.db")
    with Session(engine) as session:
        mo = session.exec(select(User).where(User.name == "mo")).one()
        assert mo.must_change_password and verify_password(mo.password_hash, one_time)
        actions = [e.action for e in session.exec(select(AuditEvent)) if e.actor == "cli"]
    engine.dispose()
    assert actions == [
        "user_added",
        "user_added",
        "password_set",
        "password_reset",
        "role_changed",
        "user_disabled",
        "user_enabled",
    ]


def test_serve_prints_start_up_warnings_before_anything_else(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("PORT", str(port))
        monkeypatch.setenv("OUTBOUND_ALLOW_PRIVATE", "true")
        code, out, err = cli("serve")
    assert code == 2 and out == ""
    warning, error = err.splitlines()
    assert warning.startswith("warning: OUTBOUND_ALLOW_PRIVATE=true: media fetches may reach")
    assert error.startswith(f"error: port {port} is in use")


def test_an_unparsable_dotenv_line_stops_every_command(cli: Callable[..., CliResult]) -> None:
    Path(".env").write_text("HASHTAGS=CEADAY21\nGALLERY_FRAME_ANCESTORS='self' https://a.example\n")
    code, _, err = cli("status")
    assert code == 2 and err.startswith("error: .env, line 2: cannot be read;")
    assert err.count("\n") == 1


def test_totp_off_from_the_command_line_for_a_lost_phone(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlmodel import Session, select

    from monitor.db import create_db_engine
    from monitor.models import User

    monkeypatch.setenv("DATABASE_URL", "sqlite:///./cli.db")
    cli("db", "upgrade")
    cli("users", "add", "root", "--role", "admin", "--password-stdin", stdin="x" * 20 + "\n")
    code, _, err = cli("users", "totp-off", "root")
    assert code == 2 and err == "error: root has no second factor set up\n"

    engine = create_db_engine("sqlite:///./cli.db")
    with Session(engine) as session:
        root = session.exec(select(User)).one()
        root.totp_secret = "A" * 32
        session.add(root)
        session.commit()
    assert cli("users", "totp-off", "root") == (
        0,
        "Two-factor login is off for root; their sessions have ended.\n",
        "",
    )
    with Session(engine) as session:
        assert session.exec(select(User)).one().totp_secret is None
    engine.dispose()


@pytest.mark.parametrize(
    "command",
    [("users", "disable", "mo"), ("users", "role", "mo", "viewer")],
    ids=["disable", "role"],
)
def test_an_account_change_from_the_cli_ends_an_open_web_session(
    cli: Callable[..., CliResult],
    configure: Callable[..., Settings],
    db_url: str,
    tmp_path: Path,
    command: tuple[str, ...],
) -> None:
    """The rule belongs to the service, so a command applies it as the admin page does."""
    from monitor.db import create_db_engine
    from monitor.web.app import create_app
    from tests.web.auth_helpers import app_client, login

    settings = configure(DATABASE_URL=db_url, DATA_DIR=str(tmp_path / "data"))
    assert cli("db", "upgrade")[0] == 0
    password = "a long enough password"
    for name, role in (("root", "admin"), ("mo", "moderator")):
        code, _, err = cli("users", "add", name, "--role", role, "--password-stdin", stdin=password)
        assert code == 0, err
    engine = create_db_engine(db_url)
    try:
        with app_client(create_app(settings, engine=engine)) as browser:
            login(browser, "mo", password)
            assert browser.get("/auth/session").status_code == 200

            code, out, err = cli(*command)
            assert code == 0, err
            assert "their sessions have ended" in out
            assert browser.get("/auth/session").status_code == 401
            with Session(engine) as session:
                assert session.exec(select(WebSession)).all() == []
    finally:
        engine.dispose()


def test_status_says_each_sources_mode_and_lag(
    cli: Callable[..., CliResult], env: FakeMastodon, db_url: str
) -> None:
    env.add_many(1)
    cli("db", "upgrade")
    assert cli("poll")[0] == 0
    code, out, _ = cli("status")
    assert code == 0 and "  mode: Polling, " in out and " behind" in out

    engine = create_db_engine(db_url)
    with session_scope(engine) as session:
        session.execute(
            sa.update(Source.__table__).values(
                mode="streaming",
                mode_note="live from http://127.0.0.1/api/v1/streaming/hashtag",
                stream_position_at=utcnow(),
            )
        )
    engine.dispose()
    code, out, _ = cli("status", "--json")
    [source] = json.loads(out)["sources"]
    assert source["mode"] == "streaming" and source["lag_seconds"] < 60
    assert source["mode_note"].startswith("live from")
    code, out, _ = cli("status")
    assert "  mode: Streaming, " in out and "(live from http://127.0.0.1/" in out
