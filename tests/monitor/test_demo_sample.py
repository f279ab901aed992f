"""The training sample covers every case a moderator must learn, and the rules catch theirs."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.text import extract_hashtags
from monitor.config import Settings
from monitor.demo.images import draw_image, ensure_image
from monitor.demo.sample import HIJACK_WINDOW, NETWORKS, Case, build_sample
from monitor.models import Post
from monitor.services.polling import poll_all
from monitor.services.rules import DETECTORS

SAMPLE = build_sample()
CAMPAIGN = {"ceaday21", "helpinghands"}


def _with(case: Case) -> list:
    return [post for post in SAMPLE if post.case is case]


def test_about_two_hundred_posts_across_every_platform_with_unique_ids() -> None:
    assert 180 <= len(SAMPLE) <= 220
    assert len({post.sid for post in SAMPLE}) == len(SAMPLE)
    assert set(Counter(post.network for post in SAMPLE)) == set(NETWORKS)
    assert all(CAMPAIGN & set(extract_hashtags(post.text)) for post in SAMPLE)
    assert build_sample() is SAMPLE  # built once, the same for every session


def test_most_posts_are_genuine_messages_of_support_written_on_hands() -> None:
    genuine = [post for post in SAMPLE if post.case is None]
    assert len(genuine) > len(SAMPLE) / 2
    hands = [post for post in genuine if post.image and post.image.style == "hand"]
    assert len(hands) > 50 and all(post.image and post.image.alt for post in hands)


@pytest.mark.parametrize("case", list(Case))
def test_every_training_case_is_in_the_sample(case: Case) -> None:
    assert _with(case), f"no sample post for {case}"


def test_phone_numbers_are_caught_by_the_uk_phone_detector_and_use_drama_ranges() -> None:
    phone = DETECTORS["uk_phone"][1]
    for post in _with(Case.PHONE_NUMBER):
        match = phone.search(post.text)
        assert match, post.text
        digits = "".join(ch for ch in match.group() if ch.isdigit())
        assert "7700900" in digits or "1164960" in digits  # Ofcom's numbers for drama
    edited = _with(Case.EDITED_AT_SOURCE)[0]
    assert edited.edit_text and phone.search(edited.edit_text)
    assert not phone.search(edited.text)


def test_no_genuine_post_trips_a_detector() -> None:
    """A detector that fires on a harmless post would teach trainees to ignore flags."""
    for post in SAMPLE:
        if post.case in (Case.PHONE_NUMBER, Case.CONTACT_DETAILS):
            continue
        hits = [name for name, (_, regex) in DETECTORS.items() if regex.search(post.text)]
        assert not hits, (post.sid, post.text, hits)


def test_school_names_are_in_the_text_for_a_person_to_notice() -> None:
    schools = _with(Case.SCHOOL_NAME)
    words = ("Primary", "Academy", "High School")
    assert len(schools) >= 3 and all(any(w in post.text for w in words) for post in schools)


def test_a_childs_face_is_an_image_marked_sensitive() -> None:
    faces = _with(Case.CHILD_FACE)
    assert faces and all(p.image and p.image.style == "face" and p.image.sensitive for p in faces)
    others = [p for p in SAMPLE if p.image and p.case is not Case.CHILD_FACE]
    assert not any(p.image and p.image.sensitive for p in others)


def test_images_without_alt_text_are_exactly_the_no_alt_cases() -> None:
    missing = {p.sid for p in SAMPLE if p.image and not p.image.alt}
    assert missing == {p.sid for p in _with(Case.NO_ALT_TEXT)}


def test_spam_comes_from_a_few_accounts_posting_again_and_again() -> None:
    spam = _with(Case.SPAM)
    authors = Counter(post.handle for post in spam)
    assert len(spam) >= 6 and all(count >= 2 for count in authors.values())


def test_abusive_replies_name_an_account_or_insult() -> None:
    abuse = _with(Case.ABUSE)
    assert len(abuse) >= 5
    assert sum(post.text.startswith("@") for post in abuse) >= 3


def test_the_hijack_is_an_off_topic_burst_from_many_accounts() -> None:
    hijack = _with(Case.HIJACK)
    assert len(hijack) >= 10
    assert len({post.handle for post in hijack}) == len(hijack)
    start, end = HIJACK_WINDOW
    assert all(start <= post.release <= end for post in hijack)
    assert all("helpinghands" in extract_hashtags(post.text) for post in hijack)
    assert not any("ceaday21" in extract_hashtags(post.text) for post in hijack)


def test_one_post_is_edited_and_another_deleted_at_source() -> None:
    [edited] = _with(Case.EDITED_AT_SOURCE)
    [deleted] = _with(Case.DELETED_AT_SOURCE)
    assert edited.release == 0 and edited.edit_at and 0 < edited.edit_at < 1
    assert deleted.release == 0 and deleted.delete_at and 0 < deleted.delete_at < 1


def test_images_are_drawn_locally_and_the_same_every_time(tmp_path) -> None:
    face = _with(Case.CHILD_FACE)[0]
    assert face.image is not None
    first, second = io.BytesIO(), io.BytesIO()
    draw_image(face.image).save(first, format="PNG")
    draw_image(face.image).save(second, format="PNG")
    assert first.getvalue() == second.getvalue()
    path = ensure_image(face, tmp_path / "media")
    with Image.open(path) as picture:
        assert picture.format == "JPEG" and picture.size == (800, 600)
    assert ensure_image(face, tmp_path / "media") == path
    assert [p.name for p in (tmp_path / "media").iterdir()] == [path.name]  # no leftovers
    with pytest.raises(ValueError, match="no image"):
        ensure_image(next(p for p in SAMPLE if p.image is None), tmp_path)


def test_ingest_rules_flag_the_personal_data_cases_and_nothing_else(
    sqlite_engine: Engine, configure: Callable[..., Settings], training_mode: None
) -> None:
    started = datetime.now(UTC) - timedelta(hours=1)
    settings = configure(
        PLATFORMS="demo",
        DEMO_SAMPLE="on",
        DEMO_STARTED_AT=started.isoformat(),
        DEMO_RELEASE_SECONDS="60",
    )
    assert all(summary.ok for summary in poll_all(engine=sqlite_engine, settings=settings))
    with Session(sqlite_engine) as session:
        flagged = {post.external_id for post in session.exec(select(Post)) if post.flagged}
    # An hour in, the post edited to add a phone number is first seen with it.
    personal = (Case.PHONE_NUMBER, Case.CONTACT_DETAILS, Case.EDITED_AT_SOURCE)
    assert flagged == {post.sid for post in SAMPLE if post.case in personal}
