"""The one signing module: a token is good for its own use, unedited, and in time only."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from monitor.signing import MAX_TOKEN_CHARS, TIMED_USES, BadToken, Use, sign, unsign

SECRET = "s" * 43
NOW = 1_800_000_000.0
HOUR = timedelta(hours=1)


def _max_age(use: Use) -> timedelta | None:
    return HOUR if use in TIMED_USES else None


@pytest.mark.parametrize("use", list(Use))
def test_a_token_gives_back_its_value(use: Use) -> None:
    token = sign(use, "42:a b/é", secret=SECRET, now=NOW)

    assert unsign(use, token, secret=SECRET, max_age=_max_age(use), now=NOW) == "42:a b/é"


@pytest.mark.parametrize(
    ("minted", "presented"),
    list(itertools.permutations(Use, 2)),
    ids=lambda use: use.value,
)
def test_a_token_for_one_use_is_refused_for_every_other(minted: Use, presented: Use) -> None:
    token = sign(minted, "7", secret=SECRET, now=NOW)

    with pytest.raises(BadToken) as refused:
        unsign(presented, token, secret=SECRET, max_age=_max_age(presented), now=NOW)
    assert refused.value.use is presented and not refused.value.expired


@pytest.mark.parametrize("use", list(Use))
def test_edited_or_foreign_tokens_are_refused(use: Use) -> None:
    token = sign(use, "7", secret=SECRET, now=NOW)
    value, _, signature = token.rpartition(".")
    forged = [
        "",
        "garbage",
        "7",
        f"8{token[1:]}",
        f"{value}.{signature[::-1]}",
        f"{value}.",
        sign(use, "7", secret="another-secret", now=NOW),
        "7." + "é" * 43,
        "7.\udcff",
        token + "x" * MAX_TOKEN_CHARS,
    ]
    for candidate in forged:
        with pytest.raises(BadToken):
            unsign(use, candidate, secret=SECRET, max_age=_max_age(use), now=NOW)


@pytest.mark.parametrize("use", sorted(TIMED_USES))
def test_timed_tokens_expire_and_cannot_come_from_the_future(use: Use) -> None:
    token = sign(use, "7", secret=SECRET, now=NOW)

    assert unsign(use, token, secret=SECRET, max_age=HOUR, now=NOW + 3600) == "7"
    with pytest.raises(BadToken) as late:
        unsign(use, token, secret=SECRET, max_age=HOUR, now=NOW + 3601)
    assert late.value.expired
    with pytest.raises(BadToken) as early:
        unsign(use, token, secret=SECRET, max_age=HOUR, now=NOW - 60)
    assert early.value.expired


def test_untimed_tokens_are_stable_so_pages_that_carry_them_keep_their_etag() -> None:
    first = sign(Use.GALLERY_CURSOR, "1:2", secret=SECRET, now=NOW)

    assert sign(Use.GALLERY_CURSOR, "1:2", secret=SECRET, now=NOW + 86_400) == first


def test_a_timed_use_must_say_how_old_its_tokens_may_be() -> None:
    token = sign(Use.TAKEDOWN_FORM, "7", secret=SECRET)

    with pytest.raises(TypeError, match="max_age"):
        unsign(Use.TAKEDOWN_FORM, token, secret=SECRET)
    with pytest.raises(TypeError, match="max_age"):
        unsign(Use.SESSION, sign(Use.SESSION, "t", secret=SECRET), secret=SECRET, max_age=HOUR)
