"""Issue 12's safeguarding paths over HTTP: takedowns first, holds on every public route,
reviews, alerts (and a broken mail server), escalation, and the hijack tools."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import (
    AuditEvent,
    Escalation,
    Post,
    SafeguardingAlert,
    TakedownRequest,
)
from monitor.services.takedown import (
    MAX_NETWORK_REQUESTS_PER_WINDOW,
    network_key,
    set_takedown_hides,
)
from monitor.web.app import create_app
from tests.monitor.test_gallery import publish, tiny_png
from tests.monitor.test_mail import SmtpCapture
from tests.processes import free_port
from tests.web.auth_helpers import TestClient, csrf_token, login, make_user

JSON = {"accept": "application/json"}
#: The clients speak to the configured public origin (login cookies are Secure there).
BASE = "https://gallery.force.example"
_TOKEN = re.compile(r'name="token" value="([^"]+)"')
_MEDIA = re.compile(r'src="(/media/[^"]+)"')


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    with SmtpCapture() as server:
        yield server


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path, smtp: SmtpCapture) -> Settings:
    return configure(
        MEDIA_DIR=str(tmp_path / "media"),
        DATA_DIR=str(tmp_path / "data"),
        PUBLIC_BASE_URL="https://gallery.force.example",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        SMTP_SECURITY="none",
        DIGEST_FROM="monitor@force.example",
        SAFEGUARDING_ALERT_TO="lead@force.example,deputy@force.example",
    )


@pytest.fixture
def public(gallery_engine: Engine, settings: Settings) -> Iterator[TestClient]:
    make_user(gallery_engine, "mo", "moderator")
    make_user(gallery_engine, "vi", "viewer")
    make_user(gallery_engine, "lead", "safeguarding")
    make_user(gallery_engine, "ad", "admin")
    with TestClient(create_app(settings, engine=gallery_engine), base_url=BASE) as client:
        yield client


@pytest.fixture
def staff(gallery_engine: Engine, settings: Settings, public: TestClient) -> Iterator[TestClient]:
    """A second client (its own cookies) logged in as the moderator."""
    with TestClient(create_app(settings, engine=gallery_engine), base_url=BASE) as client:
        login(client, "mo")
        yield client


def _report(client: TestClient, post_id: int | str, category: str, **extra: str) -> int:
    page = client.get(f"/gallery/report/{post_id}")
    assert page.status_code == 200, page.text
    match = _TOKEN.search(page.text)
    assert match is not None
    action = re.search(r'class="report-form" method="post" action="([^"]+)"', page.text)
    assert action is not None
    data = {"token": match.group(1), "category": category, **extra}
    return client.post(action.group(1), data=data).status_code


def _public_ids(client: TestClient) -> list[str]:
    return [post["id"] for post in client.get("/gallery.json").json()["posts"]]


def _post(engine: Engine, post_id: int) -> Post:
    with Session(engine) as session:
        return session.get_one(Post, post_id)


def _public_id(engine: Engine, post_id: int) -> str:
    post = _post(engine, post_id)
    return f"{post.platform}:{post.external_id}"


def _wait_for_alerts(engine: Engine, status: str) -> list[SafeguardingAlert]:
    """Alerts are sent by a background thread: wait for the condition, not a clock."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with Session(engine) as session:
            alerts = list(session.exec(select(SafeguardingAlert)))
        if alerts and all(alert.status == status for alert in alerts):
            return alerts
        time.sleep(0.02)
    raise AssertionError(f"alerts never became {status}: {[a.status for a in alerts]}")


def _decide(client: TestClient, post: Post, action: str, version: int) -> dict[str, object]:
    data = {
        "post_id": str(post.id),
        "version": str(version),
        "action": action,
        "reason_choice": "Spam or advertising" if action == "reject" else "",
        "csrf_token": csrf_token(client),
    }
    result: dict[str, object] = client.post("/queue/decide", data=data, headers=JSON).json()
    return result


