"""Takedown requests: no account or cookie, CSRF-protected, rate-limited, audited, hide nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.models import AuditEvent, Post, TakedownRequest
from monitor.services.takedown import (
    MAX_REQUESTS_PER_WINDOW,
    TOKEN_TTL_SECONDS,
    TakedownRefused,
    check_token,
    issue_token,
)
from monitor.signing import Use, sign
from monitor.web.app import create_app
from tests.monitor.test_gallery import publish
from tests.web.auth_helpers import TestClient
from tests.web.test_gallery import settings

__all__ = ["settings"]  # fixtures shared with test_gallery

_TOKEN = re.compile(r'name="token" value="([^"]+)"')


@pytest.fixture
def client(gallery_engine: Engine, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=gallery_engine)) as client:
        yield client


def _token(client: TestClient, post_id: int) -> str:
    page = client.get(f"/gallery/report/{post_id}")
    assert page.status_code == 200, page.text
    match = _TOKEN.search(page.text)
    assert match is not None
    return match.group(1)


def _requests(engine: Engine) -> list[TakedownRequest]:
    with Session(engine) as session:
        return list(session.exec(select(TakedownRequest)))


def test_a_safeguarding_request_flags_the_post_holds_it_and_audits_it(
    client: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings)
    with Session(gallery_engine) as session:
        version_before = session.get_one(Post, post_id).version
    form = client.get(f"/gallery/report/{post_id}")
    assert "set-cookie" not in form.headers
    assert "frame-ancestors" in form.headers["content-security-policy"]

    response = client.post(
        f"/gallery/report/{post_id}",
        data={
            "token": _token(client, post_id),
            "category": "shows_me_or_my_child",
            "details": "That is my son <script>alert(1)</script>",
            "contact": "parent@example.org",
        },
    )

    assert response.status_code == 200 and "A moderator will review" in response.text
    assert "set-cookie" not in response.headers and not client.cookies
    with Session(gallery_engine) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.flagged and post.status == "approved"
        assert post.flag_reasons == ["takedown request: It shows me or my child"]
        assert post.version == version_before + 1  # an open decision on it is now stale
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "takedown_requested")
        ).one()
    (stored,) = _requests(gallery_engine)
    assert event.post_id == post_id and event.actor == "public"
    assert event.detail == {
        "request_id": stored.id,
        "category": "shows_me_or_my_child",
        "has_contact": True,
        "held": True,
        "version": version_before + 1,
    }
    assert stored.details == "That is my son <script>alert(1)</script>"
    assert stored.contact == "parent@example.org"
    assert "127.0.0.1" not in stored.client_key and "testclient" not in stored.client_key
    assert post.takedown_hold  # held off every public route until a moderator reviews it
    assert client.get("/gallery.json").json()["posts"] == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "the form is not valid"),
        ({"token": "12345.forged"}, "the form is not valid"),
        ({"token": "1." + "0" * 32}, "the form is not valid"),
        ({"category": "<script>"}, "choose why"),
        ({"details": "x" * 2001}, "under 2000 characters"),
        ({"contact": "y" * 400}, "under 320 characters"),
    ],
)
def test_bad_forms_are_refused_and_nothing_is_stored(
    client: TestClient,
    gallery_engine: Engine,
    settings: Settings,
    fields: dict[str, str],
    message: str,
) -> None:
    post_id = publish(gallery_engine, settings)
    data = {"token": _token(client, post_id), "category": "other", **fields}
    if not fields:
        del data["token"]

    response = client.post(f"/gallery/report/{post_id}", data=data)

    assert response.status_code == 400 and message in response.text
    assert 'role="alert"' in response.text
    assert _requests(gallery_engine) == []
    with Session(gallery_engine) as session:
        post = session.get(Post, post_id)
        assert post is not None and not post.flagged


@pytest.mark.parametrize(
    "use", [use for use in Use if use is not Use.TAKEDOWN_FORM], ids=lambda use: use.value
)
def test_tokens_signed_for_other_uses_are_not_takedown_tokens(
    client: TestClient, gallery_engine: Engine, settings: Settings, use: Use
) -> None:
    post_id = publish(gallery_engine, settings)
    token = sign(use, str(post_id), secret=settings.ensure_secret_key())

    response = client.post(f"/gallery/report/{post_id}", data={"token": token, "category": "other"})

    assert response.status_code == 400 and "the form is not valid" in response.text
    assert _requests(gallery_engine) == []


def test_a_takedown_token_is_not_a_gallery_cursor(
    client: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings)

    response = client.get("/gallery.json", params={"cursor": _token(client, post_id)})

    assert response.status_code == 400
    assert "cursor is not one this gallery issued" in response.text


def test_a_token_is_bound_to_its_post_and_expires(settings: Settings) -> None:
    secret = settings.ensure_secret_key()
    token = issue_token(secret, 7, now=1_000_000)

    check_token(secret, token, 7, now=1_000_000 + 60)
    with pytest.raises(TakedownRefused, match="not valid"):
        check_token(secret, token, 8, now=1_000_000 + 60)
    with pytest.raises(TakedownRefused, match="expired"):
        check_token(secret, token, 7, now=1_000_000 + TOKEN_TTL_SECONDS + 1)
    with pytest.raises(TakedownRefused, match="expired"):
        check_token(secret, issue_token(secret, 7, now=1_000_000 + 3600), 7, now=1_000_000)


def test_requests_from_one_address_are_rate_limited(
    client: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings)
    token = _token(client, post_id)
    statuses = [
        client.post(
            f"/gallery/report/{post_id}", data={"token": token, "category": "other"}
        ).status_code
        for _ in range(MAX_REQUESTS_PER_WINDOW + 2)
    ]

    assert statuses == [200] * MAX_REQUESTS_PER_WINDOW + [429, 429]
    assert len(_requests(gallery_engine)) == MAX_REQUESTS_PER_WINDOW
    with Session(gallery_engine) as session:
        post = session.get(Post, post_id)
        assert post is not None and post.flag_reasons == ["takedown request: Another reason"]


def test_oversized_or_foreign_bodies_are_refused(
    client: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings)
    token = _token(client, post_id)
    huge = client.post(
        f"/gallery/report/{post_id}",
        content=f"token={token}&category=other&details=" + "x" * 100_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    as_json = client.post(f"/gallery/report/{post_id}", json={"token": token, "category": "other"})

    assert huge.status_code == 400 and "could not be read" in huge.text
    assert as_json.status_code == 400
    assert _requests(gallery_engine) == []


@pytest.mark.parametrize("status", ["pending", "rejected", "removed"])
def test_only_published_posts_can_be_reported(
    client: TestClient, gallery_engine: Engine, settings: Settings, status: str
) -> None:
    post_id = publish(gallery_engine, settings, status=status)

    assert client.get(f"/gallery/report/{post_id}").status_code == 404
    assert client.get("/gallery/report/999999").status_code == 404
    posted = client.post(f"/gallery/report/{post_id}", data={"category": "other"})
    assert posted.status_code == 404
    assert client.get("/gallery/report/not-a-number").status_code == 404
    assert client.get("/gallery/report/mastodon:no-such-post").status_code == 404
    assert _requests(gallery_engine) == []
