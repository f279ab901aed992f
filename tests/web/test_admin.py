"""Admin pages: only admins, every change audited, bad input explained and not applied."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.db import session_scope
from monitor.models import AuditEvent, DigestSend, ModerationRule, Post, User, utcnow
from monitor.services import audit
from monitor.services.app_settings import gallery_paused
from monitor.services.audit import Action
from monitor.services.ingest import record_posts
from monitor.services.moderation import record_reveal, reject_reasons
from tests.factories import BASE_TIME, make_post
from tests.web.auth_helpers import (
    DEFAULT_PASSWORD,
    TestClient,
    app_client,
    csrf_token,
    form_token,
    login,
    login_response,
)

ADMIN_POSTS = (
    ("/admin/users", {"name": "eve", "role": "admin", "password": "x" * 20}),
    ("/admin/users/mo/disable", {}),
    ("/admin/users/mo/role", {"role": "admin"}),
    ("/admin/users/mo/reset", {}),
    ("/admin/users/mo/unlock", {}),
    ("/admin/users/mo/totp-off", {}),
    ("/admin/users/mo/enable", {}),
    ("/admin/rules", {"kind": "blocked_term", "pattern": "x", "action": "reject"}),
    ("/admin/rules/1/disable", {}),
    ("/admin/reasons", {"reasons": "Only this"}),
    ("/admin/gallery", {"state": "pause"}),
)


def _events(engine: Engine, action: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)))


def _post(client: TestClient, path: str, **fields: str) -> str:
    """Submit an admin form and return the message the next page shows."""
    response = client.post(path, data={"csrf_token": csrf_token(client), **fields})
    assert response.status_code == 200, response.text
    messages = re.findall(r'<p class="notice">([^<]*)</p>', response.text)
    assert messages, response.text
    return messages[0]


@pytest.mark.parametrize("name", ["mo", "vi"])
def test_only_admins_reach_admin_pages(
    sqlite_engine: Engine, client: TestClient, name: str
) -> None:
    login(client, name)
    assert client.get("/admin").status_code == 403
    assert client.get("/admin/audit").status_code == 403
    for path, fields in ADMIN_POSTS:
        response = client.post(path, data={"csrf_token": csrf_token(client), **fields})
        assert response.status_code == 403, path
    with Session(sqlite_engine) as session:
        assert not gallery_paused(session)
        assert session.exec(select(User).where(User.name == "eve")).first() is None
        mo = session.exec(select(User).where(User.name == "mo")).one()
        assert not mo.disabled and mo.role == "moderator" and not mo.must_change_password


def test_admin_forms_need_the_csrf_token(sqlite_engine: Engine, admin: TestClient) -> None:
    for path, fields in ADMIN_POSTS:
        assert admin.post(path, data=fields).status_code == 403, path
    with Session(sqlite_engine) as session:
        assert not gallery_paused(session)
        assert len(session.exec(select(ModerationRule)).all()) == 3


def test_anonymous_admin_pages_go_to_login(client: TestClient) -> None:
    response = client.get("/admin", headers={"accept": "text/html"}, follow_redirects=False)
    assert response.headers["location"] == "/login?next=%2Fadmin"


def test_an_admin_adds_a_user_who_can_then_log_in(
    app: FastAPI, sqlite_engine: Engine, admin: TestClient
) -> None:
    message = _post(admin, "/admin/users", name="newmod", role="moderator", password="p" * 14)
    assert message == "Added newmod as moderator."
    [event] = _events(sqlite_engine, "user_added")
    assert event.actor == "ad"
    with app_client(app) as other:
        login(other, "newmod", "p" * 14)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "<script>x</script>", "role": "viewer", "password": "p" * 14}, "user name"),
        ({"name": "short", "role": "viewer", "password": "p"}, "at least 12"),
        ({"name": "boss", "role": "owner", "password": "p" * 14}, "choose viewer"),
        ({"name": "mo", "role": "viewer", "password": "p" * 14}, "already exists"),
    ],
)
def test_bad_users_are_refused_with_a_message(
    sqlite_engine: Engine, admin: TestClient, fields: dict[str, str], expected: str
) -> None:
    message = _post(admin, "/admin/users", **fields)
    assert message.startswith("Not done:") and expected in message
    assert "<script>" not in message
    assert _events(sqlite_engine, "user_added") == []


def test_disabling_a_user_ends_their_sessions_but_not_your_own(
    app: FastAPI, sqlite_engine: Engine, admin: TestClient
) -> None:
    with app_client(app) as moderator:
        login(moderator, "mo")
        assert _post(admin, "/admin/users/mo/disable") == "Disabled mo; their sessions have ended."
        assert moderator.get("/auth/session").status_code == 401
    assert "cannot disable your own" in _post(admin, "/admin/users/ad/disable")
    assert "no user named" in _post(admin, "/admin/users/ghost/disable")
    assert [e.reason for e in _events(sqlite_engine, "user_disabled")] == ["mo"]


def test_rules_are_added_switched_and_deleted_on_the_record(
    sqlite_engine: Engine, admin: TestClient
) -> None:
    added = _post(admin, "/admin/rules", kind="blocked_term", pattern="Hijack", action="reject")
    assert added == "Added rule 4: Blocked term “Hijack” (reject)."
    assert _post(admin, "/admin/rules/4/disable") == "Rule 4 disabled."
    assert _post(admin, "/admin/rules/4/enable") == "Rule 4 enabled."
    assert "can be enabled, disabled or deleted" in _post(admin, "/admin/rules/4/explode")
    assert _post(admin, "/admin/rules/4/delete") == "Deleted rule 4."
    assert "no rule 4" in _post(admin, "/admin/rules/4/delete")
    bad = _post(admin, "/admin/rules", kind="blocked_term", pattern="x", action="approve")
    assert "reject or flag" in bad
    for bad_id in ("abc", "9" * 30):
        response = admin.post(
            f"/admin/rules/{bad_id}/delete", data={"csrf_token": csrf_token(admin)}
        )
        assert response.status_code == 422
    actions = [e.action for e in _events(sqlite_engine, "rule_added")]
    actions += [e.action for e in _events(sqlite_engine, "rule_deleted")]
    assert actions == ["rule_added", "rule_deleted"]


def test_reject_reasons_are_edited_on_the_admin_page(
    sqlite_engine: Engine, admin: TestClient
) -> None:
    message = _post(admin, "/admin/reasons", reasons="Spam\r\n\r\n<b>Rude</b>\nSpam\n")
    assert message == "Saved 2 reject reasons."
    with Session(sqlite_engine) as session:
        assert reject_reasons(session) == ["Spam", "<b>Rude</b>"]
    assert "&lt;b&gt;Rude&lt;/b&gt;" in admin.get("/admin").text
    assert "at least one" in _post(admin, "/admin/reasons", reasons="  \n ")


def test_the_kill_switch_pauses_and_resumes_the_gallery_on_the_record(
    sqlite_engine: Engine, admin: TestClient
) -> None:
    paused = _post(admin, "/admin/gallery", state="pause", reason="Hashtag hijacked")
    assert paused == "The public gallery is paused."
    with Session(sqlite_engine) as session:
        assert gallery_paused(session)
    assert "The public gallery is paused." in admin.get("/admin").text
    assert _post(admin, "/admin/gallery", state="pause") == "The public gallery was already paused."
    assert "choose pause or resume" in _post(admin, "/admin/gallery", state="explode")
    assert _post(admin, "/admin/gallery", state="resume") == "The public gallery is live again."
    with Session(sqlite_engine) as session:
        assert not gallery_paused(session)
    changes = _events(sqlite_engine, "setting_changed")
    assert [(e.actor, e.reason, (e.detail or {})["to"]) for e in changes] == [
        ("ad", "Hashtag hijacked", True),
        ("ad", None, False),
    ]


def test_the_audit_log_shows_times_in_the_configured_zone(
    sqlite_engine: Engine, admin: TestClient
) -> None:
    summer = datetime(2026, 7, 1, 11, 30, 5, tzinfo=UTC)  # 12:30:05 in London (BST)
    with Session(sqlite_engine) as session:
        session.add(AuditEvent(at=summer, actor="ad", action="login"))
        session.commit()

    page = admin.get("/admin/audit").text

    shown = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', page)
    assert (summer.isoformat(), "2026-07-01 12:30:05 BST") in shown
    assert "(UTC)" not in page


def test_the_audit_log_pages_and_filters(sqlite_engine: Engine, admin: TestClient) -> None:
    for number in range(3):
        _post(admin, "/admin/gallery", state="pause" if number % 2 == 0 else "resume")
    page = admin.get("/admin/audit")
    assert page.status_code == 200
    # Issue 18: the kill switch reads as what it did, not as "setting changed".
    assert page.text.count("gallery paused") == 2 and page.text.count("gallery resumed") == 1
    assert "setting changed" not in page.text and "login" in page.text
    filtered = admin.get("/admin/audit?action=login&actor=ad").text
    assert "setting changed" not in filtered and ">login<" in filtered
    queries = ("before=abc", "post=x", "post=", "before=1", "before=" + "9" * 19, "post=²")
    for query in (*queries, "actor=" + "<b>" * 10):
        response = admin.get(f"/admin/audit?{query}")
        assert response.status_code == 200, query
        assert "<b><b>" not in response.text
    assert admin.get("/admin/audit?actor=" + "a" * 500).status_code == 422


def test_the_admin_page_shows_a_failed_digest_with_its_reason(
    sqlite_engine: Engine, admin: TestClient
) -> None:
    assert "No digest has been sent yet." in admin.get("/admin").text
    with Session(sqlite_engine) as session:
        session.add(
            DigestSend(
                day=date(2021, 3, 18),
                sent_at=datetime(2021, 3, 19, 8, tzinfo=UTC),
                recipients="vrn@example.org",
                status="failed",
                error="SMTP 535 <b>bad</b> credentials",
            )
        )
        session.commit()
    page = admin.get("/admin").text
    assert "The digest for 2021-03-18 was not sent" in page
    assert "SMTP 535 &lt;b&gt;bad&lt;/b&gt; credentials" in page


NEW_PASSWORD = "a brand new long password"


def _change_password(
    client: TestClient, current: str, new: str, confirm: str | None = None
) -> httpx.Response:
    return client.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(client),
            "current": current,
            "new": new,
            "confirm": new if confirm is None else confirm,
        },
        follow_redirects=False,
    )


def test_a_user_changes_their_own_password_and_other_sessions_end(
    app: FastAPI, sqlite_engine: Engine
) -> None:
    with app_client(app) as here, app_client(app) as elsewhere:
        login(here, "mo")
        login(elsewhere, "mo")
        page = here.get("/account/password")
        assert page.status_code == 200 and 'name="current"' in page.text

        for current, new, confirm, why in [
            ("wrong guess", NEW_PASSWORD, None, "the current password is wrong"),
            (DEFAULT_PASSWORD, "short", None, "at least 12"),
            (DEFAULT_PASSWORD, NEW_PASSWORD, "something else entirely", "differ"),
        ]:
            refused = _change_password(here, current, new, confirm)
            assert refused.status_code == 400 and why in refused.text
        assert elsewhere.get("/auth/session").status_code == 200

        done = _change_password(here, DEFAULT_PASSWORD, NEW_PASSWORD)
        assert done.status_code == 303
        assert here.get("/auth/session").status_code == 200
        assert elsewhere.get("/auth/session").status_code == 401
    with app_client(app) as fresh:
        assert login_response(fresh, "mo", DEFAULT_PASSWORD).status_code == 401
        login(fresh, "mo", NEW_PASSWORD)
    assert [e.actor for e in _events(sqlite_engine, "password_changed")] == ["mo"]


def test_an_admin_reset_shows_a_one_time_password_that_must_be_changed(
    app: FastAPI, sqlite_engine: Engine, admin: TestClient
) -> None:
    with app_client(app) as moderator:
        login(moderator, "mo")
        response = admin.post("/admin/users/mo/reset", data={"csrf_token": csrf_token(admin)})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        [password] = re.findall(r"<code>([^<]+)</code>", response.text)
        assert moderator.get("/auth/session").status_code == 401

        arrived = login_response(moderator, "mo", password)
        assert arrived.headers["location"] == "/account/password"
        # The one-time password opens the change form and nothing else.
        page = moderator.get("/queue", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.headers["location"] == "/account/password"
        assert moderator.get("/queue").status_code == 403
        assert _change_password(moderator, password, NEW_PASSWORD).status_code == 303
        assert moderator.get("/queue").status_code == 200
    [event] = _events(sqlite_engine, "password_reset")
    assert event.actor == "ad" and event.reason == "mo"
    assert password not in (event.reason or "")


def test_an_admin_changes_a_role_and_the_users_sessions_end(
    app: FastAPI, sqlite_engine: Engine, admin: TestClient
) -> None:
    with app_client(app) as viewer:
        login(viewer, "vi")
        assert viewer.get("/queue").status_code == 200
        assert _post(admin, "/admin/users/vi/role", role="moderator") == (
            "vi is now a moderator; their sessions have ended."
        )
        assert viewer.get("/auth/session").status_code == 401
    assert "cannot change your own role" in _post(admin, "/admin/users/ad/role", role="viewer")
    assert "choose viewer" in _post(admin, "/admin/users/vi/role", role="owner")
    [event] = _events(sqlite_engine, "role_changed")
    assert (event.actor, event.reason) == ("ad", "vi: viewer -> moderator")


def test_a_disabled_user_is_enabled_again(
    app: FastAPI, sqlite_engine: Engine, admin: TestClient
) -> None:
    _post(admin, "/admin/users/mo/disable")
    assert "Enable" in admin.get("/admin").text
    assert _post(admin, "/admin/users/mo/enable") == "Enabled mo; they can log in again."
    with app_client(app) as moderator:
        login(moderator, "mo")
    assert [e.reason for e in _events(sqlite_engine, "user_enabled")] == ["mo"]


def test_a_user_sets_up_two_factor_login_and_an_admin_turns_it_off(
    app: FastAPI, sqlite_engine: Engine, admin: TestClient
) -> None:
    with app_client(app) as moderator:
        login(moderator, "mo")
        page = moderator.get("/account/totp")
        assert page.headers["cache-control"] == "no-store"
        [secret] = re.findall(r'name="secret" value="([A-Z2-7]+)"', page.text)
        totp = pyotp.TOTP(secret)
        done = moderator.post(
            "/account/totp",
            data={
                "csrf_token": csrf_token(moderator),
                "secret": secret,
                "password": DEFAULT_PASSWORD,
                "code": totp.now(),
            },
            follow_redirects=False,
        )
        assert done.status_code == 303
    with app_client(app) as again:
        assert login_response(again, "mo", DEFAULT_PASSWORD).status_code == 401
        form = again.get("/login")
        with_code = again.post(
            "/login",
            data={
                "name": "mo",
                "password": DEFAULT_PASSWORD,
                "code": totp.at(utcnow() + timedelta(seconds=30)),
                "csrf_token": form_token(form.text),
            },
            follow_redirects=False,
        )
        assert with_code.status_code == 303

    assert "Turn off two-factor" in admin.get("/admin").text
    message = _post(admin, "/admin/users/mo/totp-off")
    assert message == "Two-factor login is off for mo; their sessions have ended."
    with app_client(app) as after:
        login(after, "mo")
    assert [e.actor for e in _events(sqlite_engine, "totp_disabled")] == ["ad"]


def test_the_audit_log_says_what_happened_in_words_and_names_posts_publicly(
    sqlite_engine: Engine, admin: TestClient
) -> None:
    post = make_post(media=(), external_id="https://example.social/users/kim/statuses/77")
    with session_scope(sqlite_engine) as session:
        [post_id] = record_posts(session=session, posts=[post]).new_ids
        row = session.get(Post, post_id)
        assert row is not None
        record_reveal(session=session, post=row, actor="ad")
        audit.record(session, actor="rule:3", action=Action.FLAG, post=row)
        audit.record(session, actor="system", action=Action.DELETED_AT_SOURCE, post_id=post_id)
        audit.record(session, actor="old", action=Action.UNDO, post_id=post_id, at=BASE_TIME)
    _post(admin, "/admin/gallery", state="pause", reason="Hashtag hijacked")

    page = admin.get("/admin/audit").text
    cells = re.findall(r"<td>([^<]*)</td>", page)

    for words in ("gallery paused", "hidden media shown", "flagged by a rule", "removed at source"):
        assert words in cells, words
    assert "Hashtag hijacked" in cells
    for stored in ("setting_changed", "media_revealed", "deleted_at_source", ">flag<"):
        assert stored not in page, stored
    ref = f"mastodon:{post.external_id}"
    shown = re.findall(r'<a href="/queue/posts/(\d+)">([^<]+)</a>', page)
    assert shown and set(shown) == {(str(post_id), ref)}
    # The post filter takes the name the page shows, and the action filter its words.
    by_ref = admin.get("/admin/audit", params={"post": ref}).text
    assert "hidden media shown" in by_ref and "gallery paused" not in by_ref
    assert "No events match" in admin.get("/admin/audit", params={"post": "mastodon:nope"}).text
    by_words = admin.get("/admin/audit", params={"action": "Decision undone"}).text
    assert re.findall(r"<td>(old|ad|system|rule:3)</td>", by_words) == ["old"]