def test_a_safeguarding_request_empties_every_public_route_and_alerts_the_lead(
    public: TestClient, gallery_engine: Engine, settings: Settings, smtp: SmtpCapture
) -> None:
    post_id = publish(gallery_engine, settings, image=tiny_png())
    other = publish(gallery_engine, settings)
    media_url = _MEDIA.search(public.get("/gallery").text)
    assert media_url is not None and public.get(media_url.group(1)).status_code == 200

    assert _report(public, post_id, "shows_me_or_my_child", contact="mum@example.org") == 200

    assert _public_ids(public) == [_public_id(gallery_engine, other)]
    assert f"post-{post_id}" not in public.get("/gallery").text
    assert f"post-{post_id}" not in public.get("/gallery/embed").text
    assert public.get(media_url.group(1)).status_code == 404
    (alert,) = _wait_for_alerts(gallery_engine, "sent")
    (message,) = smtp.messages
    body = message.get_content()
    assert message["To"] == "lead@force.example, deputy@force.example"
    assert f"https://gallery.force.example/queue/posts/{post_id}" in body
    assert "It shows me or my child" in body and "held off the public gallery" in body
    assert "mum@example.org" not in body  # the requester's contact stays in the staff app
    assert not message.is_multipart()  # no media attached


def test_other_categories_flag_but_keep_the_post_public(
    public: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings)

    assert _report(public, post_id, "abusive_or_misleading") == 200

    post = _post(gallery_engine, post_id)
    assert post.flagged and not post.takedown_hold
    assert len(_public_ids(public)) == 1


def test_an_admin_can_switch_hiding_off_and_the_setting_sets_the_default(
    public: TestClient,
    gallery_engine: Engine,
    settings: Settings,
    configure: Callable[..., Settings],
) -> None:
    with session_scope(gallery_engine) as session:
        set_takedown_hides(session=session, hides=False, actor="ad")
    first = publish(gallery_engine, settings)
    assert "The post stays up until they decide." in public.get(f"/gallery/report/{first}").text

    assert _report(public, first, "personal_information") == 200
    assert not _post(gallery_engine, first).takedown_hold

    login(public, "ad")
    page = public.get("/admin")
    assert "Requests do not hide posts" in page.text
    public.post("/admin/takedown-policy", data={"hides": "true", "csrf_token": csrf_token(public)})
    assert "takes the post off every public page" in public.get("/admin").text


def test_gallery_json_carries_a_report_url_that_accepts_the_public_id(
    public: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings)
    (post,) = public.get("/gallery.json").json()["posts"]
    assert "comes off the gallery at once" in public.get(f"/gallery/report/{post_id}").text

    url = urlsplit(post["report_url"])
    assert url.netloc == "gallery.force.example" and "/" in _public_id(gallery_engine, post_id)
    form = public.get(url.path)
    assert form.status_code == 200 and "Report a post" in form.text
    assert _report(public, url.path.removeprefix("/gallery/report/"), "my_content") == 200
    assert _post(gallery_engine, post_id).takedown_hold


def test_a_flood_from_one_ipv6_network_is_limited_across_its_addresses(
    gallery_engine: Engine, settings: Settings
) -> None:
    secret = "s"
    same = {network_key(secret, f"2001:db8:1:2::{n:x}") for n in range(1, 200)}
    assert len(same) == 1
    assert network_key(secret, "2001:db8:1:3::1") not in same
    assert network_key(secret, "::ffff:192.0.2.7") == network_key(secret, "192.0.2.99")
    assert network_key(secret, "not an address") != network_key(secret, "also not")


