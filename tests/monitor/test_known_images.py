"""Known images: each image's hash, reposts grouped, the never-again bank and imported banks."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import lru_cache

import pytest
from PIL import Image, ImageOps
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from benchmarks.imageset import jpeg, photos
from monitor.analysis.context import build_context, store_notes, take_notes
from monitor.analysis.findings import Context, ImageInput, Verdict
from monitor.analysis.known import KnownImageDetector, hash_image
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, HashBankEntry, ImageFacts, MediaItem, Post
from monitor.services.ingest import record_posts
from monitor.services.known_images import (
    delete_bank,
    import_bank,
    list_banks,
    parse_bank_file,
    posts_with_picture_of,
    reposts_for,
    set_never_again_policy,
)
from monitor.services.moderation import decide, load_cards
from monitor.services.undo import undo_decision
from tests.factories import make_post
from tests.web.auth_helpers import make_user


@lru_cache(maxsize=1)
def _pictures() -> dict[str, Image.Image]:
    return photos()


def _posts(engine: Engine, count: int) -> list[tuple[int, int]]:
    """``count`` new posts with one image each: (post id, media id)."""
    with session_scope(engine) as session:
        ids = record_posts(session=session, posts=[make_post() for _ in range(count)]).new_ids
        media = session.exec(select(MediaItem).where(MediaItem.post_id.in_(ids))).all()  # type: ignore[attr-defined]
        by_post = {item.post_id: item.id or 0 for item in media}
    return [(post_id, by_post[post_id]) for post_id in ids]


def _analyse(engine: Engine, post_id: int, media_id: int, image: Image.Image) -> list[str]:
    """Run the known-image detector as the pipeline does: the context built from the
    database, the findings and the image's notes pickled back from the analyser process,
    the notes stored in the transaction that applies the findings. The findings' words."""
    with session_scope(engine) as session:
        context = build_context(session)
    item = ImageInput(image=image, position=1, media_id=media_id, post_id=post_id)
    findings = KnownImageDetector().analyse(item, context)
    findings, notes = pickle.loads(pickle.dumps((findings, take_notes(context, media_id))))
    assert context.notes == {}
    with session_scope(engine) as session:
        store_notes(session, {media_id: notes})
    return [f"{f.verdict.value}: {f.words}" for f in findings]


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure()


def _reject(engine: Engine, settings: Settings, post_id: int) -> None:
    with session_scope(engine) as session:
        decide(
            session=session,
            post=session.get_one(Post, post_id),
            action="reject",
            actor="mo",
            reason="Abusive",
            settings=settings,
        )


def test_reposts_of_one_picture_are_grouped_and_others_are_not(engine: Engine) -> None:
    posts = _posts(engine, 4)
    astronaut = _pictures()["astronaut"]
    images = [astronaut, jpeg(astronaut, 40), ImageOps.mirror(astronaut), _pictures()["coffee"]]
    for (post_id, media_id), image in zip(posts, images, strict=True):
        assert _analyse(engine, post_id, media_id, image) == []
    with Session(engine) as session:
        facts = {f.media_id: f for f in session.exec(select(ImageFacts))}
        first = posts[0][1]
        assert [facts[m].picture for _, m in posts] == [first, first, first, posts[3][1]]
        assert all(len(f.pdq or "") == 64 for f in facts.values())
        everyone = [session.get_one(Post, p) for p, _ in posts]
        groups = reposts_for(session, everyone)
        assert groups[posts[0][0]].others == 2
        assert sorted(groups[posts[1][0]].pending) == sorted(p for p, _ in posts[:3])
        assert posts[3][0] not in groups
        shown = posts_with_picture_of(session, everyone[1], limit=100)
        assert [p.id for p in shown] == [posts[1][0], posts[0][0], posts[2][0]]
        [card] = load_cards(session, [everyone[2]])
        assert card.reposts is not None and card.reposts.others == 2


def test_a_rejected_picture_is_rejected_again_when_reposted_and_undo_lifts_it(
    engine: Engine, settings: Settings
) -> None:
    make_user(engine, "mo", "moderator")
    (first, first_media), (second, second_media), (third, third_media) = _posts(engine, 3)
    astronaut = _pictures()["astronaut"]
    _analyse(engine, first, first_media, astronaut)
    _reject(engine, settings, first)
    with Session(engine) as session:
        [entry] = session.exec(select(HashBankEntry)).all()
        assert entry.post_id == first and "rejected" in (entry.note or "")
        assert "Abusive" not in (entry.note or "")  # the reason stays with its own post
    [found] = _analyse(engine, second, second_media, jpeg(ImageOps.mirror(astronaut), 50))
    assert found.startswith(
        f"reject: Known image: a picture rejected before: image 1 of post {first},"
    )
    assert found.endswith("(image 1)")

    with session_scope(engine) as session:
        set_never_again_policy(session=session, policy="flag", actor="ad")
    [found] = _analyse(engine, third, third_media, astronaut)
    assert found.startswith("flag: Known image")

    with session_scope(engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.post_id == first, AuditEvent.action == "reject")
        ).one()
        undo_decision(session=session, actor="mo", event_id=event.id or 0)
    with Session(engine) as session:
        assert session.exec(select(HashBankEntry)).all() == []
    assert _analyse(engine, third, third_media, astronaut) == []


