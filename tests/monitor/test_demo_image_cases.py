"""The training sample's image-analysis cases: words on hands the text detector must read,
a school on the place-name list, and one picture reposted by several accounts."""

from __future__ import annotations

from monitor.analysis.findings import Context, ImageInput, Verdict
from monitor.analysis.known import hash_image
from monitor.analysis.text import TextDetector
from monitor.demo.images import draw_image
from monitor.demo.sample import SAMPLE_PLACES, Case, build_sample
from monitor.models import ModerationRule
from monitor.services.rules import DETECTORS, CompiledRules

SAMPLE = build_sample()


def _with(case: Case) -> list:  # type: ignore[type-arg]
    return [post for post in SAMPLE if post.case is case]


def test_the_phone_numbers_are_on_the_hands_not_in_the_words() -> None:
    phone = DETECTORS["uk_phone"][1]
    posts = _with(Case.PHONE_ON_HAND)
    assert len(posts) >= 2
    for post in posts:
        assert post.image is not None and phone.search(post.image.words)
        assert not phone.search(post.text)


def test_the_text_detector_reads_a_sample_hand_and_its_school() -> None:
    detector = TextDetector()
    detector.load()
    phone = ModerationRule(id=1, kind="detector", pattern="uk_phone", action="flag")  # type: ignore[call-arg]
    places = ModerationRule(id=2, kind="place_names", pattern="Sample", action="flag")  # type: ignore[call-arg]
    compiled = CompiledRules([phone, places], [(places, name) for name in SAMPLE_PLACES])
    context = Context(
        text_reasons=lambda text: [(m.label, Verdict.FLAG) for m in compiled.text_matches(text)]
    )
    [on_hand, *_] = _with(Case.PHONE_ON_HAND)
    [school] = _with(Case.PLACE_ON_HAND)
    assert school.image is not None and school.image.words in SAMPLE_PLACES
    expected = {
        on_hand.sid: "Personal data: looks like a UK phone number (in image 1's text)",
        school.sid: f"Place name “{school.image.words}” (in image 1's text)",
    }
    for post in (on_hand, school):
        assert post.image is not None
        [finding] = detector.analyse(ImageInput(draw_image(post.image), 1, 1, 1), context)
        assert finding.words == expected[post.sid]


def test_one_picture_is_reposted_by_several_accounts() -> None:
    posts = _with(Case.REPOST)
    assert len({post.handle for post in posts}) >= 3
    assert len({post.image for post in posts}) == 1
    hashes = {hash_image(draw_image(post.image))[0][0] for post in posts if post.image}
    assert len(hashes) == 1
