"""The queue over HTTP: who may see and decide, CSRF, stale decisions, bulk, hostile input."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Author, FetchedPost, Media
from monitor.db import session_scope
from monitor.models import AuditEvent, Post, WebSession
from monitor.services.ingest import record_posts
from monitor.services.moderation import QUEUE_PAGE_SIZE
from tests.factories import make_post
from tests.web.auth_helpers import (
    TestClient,
    app_client,
    csrf_token,
    login,
)

JSON = {"accept": "application/json"}
PAGE = {"accept": "text/html"}


def _store(engine: Engine, *posts: FetchedPost) -> list[int]:
    with session_scope(engine) as session:
        return record_posts(session=session, posts=list(posts)).new_ids


def _text_post(**overrides: Any) -> FetchedPost:
    return make_post(media=(), **overrides)


def _statuses(engine: Engine) -> dict[int, str]:
    with Session(engine) as session:
        return {p.id or 0: p.status for p in session.exec(select(Post))}


def _decisions(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).where(AuditEvent.action.in_(["approve", "reject"]))  # type: ignore[attr-defined]
        return list(session.exec(query))


def _decide(
    client: TestClient, post_id: int, action: str, version: int = 1, **extra: str
) -> dict[str, str]:
    return {
        "csrf_token": csrf_token(client),
        "post_id": str(post_id),
        "version": str(version),
        "action": action,
        **extra,
    }


def test_anonymous_visitors_are_sent_to_login_and_scripts_get_401(
    sqlite_engine: Engine, client: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    page = client.get("/queue?tab=flagged", headers=PAGE, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fqueue%3Ftab%3Dflagged"
    fields = {"post_id": str(post_id), "version": "1", "action": "approve"}
    assert client.post("/queue/decide", data=fields, headers=JSON).status_code == 401
    assert _statuses(sqlite_engine) == {post_id: "pending"}


def test_times_on_the_queue_are_in_the_configured_zone(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    summer = datetime(2026, 7, 1, 11, 30, tzinfo=UTC)  # 12:30 in London (BST)
    [post_id] = _store(sqlite_engine, _text_post(created_at=summer))
    with session_scope(sqlite_engine) as session:
        session.add(
            AuditEvent(post_id=post_id, at=summer, actor="mo", action="note", reason="summer note")
        )

    page = moderator.get("/queue", headers=PAGE).text

    shown = set(re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', page))
    # People read London time; the datetime attribute stays UTC for machines.
    assert shown == {
        (summer.isoformat(), "01 Jul 2026 12:30 BST"),  # when it was posted
        (summer.isoformat(), "01 Jul 12:30 BST"),  # the card's history
    }
    details = moderator.get(f"/queue/posts/{post_id}", headers=PAGE).text
    assert f'<time datetime="{summer.isoformat()}">2026-07-01 12:30:00 BST</time>' in details


def test_a_viewer_reads_the_queue_but_cannot_decide(
    sqlite_engine: Engine, client: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    login(client, "vi")
    page = client.get("/queue")
    assert page.status_code == 200 and f'id="post-{post_id}"' in page.text
    assert "/queue/decide" not in page.text and "bulk-form" not in page.text
    refused = client.post("/queue/decide", data=_decide(client, post_id, "approve"), headers=JSON)
    assert refused.status_code == 403 and "moderator role" in refused.json()["detail"]
    bulk = {"csrf_token": csrf_token(client), "selected": f"{post_id}:1", "action": "approve"}
    assert client.post("/queue/bulk", data=bulk).status_code == 403
    assert _statuses(sqlite_engine) == {post_id: "pending"}


@pytest.mark.parametrize("token", [None, "", "forged-token", "other-session"])
def test_a_missing_or_wrong_csrf_token_is_403_and_changes_nothing(
    app: FastAPI, sqlite_engine: Engine, moderator: TestClient, token: str | None
) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    fields = {"post_id": str(post_id), "version": "1", "action": "approve"}
    if token == "other-session":
        with app_client(app) as other:
            login(other, "mo")
            fields["csrf_token"] = csrf_token(other)
    elif token is not None:
        fields["csrf_token"] = token
    response = moderator.post("/queue/decide", data=fields)
    assert response.status_code == 403
    assert "security token" in response.json()["detail"]
    headers = {"x-csrf-token": fields.get("csrf_token") or "nope", **JSON}
    assert (
        moderator.post(
            "/queue/bulk", headers=headers, data={"selected": f"{post_id}:1"}
        ).status_code
        == 403
    )
    assert _statuses(sqlite_engine) == {post_id: "pending"} and _decisions(sqlite_engine) == []


def test_a_form_decision_redirects_back_and_says_what_happened_once(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    fields = _decide(moderator, post_id, "approve", return_to="/queue?tab=pending&q=x")
    response = moderator.post("/queue/decide", data=fields, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/queue?tab=pending&q=x"
    # Named as the moderator sees the post (author, platform, first words), never by row id.
    said = "Approved the post by @u"
    assert said in moderator.get("/queue").text
    later = moderator.get("/queue").text
    assert said not in later and "Your last decision: approved the post by @u" in later
    [event] = _decisions(sqlite_engine)
    assert (event.actor, event.action, event.to_status) == ("mo", "approve", "approved")


def test_return_to_cannot_leave_the_queue(sqlite_engine: Engine, moderator: TestClient) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    fields = _decide(moderator, post_id, "approve", return_to="https://evil.example/queue")
    response = moderator.post("/queue/decide", data=fields, follow_redirects=False)
    assert response.headers["location"] == "/queue"


def test_a_stale_decision_is_refused_with_a_message(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    first = moderator.post(
        "/queue/decide", data=_decide(moderator, post_id, "approve"), headers=JSON
    )
    answer = first.json()
    assert {key: answer[key] for key in ("ok", "post_id", "status", "version")} == {
        "ok": True,
        "post_id": post_id,
        "status": "approved",
        "version": 2,
    }
    assert answer["message"].startswith("Approved the post by @u")
    reject = _decide(moderator, post_id, "reject", reason_choice="Misinformation")
    second = moderator.post("/queue/decide", data=reject, headers=JSON)
    assert second.status_code == 409
    assert second.json()["stale"] is True
    assert "changed since you loaded it" in second.json()["message"]
    assert _statuses(sqlite_engine) == {post_id: "approved"}


@pytest.mark.parametrize(
    ("post_id", "version"),
    [
        ("999999", "1"),
        ("abc", "1"),
        ("-1", "1"),
        ("1", ""),
        ("1" * 40, "1"),
        ("1" * 5000, "1"),
        ("²", "1"),
        ("1", "9" * 30),
    ],
)
def test_unknown_or_malformed_ids_are_404(
    sqlite_engine: Engine, moderator: TestClient, post_id: str, version: str
) -> None:
    _store(sqlite_engine, _text_post())
    fields = {
        "csrf_token": csrf_token(moderator),
        "post_id": post_id,
        "version": version,
        "action": "approve",
    }
    assert moderator.post("/queue/decide", data=fields, headers=JSON).status_code == 404
    assert moderator.get("/queue/posts/999999").status_code == 404
    assert moderator.get("/queue/posts/" + "9" * 30).status_code == 422
    assert _decisions(sqlite_engine) == []


def test_a_rejection_needs_a_listed_reason_or_own_words(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    bare = moderator.post("/queue/decide", data=_decide(moderator, post_id, "reject"), headers=JSON)
    assert bare.status_code == 409 and "choose a reason" in bare.json()["message"]
    invented = _decide(moderator, post_id, "reject", reason_choice="Not on the list")
    assert moderator.post("/queue/decide", data=invented, headers=JSON).status_code == 409
    assert _statuses(sqlite_engine) == {post_id: "pending"}
    fields = _decide(
        moderator, post_id, "reject", reason_choice="Misinformation", reason_note="x" * 100_000
    )
    assert moderator.post("/queue/decide", data=fields, headers=JSON).status_code == 200
    [event] = _decisions(sqlite_engine)
    assert event.reason is not None and event.reason.startswith("Misinformation: xxx")
    assert len(event.reason) <= 2000


def test_scripts_in_posts_authors_and_reasons_are_shown_as_text(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    [post_id] = _store(
        sqlite_engine,
        _text_post(text=attack, author=Author(handle="@evil@x.social", name=attack)),
    )
    fields = _decide(moderator, post_id, "reject", reason_note=attack)
    assert moderator.post("/queue/decide", data=fields, headers=JSON).status_code == 200
    for path in ("/queue?tab=rejected", f"/queue/posts/{post_id}"):
        html = moderator.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_bulk_approve_decides_every_current_post_in_one_request(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    ids = _store(sqlite_engine, *(_text_post() for _ in range(30)))
    with session_scope(sqlite_engine) as session:
        session.get_one(Post, ids[0]).version = 2  # changed since the page was loaded
    fields = {
        "csrf_token": csrf_token(moderator),
        "selected": [f"{i}:1" for i in ids],
        "action": "approve",
    }
    response = moderator.post("/queue/bulk", data=fields, headers=JSON)
    assert response.status_code == 409
    body = response.json()
    assert body["decided"] == ids[1:] and list(body["refused"]) == [str(ids[0])]
    assert body["message"].startswith("Approved 29 of 30 selected posts. Not applied:")
    statuses = _statuses(sqlite_engine)
    assert statuses[ids[0]] == "pending"
    assert all(statuses[i] == "approved" for i in ids[1:])
    assert len(_decisions(sqlite_engine)) == 29


@pytest.mark.parametrize("selected", [["1"], ["x:1"], ["1:"], [":"], ["1:1:1"]])
def test_a_malformed_selection_is_400_and_changes_nothing(
    sqlite_engine: Engine, moderator: TestClient, selected: list[str]
) -> None:
    _store(sqlite_engine, _text_post())
    fields = {"csrf_token": csrf_token(moderator), "selected": selected, "action": "approve"}
    assert moderator.post("/queue/bulk", data=fields, headers=JSON).status_code == 400
    assert _decisions(sqlite_engine) == []


def test_an_empty_or_oversized_selection_gets_a_clear_answer(moderator: TestClient) -> None:
    fields = {"csrf_token": csrf_token(moderator), "action": "approve"}
    empty = moderator.post("/queue/bulk", data=fields, headers=JSON)
    assert empty.status_code == 409 and empty.json()["message"] == "Nothing selected."
    huge = {**fields, "selected": [f"{i}:1" for i in range(1, 1200)]}
    assert moderator.post("/queue/bulk", data=huge, headers=JSON).status_code == 413


def test_a_session_that_ends_in_the_middle_of_a_bulk_action_changes_nothing(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    ids = _store(sqlite_engine, *(_text_post() for _ in range(5)))
    fields = {
        "csrf_token": csrf_token(moderator),
        "selected": [f"{i}:1" for i in ids],
        "action": "approve",
    }
    with session_scope(sqlite_engine) as session:
        for row in session.exec(select(WebSession)):
            session.delete(row)
    response = moderator.post("/queue/bulk", data=fields, headers=JSON)
    assert response.status_code == 401 and "log in again" in response.json()["detail"]
    assert set(_statuses(sqlite_engine).values()) == {"pending"}


def test_tabs_counts_flags_and_pages(sqlite_engine: Engine, moderator: TestClient) -> None:
    ids = _store(sqlite_engine, *(_text_post() for _ in range(QUEUE_PAGE_SIZE + 2)))
    with session_scope(sqlite_engine) as session:
        post = session.get_one(Post, ids[-1])
        post.flagged, post.flag_reasons = True, ["Takedown request: <b>my child</b> is in it"]
    page = moderator.get("/queue")
    cards = re.findall(r'<article class="card[^"]*" id="post-(\d+)"', page.text)
    assert cards[0] == str(ids[-1]) and len(cards) == QUEUE_PAGE_SIZE
    assert "Takedown request: &lt;b&gt;my child&lt;/b&gt; is in it" in page.text
    pending = rf'Pending\s*<span class="count" data-tab="pending">{QUEUE_PAGE_SIZE + 2}</span>'
    assert re.search(pending, page.text)
    assert re.search(r'Flagged\s*<span class="count" data-tab="flagged">1</span>', page.text)
    next_url = re.search(r'<a href="([^"]+)" rel="next">', page.text)
    assert next_url is not None
    rest = moderator.get(next_url.group(1).replace("&amp;", "&")).text
    assert re.findall(r'id="post-(\d+)"', rest) == [str(i) for i in ids[QUEUE_PAGE_SIZE - 1 : -1]]
    flagged = moderator.get("/queue?tab=flagged").text
    assert re.findall(r'<article class="card[^"]*" id="post-(\d+)"', flagged) == [str(ids[-1])]


def test_bad_filters_are_ignored_with_a_note(sqlite_engine: Engine, moderator: TestClient) -> None:
    _store(sqlite_engine, _text_post())
    page = moderator.get(
        "/queue?tab=bogus&since=yesterday&until=2021-02-30&after=%00&q=" + "z" * 5000
    )
    assert page.status_code == 200
    assert "Unknown tab: showing Pending." in page.text
    assert "Ignored the from date" in page.text and "Ignored the to date" in page.text


def test_sensitive_media_is_blurred_and_alt_text_is_editable(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    media = (Media(kind="image", url="https://files.example/1.jpg", alt=None, sensitive=True),)
    [post_id] = _store(sqlite_engine, make_post(media=media))
    html = moderator.get("/queue").text
    assert 'class="media blurred"' in html and "marked sensitive at source" in html
    assert re.search(rf'<textarea id="alt-\d+" name="alt_\d+" form="decide-{post_id}"', html)
    # The page showed "being fetched"; approving fetches it now, which fails (no network),
    # so the moderator is sent back to look again, then told what is missing.
    first = moderator.post(
        "/queue/decide", data=_decide(moderator, post_id, "approve"), headers=JSON
    )
    assert first.status_code == 409 and first.json()["stale"]
    refused = moderator.post(
        "/queue/decide", data=_decide(moderator, post_id, "approve", version=2), headers=JSON
    )
    assert refused.status_code == 409 and "has no alt text" in refused.json()["message"]
    assert _statuses(sqlite_engine) == {post_id: "pending"}


def test_the_queue_page_loads_only_our_own_images_and_no_foreign_script(
    moderator: TestClient,
) -> None:
    policy = moderator.get("/queue").headers["content-security-policy"]
    assert "img-src 'self' data:;" in policy and "https:" not in policy
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy


def test_an_edit_at_source_after_approval_shows_both_texts(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    original = _text_post(text="Proud of our hands")
    [post_id] = _store(sqlite_engine, original)
    moderator.post("/queue/decide", data=_decide(moderator, post_id, "approve"), headers=JSON)
    _store(sqlite_engine, dataclasses.replace(original, text="Now selling followers"))
    html = moderator.get("/queue").text
    assert "Text you approved" in html and "Proud of our hands" in html
    assert "Edited at source" in html and "Now selling followers" in html
    details = moderator.get(f"/queue/posts/{post_id}").text
    assert "edited at source" in details and "approve" in details


def test_bulk_reject_without_script_redirects_back_with_the_outcome(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    ids = _store(sqlite_engine, *(_text_post() for _ in range(3)))
    fields = {
        "csrf_token": csrf_token(moderator),
        "selected": [f"{i}:1" for i in ids],
        "action": "reject",
        "reason_choice": "Spam or advertising",
        "return_to": "/queue?tab=pending",
    }
    response = moderator.post("/queue/bulk", data=fields, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/queue?tab=pending"
    assert "Rejected 3 of 3 selected posts." in moderator.get("/queue").text
    assert {e.reason for e in _decisions(sqlite_engine)} == {"Spam or advertising"}
    assert set(_statuses(sqlite_engine).values()) == {"rejected"}


def test_a_full_bulk_selection_sent_by_the_page_script_reaches_the_decision(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    """queue.js posts multipart FormData: the most posts a bulk decision takes must get
    past the form parser (whose default allows fewer fields) to the decision itself."""
    [post_id] = _store(sqlite_engine, _text_post())
    selected = [f"{post_id}:1", *(f"{i}:1" for i in range(post_id + 1, post_id + 1000))]
    fields = {"csrf_token": csrf_token(moderator), "action": "reject", "selected": selected}
    fields["reason_note"] = "spam"
    response = moderator.post("/queue/bulk", data=fields, files={"unused": ("", b"")}, headers=JSON)
    assert response.status_code == 409, response.text
    assert response.json()["decided"] == [post_id]
    assert "does not exist" in response.json()["message"]


def test_a_file_sent_where_a_form_expects_text_is_a_4xx_and_decides_nothing(
    sqlite_engine: Engine, moderator: TestClient
) -> None:
    [post_id] = _store(sqlite_engine, _text_post())
    fields = _decide(moderator, post_id, "approve")
    for name in ("action", "post_id", "return_to", "decorative"):
        others = {key: value for key, value in fields.items() if key != name}
        upload = {name: ("x.txt", b"approve", "text/plain")}
        response = moderator.post("/queue/decide", data=others, files=upload, headers=JSON)
        assert 400 <= response.status_code < 500, (name, response.status_code)
    assert _decisions(sqlite_engine) == []