def test_an_image_analysed_after_its_post_was_rejected_is_banked_then(
    engine: Engine, settings: Settings
) -> None:
    make_user(engine, "mo", "moderator")
    (post_id, media_id), (other, other_media) = _posts(engine, 2)
    _reject(engine, settings, post_id)
    _analyse(engine, post_id, media_id, _pictures()["chelsea"])
    [found] = _analyse(engine, other, other_media, jpeg(_pictures()["chelsea"], 60))
    assert found.startswith("reject: Known image")


def test_a_rule_s_automatic_rejection_does_not_bank_the_picture(engine: Engine) -> None:
    from monitor.services.rules import add_rule, apply_ingest_rules

    with session_scope(engine) as session:
        add_rule(session=session, kind="blocked_term", pattern="spam", action="reject", actor="ad")
        ids = record_posts(session=session, posts=[make_post(text="spam #CEADAY21")]).new_ids
        apply_ingest_rules(session=session, post_ids=ids)
        media = session.exec(select(MediaItem).where(MediaItem.post_id == ids[0])).one()
    _analyse(engine, ids[0], media.id or 0, _pictures()["rocket"])
    with Session(engine) as session:
        assert session.get_one(Post, ids[0]).status == "rejected"
        assert session.exec(select(HashBankEntry)).all() == []


def test_an_imported_bank_match_is_escalated(engine: Engine) -> None:
    [(post_id, media_id)] = _posts(engine, 1)
    coffee = _pictures()["coffee"]
    [banked, *_], _ = hash_image(coffee)
    data = f"hash,quality\n{banked.upper()},100\n# a comment\n{'0' * 64}\n".encode()
    with session_scope(engine) as session:
        bank, count = import_bank(session=session, name="Programme list", data=data, actor="ad")
        assert count == 2
    [found] = _analyse(engine, post_id, media_id, jpeg(coffee, 40))
    assert found.startswith(
        "escalate: Known image: matches the imported hash bank “Programme list”"
    )
    with session_scope(engine) as session:
        assert [(b.name, n) for b, n in list_banks(session)] == [("Programme list", 2)]
        audit = session.exec(
            select(AuditEvent).where(AuditEvent.action == "hash_bank_imported")
        ).one()
        assert audit.actor == "ad" and audit.detail == {"bank_id": bank.id, "hashes": 2}
        delete_bank(session=session, bank_id=bank.id or 0, actor="ad")
    assert _analyse(engine, post_id, media_id, coffee) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\n \n", "empty"),
        (b"\x00\x01\x02", "not text"),
        (b"\xff\xfe" + "é".encode("latin-1") * 3, "not UTF-8"),
        (b"hash\n", "no PDQ hashes"),
        (("a" * 64 + "\n" + "z" * 64 + "\n").encode(), "line 2: 'zzzz"),
        (("a" * 64 + "\n" + "a" * 63 + "\n").encode(), "line 2"),
        (("a" * 64 + "\n12345\n").encode(), "line 2"),
    ],
)
def test_bad_bank_files_are_refused_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_bank_file(data)


def test_bank_files_in_the_shapes_programmes_export_are_read() -> None:
    a, b = "a" * 64, "0123456789abcdef" * 4
    assert parse_bank_file(f"{a}\t100\t2026-12-01\n{b};80\n{a}\n".encode()) == [a, b]
    assert parse_bank_file(f'pdq_hash,label\n"{b}",x\n'.encode()) == [b]


def test_bank_names_are_needed_and_unique(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        import_bank(session=session, name="List", data=("a" * 64).encode(), actor="ad")
        with pytest.raises(UserError, match="exists"):
            import_bank(session=session, name="List", data=("b" * 64).encode(), actor="ad")
        with pytest.raises(UserError, match="name the bank"):
            import_bank(session=session, name=" ", data=("b" * 64).encode(), actor="ad")
        with pytest.raises(UserError, match="no imported hash bank"):
            delete_bank(session=session, bank_id=999, actor="ad")


def test_without_banks_nothing_matches(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        context = build_context(session)
    assert isinstance(context, Context)
    [digest, *_], _ = hash_image(_pictures()["rocket"])
    assert context.known_match(digest) is None
    # A fresh install has the personal-data detectors on.
    assert list(context.text_reasons("call 07700 900123")) == [
        ("Personal data: looks like a UK phone number", Verdict.FLAG)
    ]


def test_the_context_runs_the_post_text_rules_over_image_text(sqlite_engine: Engine) -> None:
    from monitor.services.rules import add_place_list, add_rule

    with session_scope(sqlite_engine) as session:
        add_rule(session=session, kind="blocked_term", pattern="gang", action="reject", actor="ad")
        add_place_list(session=session, title="Schools", data=b"Eastgate Academy", actor="ad")
        context = build_context(session)
    assert list(context.text_reasons("join the GANG at eastgate academy, 07700 900123")) == [
        ("Blocked term “gang”", Verdict.REJECT),
        ("Personal data: looks like a UK phone number", Verdict.FLAG),
        ("Place name “Eastgate Academy”", Verdict.FLAG),
    ]


def test_a_picture_image_analysis_rejected_is_banked_with_its_notes(engine: Engine) -> None:
    from monitor.models import PostStatus
    from monitor.services.audit import Action
    from monitor.services.moderation import change_status

    (post_id, media_id), (other, other_media) = _posts(engine, 2)
    with session_scope(engine) as session:
        post = session.get_one(Post, post_id)
        change_status(
            session, post, PostStatus.REJECTED, actor="analysis:nudity", action=Action.REJECT
        )
    _analyse(engine, post_id, media_id, _pictures()["hubble"])
    [found] = _analyse(engine, other, other_media, jpeg(_pictures()["hubble"], 50))
    assert found.startswith("reject: Known image: a picture rejected before")
