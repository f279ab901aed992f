"""Builders of normalised records for tests: ``make_post(**overrides)``."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import Author, Engagement, FetchedPost, Media

_numbers = itertools.count(1)
BASE_TIME = datetime(2021, 3, 18, 9, 0, tzinfo=UTC)


def make_post(**overrides: Any) -> FetchedPost:
    """A plausible Mastodon post; each call gets a new id unless one is given."""
    number = next(_numbers)
    post = FetchedPost(
        platform="mastodon",
        external_id=f"https://example.social/users/u{number}/statuses/{number}",
        url=f"https://example.social/@u{number}/{number}",
        author=Author(handle=f"@u{number}@example.social", name=f"User {number}"),
        text=f"Message {number} written on my hands #CEADAY21",
        html=f"<p>Message {number} written on my hands #CEADAY21</p>",
        created_at=BASE_TIME + timedelta(minutes=number),
        hashtags=("ceaday21",),
        media=(Media(kind="image", url=f"https://files.example.social/{number}.jpg", alt="Hands"),),
        engagement=Engagement(likes=1, shares=0, replies=0),
        ref=f"https://example.social|{number}",
    )
    return dataclasses.replace(post, **overrides)
