"""Text helpers every adapter shares: hashtag matching, HTML sanitising, plain text.

Platform HTML is hostile: it is only ever kept in the nh3-sanitised form, and
the plain text is derived from that, never from the raw markup.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import nh3

_ALLOWED_TAGS = {"p", "br", "a", "span", "strong", "em", "b", "i", "ul", "ol", "li", "blockquote"}
_ALLOWED_ATTRIBUTES = {"a": {"href"}}

# A hashtag body: word characters plus combining marks and the joiners
# Mastodon allows, so "#HelpingHandsX" is a different tag from "#HelpingHands"
# and a tag with an accent is not cut at the accent.
_TAG_CHARS = r"[\w\u00b7\u200c\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
_HASHTAG_RE = re.compile(rf"(?<![\w/&#])[#＃]({_TAG_CHARS}+)")
_BLOCK_END = {"p", "br", "li", "blockquote", "div"}
_MAX_TEXT_CHARS = 100_000
_MAX_COUNT = 2**63 - 1


def normalise_tag(tag: str) -> str:
    """The matching form of a hashtag: no '#', NFKC, casefolded."""
    return unicodedata.normalize("NFKC", tag.strip().lstrip("#＃")).casefold()


def extract_hashtags(text: str) -> tuple[str, ...]:
    """Every hashtag in plain text, in matching form, first occurrence order.

    Number-only tags ("#1", "#2022") are left out: X, Mastodon and Instagram do
    not make them hashtags either, they are list items and years.
    """
    tags = (normalise_tag(match) for match in _HASHTAG_RE.findall(text))
    return unique(tag for tag in tags if not tag.isdecimal())


def platform_tags(names: Iterable[Any]) -> tuple[str, ...]:
    """Tags a platform handed over as data (entities, facets), in matching form.

    The same rule as :func:`extract_hashtags`: a number-only tag is no hashtag.
    """
    tags = (normalise_tag(name) for name in names if isinstance(name, str))
    return unique(tag for tag in tags if not tag.isdecimal())


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """Drop empties and repeats, keeping the first occurrence's order."""
    return tuple(dict.fromkeys(value for value in values if value))


def sanitise_html(raw: str) -> str:
    """Keep only harmless formatting and http(s) links; everything else is dropped."""
    return nh3.clean(
        raw[: _MAX_TEXT_CHARS * 5],
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow ugc",
    )


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_END:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(raw: str) -> str:
    """Plain text of (sanitised) HTML: paragraphs become blank lines, tags vanish."""
    parser = _TextExtractor()
    parser.feed(sanitise_html(raw))
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return clean_text(re.sub(r"\n{3,}", "\n\n", text))


def text_to_html(text: str) -> str:
    """Sanitised HTML for platforms that give plain text: escaped, line breaks kept."""
    paragraphs = [p for p in re.split(r"\n{2,}", text) if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def clean_text(value: Any, limit: int = _MAX_TEXT_CHARS) -> str:
    """A string field from a payload: non-strings become '', controls stripped, capped."""
    if not isinstance(value, str):
        return ""
    text = "".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return text.strip()[:limit]


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as aware UTC, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # Year 1 with a positive offset (or 9999 with a negative one) leaves datetime's range.
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def iso_seconds(moment: datetime) -> str:
    """``2021-03-18T08:00:00Z``: the RFC 3339 form APIs take as a search bound."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def minute_utc(moment: datetime) -> str:
    """``2021-03-18 08:00 UTC``: a time as messages and gaps show it to people."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def as_count(value: Any) -> int | None:
    """A non-negative engagement count, or None when the platform gave none or nonsense."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdecimal() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int):
        # Counts are stored as BIGINT: anything past it is nonsense, not a number to store.
        return value if 0 <= value <= _MAX_COUNT else None
    return None


def as_id(value: Any) -> str | None:
    """A platform id as a string (APIs send them as strings or numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 500:
        return value.strip()
    return None


def as_object(value: Any) -> dict[str, Any]:
    """A JSON object from a payload, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def as_array(value: Any) -> list[Any]:
    """A JSON array from a payload, or an empty one for anything else."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    """A JSON string from a payload, or '' for anything else."""
    return value if isinstance(value, str) else ""


def http_url(value: Any) -> str | None:
    """An http(s) URL from a payload, or None: other schemes are never kept."""
    if isinstance(value, str) and value.lower().startswith(("https://", "http://")):
        return value.strip()[:2000]
    return None
