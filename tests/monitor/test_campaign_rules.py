"""Each campaign's own rules, reject reasons and retention periods; shared protection.

Force A (the default campaign, #CEADAY21) and force B (#ForceB) in one install, and a
post carrying both tags: B's own rule must never take a post off A's queue, a shared
rule protects both, and a post held by both goes only when both would let it go.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import _alembic_config, session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, Campaign, ModerationRule, Post, PostStatus
from monitor.services.campaigns import NewCampaign, add_campaign, get_campaign
from monitor.services.ingest import record_posts
from monitor.services.moderation import (
    compose_reason,
    reject_reasons,
    set_reject_reasons,
    use_install_reasons,
)
from monitor.services.placements import set_status, status_in
from monitor.services.retention import purge_candidates, set_campaign_retention
from monitor.services.rules import (
    add_rule,
    apply_ingest_rules,
    apply_to_pending,
    delete_rule,
    preview_on_pending,
    set_rule_enabled,
    set_rule_scope,
)
from tests.factories import make_post

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure(HASHTAGS="CEADAY21")


@pytest.fixture
def force_b(engine: Engine, settings: Settings) -> int:
    with session_scope(engine) as session:
        campaign = add_campaign(
            session, settings, NewCampaign("force-b", "Force B", ["ForceB"]), actor="test"
        )
        return campaign.id or 0


def _campaigns(session: Session, settings: Settings) -> tuple[Campaign, Campaign]:
    return get_campaign(session, settings, None), get_campaign(session, settings, "force-b")


def _store(engine: Engine, settings: Settings, text: str, *tags: str, seen: datetime) -> int:
    post = make_post(media=(), text=text, hashtags=tags)
    with session_scope(engine) as session:
        [post_id] = record_posts(session=session, posts=[post], settings=settings, now=seen).new_ids
        apply_ingest_rules(session=session, post_ids=[post_id])
    return post_id


def _statuses(engine: Engine, post_id: int) -> tuple[PostStatus | None, PostStatus | None]:
    """The post's status in A (the default campaign) and in B."""
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        a = session.exec(select(Campaign).where(Campaign.slug == "default")).one()
        b = session.exec(select(Campaign).where(Campaign.slug == "force-b")).one()
        return status_in(session, post, a.id or 0), status_in(session, post, b.id or 0)


def test_a_campaigns_own_rule_rejects_only_there_and_a_shared_one_everywhere(
    engine: Engine, settings: Settings, force_b: int
) -> None:
    with session_scope(engine) as session:
        _a, b = _campaigns(session, settings)
        add_rule(
            session=session,
            kind="blocked_term",
            pattern="knives",
            action="reject",
            actor="bob",
            campaign=b,
        )
        add_rule(session=session, kind="blocked_term", pattern="scam", action="reject", actor="ad")
        add_rule(
            session=session,
            kind="blocked_term",
            pattern="estate",
            action="flag",
            actor="bob",
            campaign=b,
        )
    both = ("ceaday21", "forceb")
    knives = _store(engine, settings, "knives #CEADAY21 #ForceB", *both, seen=NOW)
    only_a = _store(engine, settings, "knives #CEADAY21", "ceaday21", seen=NOW)
    scam = _store(engine, settings, "a scam #CEADAY21 #ForceB", *both, seen=NOW)
    estate = _store(engine, settings, "the estate #CEADAY21 #ForceB", *both, seen=NOW)

    assert _statuses(engine, knives) == (PostStatus.PENDING, PostStatus.REJECTED)
    assert _statuses(engine, only_a) == (PostStatus.PENDING, None)  # B's rule never saw it
    assert _statuses(engine, scam) == (PostStatus.REJECTED, PostStatus.REJECTED)
    with Session(engine) as session:
        assert session.get(Post, knives).status == PostStatus.PENDING  # still waits in A
        assert session.get(Post, only_a).flag_reasons is None
        flagged = session.get(Post, estate)
        # Every team sees the flag, and its words say whose rule it is.
        assert flagged.flag_reasons == ["Blocked term “estate” (Force B's own rule)"]
        event = session.exec(
            select(AuditEvent).where(AuditEvent.post_id == knives, AuditEvent.action == "reject")
        ).one()
        assert event.campaign_id == force_b


def test_the_backlog_preview_and_apply_keep_to_the_rules_campaign(
    engine: Engine, settings: Settings, force_b: int
) -> None:
    only_a = _store(engine, settings, "cheap knives #CEADAY21", "ceaday21", seen=NOW)
    only_b = _store(engine, settings, "cheap knives #ForceB", "forceb", seen=NOW)
    with session_scope(engine) as session:
        _a, b = _campaigns(session, settings)
        assert (
            preview_on_pending(
                session=session, kind="blocked_term", pattern="knives", action="reject", campaign=b
            )
            == 1
        )
        rule = add_rule(
            session=session,
            kind="blocked_term",
            pattern="knives",
            action="reject",
            actor="bob",
            campaign=b,
        )
        assert apply_to_pending(session=session, rule=rule).rejected == 1
    assert _statuses(engine, only_a) == (PostStatus.PENDING, None)
    assert _statuses(engine, only_b) == (None, PostStatus.REJECTED)


