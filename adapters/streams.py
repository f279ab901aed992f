"""What a streaming client yields, and how it waits before reconnecting.

A stream client (:mod:`adapters.mastodon_stream`, :mod:`adapters.jetstream`) is an
async iterator of the events below. It reconnects by itself, with :class:`Backoff`,
and says so with :class:`Connected` and :class:`Disconnected`, so the consumer in
``monitor`` can catch up over REST after every (re)connect and show the source's
mode. Like every adapter it never touches the database: cursors come in as
arguments and go out on the events, for ``monitor`` to commit with the posts.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime

from adapters.base import FetchedPost

#: The most one frame may carry. Mastodon statuses and atproto records (1 MiB at most)
#: fit many times over; a bigger frame is refused, never buffered.
MAX_FRAME_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Connected:
    """A (re)connection is up: whatever happened while it was down must be caught up."""

    url: str
    #: The position asked for (Jetstream's ``time_us``), or None for live-tail.
    cursor: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnected:
    """The stream dropped or was refused; the client waits ``retry_in`` seconds, then retries."""

    reason: str
    retry_in: float


@dataclasses.dataclass(frozen=True, slots=True)
class Posted:
    """A post arrived or was edited at source (an edit of a post never seen is a sighting)."""

    post: FetchedPost
    #: The position to store once this post is committed (None: keep the stored one).
    cursor: str | None = None
    position_at: datetime | None = None
    #: An edit that no longer shows why we would collect the post (its campaign tag was
    #: edited out): it updates a post we hold, and is not a new sighting.
    known_only: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Deleted:
    """A post was deleted at source; ``ref`` is its :attr:`FetchedPost.ref`."""

    ref: str
    cursor: str | None = None
    position_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    """The stream moved on without anything for us (other posts on the network)."""

    cursor: str
    position_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Skipped:
    """A frame that could not be read (malformed, oversized, not the documented shape)."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Gap:
    """The stream could not replay from the cursor (too old for the instance): posts
    between ``since`` and ``until`` must be found another way (a search catch-up)."""

    since: datetime | None
    until: datetime | None
    reason: str


StreamEvent = Connected | Disconnected | Posted | Deleted | Position | Skipped | Gap


class Backoff:
    """Exponential back-off with full jitter, so many clients never reconnect in step.

    The n-th wait is uniform in ``[0, min(cap, base * 2**n)]`` (full jitter, as
    recommended for avoiding reconnect storms); a connection that stayed up for
    ``stable_after`` seconds resets it.
    """

    def __init__(
        self,
        *,
        base: float = 1.0,
        cap: float = 60.0,
        stable_after: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.base, self.cap, self.stable_after = base, cap, stable_after
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """How long to wait before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap, self.base * 2**self.failures)
        self.failures = min(self.failures + 1, 30)
        # Never zero: a server that drops every connection at once must not be hammered.
        return max(self.base / 10, self._rng.uniform(0, ceiling))

    def connected_for(self, seconds: float) -> None:
        """A connection ended after ``seconds``: a long-lived one means the trouble passed."""
        if seconds >= self.stable_after:
            self.failures = 0
