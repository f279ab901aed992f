"""An approved post is re-checked at source for as long as it is public, whatever its age.

The finding (issue 12, point 7): refresh only asked for posts created in the last
``REFRESH_WINDOW_DAYS`` by the platform's own date, so an approved post deleted at
source on day ten, or back-dated, stayed public for good.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.models import AuditEvent, Post, PostStatus
from monitor.services.polling import poll_all
from monitor.services.refresh import UNCHECKED_FLAG_AFTER, flag_unchecked, refresh_all
from tests.fakes.mastodon import FakeMastodon


@pytest.fixture
def polled(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> tuple[Settings, list[dict[str, Any]]]:
    statuses = mastodon.add_many(3)
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    assert all(s.ok for s in poll_all(engine=engine, settings=settings))
    return settings, statuses


def _set(engine: Engine, uri: str, **values: Any) -> None:
    with Session(engine) as session:
        post = session.exec(select(Post).where(Post.external_id == uri)).one()
        for name, value in values.items():
            setattr(post, name, value)
        session.add(post)
        session.commit()


def _post(engine: Engine, uri: str) -> Post:
    with Session(engine) as session:
        return session.exec(select(Post).where(Post.external_id == uri)).one()


def test_an_approved_post_back_dated_a_year_and_deleted_at_source_leaves(
    engine: Engine, polled: tuple[Settings, list[dict[str, Any]]], mastodon: FakeMastodon
) -> None:
    settings, statuses = polled
    old_approved, old_pending = statuses[0], statuses[1]
    year_ago = datetime.now(UTC) - timedelta(days=365)
    _set(engine, old_approved["uri"], status=PostStatus.APPROVED, created_at=year_ago)
    _set(engine, old_pending["uri"], created_at=year_ago)
    mastodon.delete(old_approved["id"])
    mastodon.delete(old_pending["id"])

    [summary] = refresh_all(engine=engine, settings=settings)

    assert summary.ok, summary.error
    assert summary.removed == 1  # the public one; the old pending one is outside the window
    assert _post(engine, old_approved["uri"]).status == PostStatus.REMOVED
    assert _post(engine, old_pending["uri"]).status == PostStatus.PENDING


def test_an_old_approved_post_edited_at_source_goes_back_to_the_queue(
    engine: Engine, polled: tuple[Settings, list[dict[str, Any]]]
) -> None:
    settings, statuses = polled
    status = statuses[2]
    _set(
        engine,
        status["uri"],
        status=PostStatus.APPROVED,
        created_at=datetime.now(UTC) - timedelta(days=30),
    )
    status["content"] = "<p>Now selling followers #CEADAY21</p>"
    status["edited_at"] = datetime.now(UTC).isoformat()

    [summary] = refresh_all(engine=engine, settings=settings)

    assert summary.edited == 1
    assert _post(engine, status["uri"]).status == PostStatus.PENDING


def test_an_approved_post_that_cannot_be_rechecked_is_flagged_once(
    engine: Engine, polled: tuple[Settings, list[dict[str, Any]]]
) -> None:
    """Seen neither by a poll nor a refresh for a day (the platform failing, a feed it
    rolled off): still public, but a person must look."""
    _, statuses = polled
    uri = statuses[0]["uri"]
    _set(engine, uri, status=PostStatus.APPROVED)
    later = datetime.now(UTC) + UNCHECKED_FLAG_AFTER + timedelta(minutes=1)

    assert flag_unchecked(engine, "mastodon", datetime.now(UTC)) == 0  # seen just now
    assert flag_unchecked(engine, "mastodon", later) == 1
    assert flag_unchecked(engine, "mastodon", later) == 0  # once, not on every refresh

    post = _post(engine, uri)
    assert post.status == PostStatus.APPROVED and post.flagged
    assert any("Not seen at source since" in r for r in post.flag_reasons or [])
    with Session(engine) as session:
        actions = list(session.exec(select(AuditEvent.action)))
    assert "unchecked_at_source" in actions