def test_a_campaign_admin_changes_only_their_campaigns_lists(
    engine: Engine, settings: Settings, force_b: int
) -> None:
    with session_scope(engine) as session:
        a, b = _campaigns(session, settings)
        own_a = add_rule(
            session=session, kind="blocked_term", pattern="x", action="flag", actor="al", campaign=a
        ).id
        own_b = add_rule(
            session=session,
            kind="blocked_term",
            pattern="y",
            action="flag",
            actor="bob",
            campaign=b,
        ).id
        shared = add_rule(
            session=session, kind="blocked_term", pattern="z", action="flag", actor="ad"
        ).id
    with session_scope(engine) as session:
        a, b = _campaigns(session, settings)
        with pytest.raises(UserError, match="no rule .* in campaign 'force-b'"):
            delete_rule(session=session, rule_id=own_a or 0, actor="bob", within=b)
        with pytest.raises(UserError, match="shared by every campaign"):
            set_rule_enabled(
                session=session, rule_id=shared or 0, enabled=False, actor="bob", within=b
            )
        with pytest.raises(UserError, match="only an install admin"):
            set_rule_scope(
                session=session, rule_id=own_b or 0, campaign=None, actor="bob", within=b
            )
        set_rule_enabled(session=session, rule_id=own_b or 0, enabled=False, actor="bob", within=b)
        set_rule_scope(session=session, rule_id=own_b or 0, campaign=None, actor="ad")
    with Session(engine) as session:
        assert session.get(ModerationRule, own_a).enabled is True
        assert session.get(ModerationRule, shared).enabled is True
        assert session.get(ModerationRule, own_b).campaign_id is None  # shared by the admin


def test_reject_reasons_are_per_campaign_and_another_campaigns_are_refused(
    engine: Engine, settings: Settings, force_b: int
) -> None:
    with session_scope(engine) as session:
        a, b = _campaigns(session, settings)
        set_reject_reasons(session=session, reasons=["Off topic"], actor="ad")
        assert reject_reasons(session, b) == ["Off topic"]  # the install's, until B has its own
        set_reject_reasons(session=session, reasons=["Not our force"], actor="bob", campaign=b)
        assert reject_reasons(session, b) == ["Not our force"]
        assert reject_reasons(session, a) == ["Off topic"]
        with pytest.raises(UserError, match="choose a reason from the list"):
            compose_reason("Not our force", "", reject_reasons(session, a))
        use_install_reasons(session=session, campaign=b, actor="bob")
        assert reject_reasons(session, b) == ["Off topic"]


def test_a_post_in_two_campaigns_goes_only_when_both_would_let_it_go(
    engine: Engine, settings: Settings, force_b: int
) -> None:
    seen = NOW - timedelta(days=20)
    both = _store(engine, settings, "both #CEADAY21 #ForceB", "ceaday21", "forceb", seen=seen)
    only_b = _store(engine, settings, "b #ForceB", "forceb", seen=seen)
    with session_scope(engine) as session:
        _a, b = _campaigns(session, settings)
        set_status(session, [both, only_b], PostStatus.REJECTED)
        session.execute(
            sa.update(AuditEvent.__table__).values(at=seen)  # rejected twenty days ago
        )
        set_campaign_retention(session, b, {PostStatus.REJECTED: 7}, actor="bob")
    with Session(engine) as session:
        # B would let both go after 7 days; A keeps rejected posts 30 (the install's).
        assert [c.post_id for c in purge_candidates(session, settings, NOW)] == [only_b]
        a, _b = _campaigns(session, settings)
        set_campaign_retention(session, a, {PostStatus.REJECTED: 10}, actor="ad")
        session.flush()
        assert [c.post_id for c in purge_candidates(session, settings, NOW)] == [both, only_b]
        with pytest.raises(UserError, match="0 to"):
            set_campaign_retention(session, a, {PostStatus.PENDING: -1}, actor="ad")


def test_the_migration_keeps_every_existing_rule_shared(engine: Engine) -> None:
    config = _alembic_config(engine)
    command.upgrade(config, "0017")
    command.upgrade(config, "0018")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO moderation_rules (kind, pattern, action, enabled, created_at,"
                " created_by) VALUES ('blocked_term', 'scam', 'reject', true, :at, 'ad')"
            ),
            {"at": NOW},
        )
    command.upgrade(config, "heads")
    with Session(engine) as session:
        rules = session.exec(select(ModerationRule)).all()
        assert "scam" in {rule.pattern for rule in rules}
        assert {rule.campaign_id for rule in rules} == {None}
        [default] = session.exec(select(Campaign)).all()
        assert default.retention_rejected_days is None
