"""A campaign's settings page (/admin/campaign): its admins manage its own rules, banks,
reject reasons and retention; shared lists are read-only to them; install admins share a
campaign's list or make a shared one a campaign's own.

Force B's admin (bea) is the attacker of the shared lists and of force C's: a forged id
in every POST is refused with words that do not say whether the list exists, and
nothing changes. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import (
    AuditEvent,
    Campaign,
    HashBank,
    ModerationRule,
    Post,
    PostStatus,
    Role,
    RuleKind,
)
from monitor.services.audit import Action
from monitor.services.campaigns import NewCampaign, add_campaign, get_campaign, grant_role
from monitor.services.ingest import record_posts
from monitor.services.known_images import import_bank
from monitor.services.moderation import DEFAULT_REJECT_REASONS, reject_reasons
from monitor.services.placements import status_in
from monitor.services.rules import add_rule, apply_ingest_rules
from monitor.web.app import create_app
from tests.factories import make_post
from tests.web.auth_helpers import TestClient, app_client, csrf_token, login, make_user

PAGE = "/admin/campaign"
HASHES = ("a" * 64 + "\n" + "b" * 64 + "\n").encode()


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure(HASHTAGS="CEADAY21")


@pytest.fixture
def app(engine: Engine, settings: Settings) -> FastAPI:
    """The default campaign (#CEADAY21), force B (#ForceB) and force C (#ForceC); bea is
    B's admin, bob B's moderator, cy C's admin, ad an install admin."""
    with session_scope(engine) as session:
        for slug, name, tag in (("force-b", "Force B", "ForceB"), ("force-c", "Force C", "ForceC")):
            add_campaign(session, settings, NewCampaign(slug, name, [tag]), actor="test")
    make_user(engine, "ad", "admin")
    make_user(engine, "mo", "moderator")
    for name in ("bea", "bob", "cy"):
        make_user(engine, name, "none")
    with session_scope(engine) as session:
        for name, slug, role in (
            ("bea", "force-b", Role.ADMIN),
            ("bob", "force-b", Role.MODERATOR),
            ("cy", "force-c", Role.ADMIN),
        ):
            grant_role(session, settings, name=name, slug=slug, role=role, actor="test")
    return create_app(settings, engine=engine)


def _client(app: FastAPI, name: str) -> Iterator[TestClient]:
    with app_client(app) as client:
        login(client, name)
        yield client


@pytest.fixture
def bea(app: FastAPI) -> Iterator[TestClient]:
    yield from _client(app, "bea")


@pytest.fixture
def ad(app: FastAPI) -> Iterator[TestClient]:
    yield from _client(app, "ad")


def _message(response: httpx.Response) -> str:
    """The one outcome message the page shows after a change (post, redirect, get)."""
    assert response.status_code == 200, response.text
    found = re.findall(r'<p class="notice">([^<]*)</p>', response.text)
    assert len(found) == 1, response.text
    return html.unescape(found[0])


def _post(client: TestClient, path: str, files: dict[str, object] | None = None, **fields: str):  # type: ignore[no-untyped-def]
    data = {"csrf_token": csrf_token(client), **fields}
    return client.post(path, data=data, files=files)  # type: ignore[arg-type]


def _change(client: TestClient, path: str, **fields: str) -> str:
    return _message(_post(client, path, **fields))


def _campaign(engine: Engine, settings: Settings, slug: str | None) -> Campaign:
    with Session(engine) as session:
        return get_campaign(session, settings, slug)


def _rules(engine: Engine) -> list[tuple[int, str, bool, int | None]]:
    """The rules beside the shared detectors a fresh install starts with."""
    with Session(engine) as session:
        rows = session.exec(select(ModerationRule).order_by(ModerationRule.id))  # type: ignore[arg-type]
        return [
            (r.id or 0, r.pattern, r.enabled, r.campaign_id)
            for r in rows
            if r.kind != RuleKind.DETECTOR
        ]


def _banks(engine: Engine) -> list[tuple[int, str, int | None]]:
    with Session(engine) as session:
        rows = session.exec(select(HashBank).order_by(HashBank.id))  # type: ignore[arg-type]
        return [(b.id or 0, b.name, b.campaign_id) for b in rows]


def _changes_by(engine: Engine, actor: str) -> list[AuditEvent]:
    """The audit rows of what ``actor`` changed (their logins left out), oldest first."""
    with Session(engine) as session:
        query = select(AuditEvent).where(AuditEvent.actor == actor, AuditEvent.action != "login")
        return list(session.exec(query.order_by(AuditEvent.id)))  # type: ignore[arg-type]


def _audit_by(engine: Engine, actor: str) -> list[tuple[str, int | None]]:
    return [(e.action, e.campaign_id) for e in _changes_by(engine, actor)]


def _store(engine: Engine, settings: Settings, text: str) -> tuple[str | None, str | None]:
    """A new post carrying the default campaign's and force B's tags, the rules run on it:
    its status in the default campaign and in B."""
    post = make_post(media=(), text=f"{text} #CEADAY21 #ForceB", hashtags=("ceaday21", "forceb"))
    with session_scope(engine) as session:
        [post_id] = record_posts(session=session, posts=[post], settings=settings).new_ids
        apply_ingest_rules(session=session, post_ids=[post_id])
    with Session(engine) as session:
        found = session.get_one(Post, post_id)
        a = get_campaign(session, settings, None)
        b = get_campaign(session, settings, "force-b")
        return status_in(session, found, a.id or 0), status_in(session, found, b.id or 0)


def test_a_campaign_admin_adds_turns_off_and_deletes_a_rule_that_acts_only_there(
    engine: Engine, settings: Settings, bea: TestClient
) -> None:
    b = _campaign(engine, settings, "force-b")
    page = bea.get(PAGE)
    assert page.status_code == 200 and "Campaign settings: Force B" in page.text
    added = _change(bea, f"{PAGE}/rules", kind="blocked_term", pattern="knives", action="reject")
    [(rule_id, _, _, owner)] = _rules(engine)
    assert added == f"Added rule {rule_id}: Blocked term “knives” (reject)."
    assert owner == b.id
    assert "Blocked term “knives”" in bea.get(PAGE).text
    # B's own rule rejects in B only: the post waits in the default campaign.
    assert _store(engine, settings, "knives") == (PostStatus.PENDING, PostStatus.REJECTED)

    assert _change(bea, f"{PAGE}/rules/{rule_id}/disable") == f"Rule {rule_id} disabled."
    assert _rules(engine) == [(rule_id, "knives", False, b.id)]
    assert _store(engine, settings, "more knives") == (PostStatus.PENDING, PostStatus.PENDING)
    assert _change(bea, f"{PAGE}/rules/{rule_id}/enable") == f"Rule {rule_id} enabled."
    assert _change(bea, f"{PAGE}/rules/{rule_id}/delete") == f"Deleted rule {rule_id}."
    assert _rules(engine) == []
    actions = [Action.RULE_ADDED, Action.RULE_DISABLED, Action.RULE_ENABLED, Action.RULE_DELETED]
    assert _audit_by(engine, "bea") == [(action, b.id) for action in actions]


def test_a_campaign_admin_uploads_a_place_list_and_imports_and_deletes_a_hash_bank(
    engine: Engine, settings: Settings, bea: TestClient
) -> None:
    b = _campaign(engine, settings, "force-b")
    names = {"names": ("places.csv", b"name\nEastgate Academy\nSt Mary's\n", "text/csv")}
    message = _message(_post(bea, f"{PAGE}/rules/places", files=names, title="Schools"))
    assert message.endswith("Place names “Schools”, 2 names (flag).")
    assert [(pattern, owner) for _, pattern, _, owner in _rules(engine)] == [("Schools", b.id)]
    assert "Place names “Schools” (2 names)" in bea.get(PAGE).text

    files = {"hashes": ("bank.csv", HASHES, "text/csv")}
    message = _message(_post(bea, f"{PAGE}/hash-banks", files=files, name="Programme list"))
    assert message == "Imported the hash bank “Programme list”: 2 hashes."
    [(bank_id, _, owner)] = [bank for bank in _banks(engine) if bank[1] == "Programme list"]
    assert owner == b.id
    assert "Programme list" in bea.get(PAGE).text
    deleted = _change(bea, f"{PAGE}/hash-banks/{bank_id}/delete")
    assert deleted == "Deleted the hash bank “Programme list”."
    assert all(bank[1] != "Programme list" for bank in _banks(engine))


def _others(engine: Engine, settings: Settings) -> dict[str, int]:
    """A shared rule and bank, and force C's own: what bea must not change."""
    c = _campaign(engine, settings, "force-c")
    with session_scope(engine) as session:
        kinds = {"kind": "blocked_term", "action": "reject", "actor": "ad"}
        shared = add_rule(session=session, pattern="scam", **kinds)
        theirs = add_rule(session=session, pattern="c-secret-word", campaign=c, **kinds)
        shared_bank, _ = import_bank(session=session, name="Shared list", data=HASHES, actor="ad")
        their_bank, _ = import_bank(
            session=session, name="C secret bank", data=HASHES, actor="cy", campaign=c
        )
        return {
            "shared": shared.id or 0,
            "theirs": theirs.id or 0,
            "shared_bank": shared_bank.id or 0,
            "their_bank": their_bank.id or 0,
        }


def test_forged_ids_of_shared_or_another_campaigns_lists_are_refused_without_a_leak(
    engine: Engine, settings: Settings, bea: TestClient
) -> None:
    ids = _others(engine, settings)
    missing = 10_000
    rules, banks = _rules(engine), _banks(engine)
    page = bea.get(PAGE).text
    assert "scam" in page and "Shared list" in page  # shared: shown, read-only
    assert "c-secret-word" not in page and "C secret bank" not in page
    assert f"/rules/{ids['shared']}/" not in page  # no control on a shared rule
    assert f"/hash-banks/{ids['shared_bank']}/" not in page

    def refusal(path: str, forged: int) -> str:
        """The words of a refusal, its id made a placeholder to compare missing and C's."""
        return _change(bea, path).replace(str(forged), "N")

    for operation in ("enable", "disable", "delete"):
        theirs = refusal(f"{PAGE}/rules/{ids['theirs']}/{operation}", ids["theirs"])
        absent = refusal(f"{PAGE}/rules/{missing}/{operation}", missing)
        assert theirs == absent == "Not done: no rule N in campaign 'force-b'."
        shared = _change(bea, f"{PAGE}/rules/{ids['shared']}/{operation}")
        assert "shared by every campaign: only an install admin changes it" in shared
    for operation in ("share", "own"):
        for forged in (ids["theirs"], ids["shared"], missing):
            assert refusal(f"{PAGE}/rules/{forged}/{operation}", forged) == (
                "Not done: only an install admin shares a list or makes it one campaign's."
            )
    theirs = refusal(f"{PAGE}/hash-banks/{ids['their_bank']}/delete", ids["their_bank"])
    absent = refusal(f"{PAGE}/hash-banks/{missing}/delete", missing)
    assert theirs == absent == "Not done: no imported hash bank N in campaign 'force-b'."
    shared = _change(bea, f"{PAGE}/hash-banks/{ids['shared_bank']}/delete")
    assert "shared by every campaign: only an install admin deletes it" in shared
    for operation in ("share", "own"):
        for forged in (ids["their_bank"], ids["shared_bank"], missing):
            assert "only an install admin" in _change(
                bea, f"{PAGE}/hash-banks/{forged}/{operation}"
            )
    assert _rules(engine) == rules and _banks(engine) == banks
    assert _audit_by(engine, "bea") == []


def test_a_moderator_of_the_campaign_is_refused_the_page_and_every_change(
    app: FastAPI, engine: Engine, settings: Settings
) -> None:
    ids = _others(engine, settings)
    rules, banks = _rules(engine), _banks(engine)
    b = _campaign(engine, settings, "force-b")
    with app_client(app) as bob:
        login(bob, "bob")
        assert bob.get(PAGE).status_code == 403
        assert "Campaign settings" not in bob.get("/queue").text
        posts = [
            ("rules", {"kind": "blocked_term", "pattern": "x", "action": "reject"}),
            (f"rules/{ids['shared']}/disable", {}),
            (f"hash-banks/{ids['shared_bank']}/delete", {}),
            ("reasons", {"reasons": "Mine"}),
            ("reasons/install", {}),
            ("retention", {"rejected_days": "1"}),
        ]
        for path, fields in posts:
            assert _post(bob, f"{PAGE}/{path}", **fields).status_code == 403, path
    assert _rules(engine) == rules and _banks(engine) == banks
    assert _campaign(engine, settings, "force-b").retention_rejected_days is None
    with Session(engine) as session:
        assert reject_reasons(session, b) == reject_reasons(session, None)


def test_the_navigation_offers_the_page_to_the_campaigns_admins_only(
    app: FastAPI, bea: TestClient
) -> None:
    assert '<a href="/admin/campaign"' in bea.get("/queue").text
    assert '<a href="/admin/campaign" aria-current="page"' in bea.get(PAGE).text
    with app_client(app) as mo:
        login(mo, "mo")
        assert '<a href="/admin/campaign"' not in mo.get("/queue").text


def test_an_install_admin_shares_a_campaigns_rule_and_bank_and_takes_them_back(
    engine: Engine, settings: Settings, ad: TestClient, bea: TestClient
) -> None:
    b = _campaign(engine, settings, "force-b")
    _change(bea, f"{PAGE}/rules", kind="blocked_term", pattern="knives", action="reject")
    files = {"hashes": ("bank.csv", HASHES, "text/csv")}
    _post(bea, f"{PAGE}/hash-banks", files=files, name="B list")
    [(rule_id, *_)] = _rules(engine)
    [bank_id] = [bank[0] for bank in _banks(engine) if bank[1] == "B list"]
    assert "Share with every campaign" not in bea.get(PAGE).text  # an install admin's choice

    switched = _post(ad, "/queue/campaign", campaign="force-b")
    assert switched.status_code == 200
    page = ad.get(PAGE).text
    assert "Campaign settings: Force B" in page and "Share with every campaign" in page
    assert _change(ad, f"{PAGE}/rules/{rule_id}/share") == (
        f"Rule {rule_id} is now shared by every campaign."
    )
    assert _rules(engine) == [(rule_id, "knives", True, None)]
    # Shared: it rejects in the default campaign too.
    assert _store(engine, settings, "knives") == (PostStatus.REJECTED, PostStatus.REJECTED)
    assert _change(ad, f"{PAGE}/rules/{rule_id}/own") == f"Rule {rule_id} is now Force B's own."
    assert _rules(engine) == [(rule_id, "knives", True, b.id)]

    shared = _change(ad, f"{PAGE}/hash-banks/{bank_id}/share")
    assert shared == "The hash bank “B list” is now shared by every campaign."
    assert (bank_id, "B list", None) in _banks(engine)
    assert "Make it this campaign's own" in html.unescape(ad.get(PAGE).text)
    _change(ad, f"{PAGE}/hash-banks/{bank_id}/own")
    assert (bank_id, "B list", b.id) in _banks(engine)
    # The install's admin page says whose each list is, once there are several campaigns.
    assert "Force B's own" in html.unescape(ad.get("/admin").text)
    assert _audit_by(engine, "ad").count((Action.RULE_SCOPE_CHANGED, b.id)) == 2
    assert _audit_by(engine, "ad").count((Action.RULE_SCOPE_CHANGED, None)) == 2


def test_reject_reasons_of_the_campaign_round_trip(
    engine: Engine, settings: Settings, bea: TestClient
) -> None:
    b = _campaign(engine, settings, "force-b")
    assert "In force: <strong>the install's list</strong>" in bea.get(PAGE).text
    saved = _change(bea, f"{PAGE}/reasons", reasons="Off topic\n\nShows a face\n")
    assert saved == "Saved 2 reject reasons."
    with Session(engine) as session:
        assert reject_reasons(session, b) == ["Off topic", "Shows a face"]
        assert reject_reasons(session, None) == list(DEFAULT_REJECT_REASONS)
    page = bea.get(PAGE).text
    assert "In force: <strong>this campaign's own list</strong>" in page
    assert "Off topic\nShows a face</textarea>" in page
    back = _change(bea, f"{PAGE}/reasons/install")
    assert back == "Force B now uses the install's reject reasons."
    with Session(engine) as session:
        assert reject_reasons(session, b) == list(DEFAULT_REJECT_REASONS)
    again = _change(bea, f"{PAGE}/reasons/install")
    assert again == "Not done: campaign 'force-b' already uses the install's reject reasons."
    assert _change(bea, f"{PAGE}/reasons", reasons=" \n") == (
        "Not done: keep at least one reject reason."
    )


def test_the_default_campaigns_reasons_are_the_installs(
    engine: Engine, settings: Settings, ad: TestClient
) -> None:
    page = ad.get(PAGE).text
    assert "Campaign settings: " in page and "the install's default campaign" in page
    assert "/admin/campaign/reasons/install" not in page
    _change(ad, f"{PAGE}/reasons", reasons="Install reason")
    b = _campaign(engine, settings, "force-b")
    with Session(engine) as session:
        assert reject_reasons(session, None) == ["Install reason"]
        assert reject_reasons(session, b) == ["Install reason"]  # B has no list of its own


def test_retention_of_the_campaign_round_trips_and_is_audited(
    engine: Engine, settings: Settings, bea: TestClient
) -> None:
    page = bea.get(PAGE).text
    assert "the install's RETENTION_PENDING_DAYS, 90 days" in page
    saved = _change(
        bea, f"{PAGE}/retention", rejected_days="7", pending_days="", removed_days=" 3 "
    )
    assert (
        saved == "Retention of Force B: rejected 7 days, pending 90 days (install), removed 3 days."
    )
    b = _campaign(engine, settings, "force-b")
    periods = (b.retention_rejected_days, b.retention_pending_days, b.retention_removed_days)
    assert periods == (7, None, 3)
    assert 'name="rejected_days" inputmode="numeric" pattern="[0-9]*" maxlength="6" value="7"' in (
        bea.get(PAGE).text
    )
    [event] = _changes_by(engine, "bea")
    assert event.action == Action.RETENTION_SET and event.campaign_id == b.id
    assert event.detail["to"] == {"rejected": 7, "pending": None, "removed": 3}

    for bad, words in (
        ("soon", "rejected days 'soon': give a number of days, or leave it empty"),
        ("-1", "rejected days '-1': give a number of days"),
        ("99999", "a retention period is 0 to 36500 days, not 99999"),
    ):
        refused = _change(bea, f"{PAGE}/retention", rejected_days=bad, removed_days="5")
        assert words in refused
        assert _campaign(engine, settings, "force-b").retention_removed_days == 3
    _change(bea, f"{PAGE}/retention")
    b = _campaign(engine, settings, "force-b")
    periods = (b.retention_rejected_days, b.retention_pending_days, b.retention_removed_days)
    assert periods == (None, None, None)
    assert [e.action for e in _changes_by(engine, "bea")] == [Action.RETENTION_SET] * 2
