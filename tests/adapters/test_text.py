"""Hashtag matching and HTML handling shared by every adapter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.text import (
    as_count,
    as_id,
    clean_text,
    extract_hashtags,
    html_to_text,
    normalise_tag,
    parse_time,
    sanitise_html,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Listening #HelpingHands", ("helpinghands",)),
        ("#HELPINGHANDS and #helpinghands", ("helpinghands",)),
        ("#HelpingHandsX is another tag", ("helpinghandsx",)),
        ("fullwidth ＃ＣＥＡＤＡＹ２１", ("ceaday21",)),
        ("🙌#CEADAY21🙌", ("ceaday21",)),
        ("مرحبا #HelpingHands شكرا", ("helpinghands",)),
        ("combining #Cafe\u0301 stays one tag", ("café",)),
        ("no tag in a URL https://x.org/#HelpingHands or a&#39;s", ()),
    ],
)
def test_extract_hashtags(text: str, expected: tuple[str, ...]) -> None:
    assert extract_hashtags(text) == expected


def test_normalise_tag_strips_hash_and_casefolds() -> None:
    assert normalise_tag("#HelpingHands") == normalise_tag("helpinghands") == "helpinghands"
    assert normalise_tag("Straße") == "strasse"


def test_sanitise_drops_scripts_handlers_and_javascript_links() -> None:
    dirty = (
        '<p onclick="x()">Hi <script>alert(1)</script>'
        '<a href="javascript:alert(1)">bad</a> <a href="https://ok.org">ok</a>'
        "<img src=x onerror=alert(1)></p>"
    )
    clean = sanitise_html(dirty)
    assert "script" not in clean and "onclick" not in clean and "onerror" not in clean
    assert "javascript:" not in clean and "<img" not in clean
    assert 'href="https://ok.org"' in clean and 'rel="noopener noreferrer nofollow ugc"' in clean


def test_html_to_text_keeps_paragraphs_and_drops_markup() -> None:
    text = html_to_text(
        "<p>First &amp; best<br>line two</p><p>Second <b>para</b></p><script>x</script>"
    )
    assert text == "First & best\nline two\n\nSecond para"


def test_clean_text_rejects_non_strings_and_strips_controls() -> None:
    assert clean_text(None) == "" and clean_text(42) == "" and clean_text({"a": 1}) == ""
    assert clean_text("a\x00b\x1bc\nd") == "abc\nd"
    assert len(clean_text("x" * 500, limit=10)) == 10


def test_field_readers_are_defensive() -> None:
    assert parse_time("2021-03-18T09:00:00.000Z") == datetime(2021, 3, 18, 9, tzinfo=UTC)
    assert parse_time("yesterday") is None and parse_time(12) is None
    assert as_count(3) == 3 and as_count("7") == 7
    assert as_count(-1) is None and as_count(True) is None and as_count("many") is None
    assert as_id(1090) == "1090" and as_id(" 12 ") == "12"
    assert as_id(None) is None and as_id("") is None and as_id(False) is None