def test_takedown_rate_limits_per_network_and_for_everyone(
    gallery_engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.services import takedown

    post_id = publish(gallery_engine, settings)

    def send(client_name: str, network: str) -> str:
        with session_scope(gallery_engine) as session:
            post = session.get_one(Post, post_id)
            try:
                takedown.request_takedown(
                    session=session,
                    settings=settings,
                    post=post,
                    category="other",
                    details="",
                    contact="",
                    client=client_name,
                    network=network,
                )
            except takedown.TooManyRequests as exc:
                return str(exc)
        return "ok"

    # One /64 rotating its addresses: each address is new, the network is not.
    results = [send(f"addr{n}", "net-a") for n in range(MAX_NETWORK_REQUESTS_PER_WINDOW + 1)]
    assert results[:-1] == ["ok"] * MAX_NETWORK_REQUESTS_PER_WINDOW
    assert "from your network" in results[-1]
    # Many networks at once: the whole form has a ceiling.
    monkeypatch.setattr(
        takedown, "MAX_ALL_REQUESTS_PER_WINDOW", MAX_NETWORK_REQUESTS_PER_WINDOW + 3
    )
    flood = [send(f"b{n}", f"net-b{n}") for n in range(4)]
    assert flood[:3] == ["ok"] * 3 and "very many requests" in flood[3]


@pytest.mark.parametrize("status", ["pending", "rejected", "removed"])
def test_a_takedown_for_a_post_that_is_not_public_stores_nothing(
    public: TestClient, gallery_engine: Engine, settings: Settings, status: str
) -> None:
    post_id = publish(gallery_engine, settings, status=status)
    ref = _public_id(gallery_engine, post_id)

    for target in (str(post_id), ref, "999999", "x:y"):
        answer = public.post(f"/gallery/report/{target}", data={"category": "other"})
        assert answer.status_code == 404 and "not in the gallery" in answer.text
    with Session(gallery_engine) as session:
        assert list(session.exec(select(TakedownRequest))) == []


def test_a_takedown_never_makes_a_reject_stale_but_an_approval_is(
    public: TestClient, staff: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    approved = publish(gallery_engine, settings)
    pending = publish(gallery_engine, settings)
    seen = _post(gallery_engine, approved)
    with session_scope(gallery_engine) as session:  # a pending post reported by its id
        session.get_one(Post, pending).status = "approved"
    assert _report(public, pending, "other") == 200
    with session_scope(gallery_engine) as session:
        session.get_one(Post, pending).status = "pending"
    pending_seen_version = _post(gallery_engine, pending).version - 1

    assert _report(public, approved, "other") == 200
    assert _report(public, approved, "shows_me_or_my_child") == 200  # a second bump
    assert public.get(f"/gallery/report/{approved}").status_code == 404  # held: not shown

    refused = _decide(staff, _post(gallery_engine, pending), "approve", pending_seen_version)
    assert refused["ok"] is False and refused["stale"] is True
    rejected = _decide(staff, seen, "reject", seen.version)
    assert rejected["ok"] is True, rejected
    assert _post(gallery_engine, approved).status == "rejected"


def test_takedowns_lead_every_staff_page_and_are_reviewed_on_the_record(
    public: TestClient, staff: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    kept, taken = publish(gallery_engine, settings), publish(gallery_engine, settings)
    assert _report(public, kept, "shows_me_or_my_child", details="That is my son") == 200
    assert _report(public, taken, "personal_information") == 200

    for path in ("/queue", "/stats", "/queue?tab=approved"):
        page = staff.get(path)
        assert re.search(r"Takedown requests <span class=\"count\">2</span>", page.text), path
    pending_tab = staff.get("/queue").text
    assert "Takedown requests waiting for review (2)" in pending_tab
    tab = staff.get("/queue?tab=takedowns").text
    assert "That is my son" in tab and f"post-{kept}" in tab and f"post-{taken}" in tab

    token = csrf_token(staff)
    staff.post(f"/queue/takedowns/{kept}/resolve", data={"outcome": "kept", "csrf_token": token})
    staff.post(
        f"/queue/takedowns/{taken}/resolve",
        data={"outcome": "taken_down", "note": "parent asked", "csrf_token": token},
    )
    bogus = staff.post(
        f"/queue/takedowns/{kept}/resolve", data={"outcome": "kept", "csrf_token": token}
    )

    assert bogus.status_code == 200 and "no open takedown request" in bogus.text
    assert _public_ids(public) == [_public_id(gallery_engine, kept)]
    assert not _post(gallery_engine, kept).flagged
    assert _post(gallery_engine, taken).status == "rejected"
    assert 'class="count">0</span>' in staff.get("/queue").text
    with Session(gallery_engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.action == "takedown_resolved")
        ).all()
        assert {(e.post_id, e.actor, e.detail["outcome"]) for e in events if e.detail} == {
            (kept, "mo", "kept"),
            (taken, "mo", "taken_down"),
        }


def test_a_viewer_cannot_resolve_a_takedown(
    public: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings)
    assert _report(public, post_id, "other") == 200
    login(public, "vi")

    answer = public.post(
        f"/queue/takedowns/{post_id}/resolve",
        data={"outcome": "kept", "csrf_token": csrf_token(public)},
    )

    assert answer.status_code == 403
    assert _post(gallery_engine, post_id).flagged


def test_with_the_mail_server_down_the_request_is_kept_and_the_failure_shown(
    gallery_engine: Engine, configure: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = configure(
        MEDIA_DIR=str(tmp_path / "media"),
        DATA_DIR=str(tmp_path / "data"),
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(free_port()),  # nothing listens there
        SMTP_SECURITY="none",
        DIGEST_FROM="monitor@force.example",
        SAFEGUARDING_ALERT_TO="lead@force.example",
        HTTP_RETRIES="0",
    )
    make_user(gallery_engine, "ad", "admin")
    post_id = publish(gallery_engine, settings)
    with TestClient(create_app(settings, engine=gallery_engine), base_url=BASE) as client:
        assert _report(client, post_id, "shows_me_or_my_child") == 200
        (alert,) = _wait_for_alerts(gallery_engine, "failed")
        login(client, "ad")
        admin = client.get("/admin").text

    assert alert.error and "safeguarding alert not sent" in alert.error
    assert "A safeguarding alert was not sent" in admin and "ConnectionRefusedError" in admin
    with Session(gallery_engine) as session:
        assert len(session.exec(select(TakedownRequest)).all()) == 1
    assert _post(gallery_engine, post_id).takedown_hold


def test_escalation_takes_a_post_off_public_routes_for_good(
    public: TestClient,
    staff: TestClient,
    gallery_engine: Engine,
    settings: Settings,
    smtp: SmtpCapture,
) -> None:
    post_id = publish(gallery_engine, settings, image=tiny_png())
    seen = _post(gallery_engine, post_id)
    token = csrf_token(staff)

    empty = staff.post(f"/queue/posts/{post_id}/escalate", data={"csrf_token": token})
    assert "give a reason" in empty.text and not _post(gallery_engine, post_id).escalated
    staff.post(
        f"/queue/posts/{post_id}/escalate",
        data={"reason": "Disclosure: 'this is happening to me'", "csrf_token": token},
    )

    assert _public_ids(public) == []
    (alert,) = _wait_for_alerts(gallery_engine, "sent")
    body = smtp.messages[0].get_content()
    assert "Escalated to the safeguarding lead by mo" in body and "Platform: Mastodon" in body
    assert seen.author_handle in body and f"/queue/posts/{post_id}" in body
    # A decision made on what the moderator saw before is refused; the post never returns.
    assert _decide(staff, seen, "reject", seen.version)["ok"] is True
    with session_scope(gallery_engine) as session:
        session.get_one(Post, post_id).status = "approved"
    assert _public_ids(public) == []
    again = staff.post(
        f"/queue/posts/{post_id}/escalate", data={"reason": "again", "csrf_token": token}
    )
    assert "already escalated" in again.text


def test_an_escalation_racing_an_approval_makes_the_approval_stale(
    staff: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings, status="pending")
    seen = _post(gallery_engine, post_id)
    staff.post(
        f"/queue/posts/{post_id}/escalate",
        data={"reason": "child at risk", "csrf_token": csrf_token(staff)},
    )

    answer = _decide(staff, seen, "approve", seen.version)

    assert answer["ok"] is False and answer["stale"] is True
    assert _post(gallery_engine, post_id).status == "pending"


def test_the_safeguarding_lead_sees_and_closes_escalations_others_cannot(
    public: TestClient, staff: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    post_id = publish(gallery_engine, settings)
    staff.post(
        f"/queue/posts/{post_id}/escalate",
        data={"reason": "disclosure", "csrf_token": csrf_token(staff)},
    )
    with Session(gallery_engine) as session:
        escalation = session.exec(select(Escalation)).one()

    assert staff.get("/queue/escalations").status_code == 403
    login(public, "lead")
    page = public.get("/queue/escalations")
    assert page.status_code == 200 and "disclosure" in page.text
    assert 'Escalations <span class="count">1</span>' in page.text
    assert public.post("/queue/decide", data={"csrf_token": csrf_token(public)}).status_code == 403
    public.post(
        f"/queue/escalations/{escalation.id}/close",
        data={"outcome": "Referred to MASH", "csrf_token": csrf_token(public)},
    )

    with Session(gallery_engine) as session:
        closed = session.get_one(Escalation, escalation.id)
        assert closed.closed_by == "lead" and closed.outcome == "Referred to MASH"
        events = session.exec(select(AuditEvent).order_by(AuditEvent.id))
        actions = [e.action for e in events if e.action.startswith("escalat")]
    assert actions == ["escalated", "escalation_closed"]
    assert _public_ids(public) == []  # closing does not publish


def test_a_moderator_pauses_the_gallery_and_applies_a_rule_to_the_backlog(
    public: TestClient, staff: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    publish(gallery_engine, settings)
    spam = [
        publish(gallery_engine, settings, status="pending", text=f"buy crypto now {n} #CEADAY21")
        for n in range(3)
    ]
    fine = publish(gallery_engine, settings, status="pending", text="we wrote on our hands")
    token = csrf_token(staff)

    staff.post("/queue/gallery", data={"state": "pause", "reason": "hijack", "csrf_token": token})
    assert public.get("/gallery.json").json()["paused"] is True
    preview = staff.post(
        "/queue/rules",
        data={
            "kind": "blocked_term",
            "pattern": "buy crypto",
            "rule_action": "reject",
            "step": "preview",
            "csrf_token": token,
        },
        headers=JSON,
    ).json()
    assert preview["message"].startswith("Preview: this rule would reject 3 pending posts")
    assert {_post(gallery_engine, p).status for p in spam} == {"pending"}
    applied = staff.post(
        "/queue/rules",
        data={
            "kind": "blocked_term",
            "pattern": "buy crypto",
            "rule_action": "reject",
            "step": "apply",
            "csrf_token": token,
        },
        headers=JSON,
    ).json()
    assert "rejected 3" in applied["message"]
    assert {_post(gallery_engine, p).status for p in spam} == {"rejected"}
    assert _post(gallery_engine, fine).status == "pending"
    staff.post("/queue/gallery", data={"state": "resume", "csrf_token": token})
    assert public.get("/gallery.json").json()["paused"] is False


def test_reject_every_matching_post_after_a_confirmation_with_the_count(
    staff: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    hijack = [
        publish(gallery_engine, settings, status="pending", text=f"raid #CEADAY21 {n}")
        for n in range(25)  # more than one page of the queue
    ]
    keep = publish(gallery_engine, settings, status="pending", text="support from school")
    form = {"tab": "pending", "q": "raid", "reason_choice": "Spam or advertising"}
    queue = staff.get("/queue?tab=pending&q=raid").text
    tools = queue[queue.index('action="/queue/bulk-matching"') :]
    assert '<input type="hidden" name="q" value="raid">' in tools
    assert "<option>Spam or advertising</option>" in tools.split("</form>")[0]

    confirm = staff.post("/queue/bulk-matching", data={**form, "csrf_token": csrf_token(staff)})
    assert confirm.status_code == 200 and "Reject 25 posts?" in confirm.text
    up_to = re.search(r'name="up_to" value="(\d+)"', confirm.text)
    assert up_to is not None
    late = publish(gallery_engine, settings, status="pending", text="raid #CEADAY21 late")
    staff.post(
        "/queue/bulk-matching",
        data={**form, "up_to": up_to.group(1), "csrf_token": csrf_token(staff)},
    )

    assert {_post(gallery_engine, p).status for p in hijack} == {"rejected"}
    assert _post(gallery_engine, keep).status == "pending"
    assert _post(gallery_engine, late).status == "pending"  # arrived after the confirmation


def test_a_bulk_reject_on_versions_seen_before_a_takedown_goes_through(
    public: TestClient, staff: TestClient, gallery_engine: Engine, settings: Settings
) -> None:
    reported, edited = publish(gallery_engine, settings), publish(gallery_engine, settings)
    seen = {p: _post(gallery_engine, p).version for p in (reported, edited)}
    assert _report(public, reported, "personal_information") == 200
    with session_scope(gallery_engine) as session:  # a real change, not a protective bump
        session.get_one(Post, edited).version += 1

    answer = staff.post(
        "/queue/bulk",
        data={
            "selected": [f"{p}:{v}" for p, v in seen.items()],
            "action": "reject",
            "reason_choice": "Spam or advertising",
            "csrf_token": csrf_token(staff),
        },
        headers=JSON,
    ).json()

    assert answer["decided"] == [reported]
    assert list(answer["refused"]) == [str(edited)]
    assert _post(gallery_engine, edited).status == "approved"
