"""The training sample as a platform: posts arrive, gain engagement, change and go.

``hashtag-monitor demo`` registers it (:func:`register`) and turns it on
(``DEMO_SAMPLE``); nothing else does, so a real deployment never lists or polls
it. It lives here, with the training mode, because it reads the sample. It goes
through the same polling, ingest and refresh as any platform, so a trainee sees
the product exactly as it behaves:

* posts become visible by time since ``DEMO_STARTED_AT``: most of the sample
  on the first poll, the rest (with an off-topic burst) over
  ``DEMO_RELEASE_SECONDS``;
* refresh reports engagement that grows with each minute since a post arrived,
  one post edited at source and one deleted;
* media URLs point at ``DEMO_MEDIA_BASE``, where the demo serves the images it
  drew, so approval pins them like any platform's media.

The cursor is the position of the last post returned in release order, so
re-polls return only what arrived since.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from adapters import register_adapter
from adapters.base import (
    Adapter,
    Author,
    ConfigError,
    Engagement,
    FetchedPost,
    Media,
    Page,
    RefreshResult,
    Target,
)
from adapters.text import extract_hashtags, normalise_tag, parse_time, text_to_html
from monitor.demo.images import image_name
from monitor.demo.sample import SamplePost, build_sample

if TYPE_CHECKING:
    from adapters.http import HttpClient

PAGE_SIZE = 40
DEFAULT_RELEASE_SECONDS = 240
DEFAULT_MEDIA_BASE = "http://127.0.0.1:8000"
#: Where under ``DEMO_MEDIA_BASE`` the demo serves images and the "original post" pages.
MEDIA_PATH = "/demo/media/"
POSTS_PATH = "/demo/posts/"
#: Networks whose APIs do not report a metric: the sample says "not given", never 0.
_NO_VIEWS = {"mastodon", "bluesky", "instagram", "reddit", "rss"}
_NO_SHARES = {"instagram", "youtube", "reddit", "rss"}


class DemoAdapter(Adapter):
    """The built-in training sample; on only when ``DEMO_SAMPLE`` is set."""

    name: ClassVar[str] = "demo"
    required_keys: ClassVar[tuple[str, ...]] = ("DEMO_SAMPLE",)
    config_keys: ClassVar[tuple[str, ...]] = (
        "DEMO_SAMPLE",
        "DEMO_STARTED_AT",
        "DEMO_RELEASE_SECONDS",
        "DEMO_MEDIA_BASE",
    )

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        super().__init__(config, http)
        started = config.get("DEMO_STARTED_AT", "").strip()
        parsed = parse_time(started) if started else datetime.now(UTC)
        if parsed is None:
            raise ConfigError(f"demo: DEMO_STARTED_AT {started[:40]!r} is not an ISO 8601 time")
        self.started_at = parsed
        window = config.get("DEMO_RELEASE_SECONDS", "").strip() or str(DEFAULT_RELEASE_SECONDS)
        if not window.isdecimal() or not 1 <= int(window) <= 86_400:
            raise ConfigError("demo: DEMO_RELEASE_SECONDS must be a whole number from 1 to 86400")
        self.window = timedelta(seconds=int(window))
        base = config.get("DEMO_MEDIA_BASE", "").strip() or DEFAULT_MEDIA_BASE
        if not base.startswith(("http://", "https://")):
            raise ConfigError("demo: DEMO_MEDIA_BASE must be an http(s) URL")
        self.media_base = base.rstrip("/")
        self.sample = build_sample()
        self._by_sid = {post.sid: post for post in self.sample}

    # --- time -----------------------------------------------------------------------

    def _at(self, fraction: float) -> datetime:
        return self.started_at + self.window * fraction

    def _released(self, post: SamplePost, now: datetime) -> bool:
        return post.release == 0 or self._at(post.release) <= now

    def _gone(self, post: SamplePost, now: datetime) -> bool:
        return post.delete_at is not None and self._at(post.delete_at) <= now

    def _edited(self, post: SamplePost, now: datetime) -> bool:
        return post.edit_at is not None and self._at(post.edit_at) <= now

    # --- records --------------------------------------------------------------------

    def _record(self, post: SamplePost, now: datetime) -> FetchedPost:
        created = (
            self.started_at - timedelta(seconds=post.age)
            if post.release == 0
            else self._at(post.release)
        )
        edited = self._edited(post, now)
        text = post.edit_text if edited and post.edit_text else post.text
        media: tuple[Media, ...] = ()
        if post.image is not None:
            name = image_name(post)
            media = (
                Media(
                    kind="image",
                    url=f"{self.media_base}{MEDIA_PATH}{name}",
                    # Relative, so the queue shows it from the demo's own origin.
                    preview_url=f"{MEDIA_PATH}{name}",
                    alt=post.image.alt,
                    sensitive=post.image.sensitive,
                    width=800,
                    height=600,
                ),
            )
        return FetchedPost(
            platform=self.name,
            external_id=post.sid,
            url=f"{self.media_base}{POSTS_PATH}{post.sid}",
            author=Author(handle=post.handle, name=post.name),
            text=text,
            html=text_to_html(text),
            created_at=created,
            hashtags=extract_hashtags(text),
            media=media,
            engagement=self._engagement(post, created, now),
            sensitive=post.image is not None and post.image.sensitive,
            edited_at=self._at(post.edit_at) if edited and post.edit_at is not None else None,
        )

    def _engagement(self, post: SamplePost, created: datetime, now: datetime) -> Engagement:
        """Counts that grow with every minute since the post arrived."""
        arrived = max(created, self.started_at)
        minutes = max(0.0, (now - arrived).total_seconds() / 60)
        gained = int(post.growth * minutes)
        if post.network == "rss":
            return Engagement()
        return Engagement(
            likes=post.likes + gained,
            shares=None if post.network in _NO_SHARES else post.shares + gained // 4,
            replies=post.replies + gained // 10,
            views=None if post.network in _NO_VIEWS else post.views + gained * 12,
        )

    # --- the contract ---------------------------------------------------------------

    def search(
        self, target: Target, cursor: str | None, *, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        """Posts released so far that carry the target's tags, after the cursor's position."""
        now = datetime.now(UTC)
        wanted = {normalise_tag(tag) for tag in target.hashtags}
        start = int(cursor) + 1 if cursor and cursor.isdecimal() and len(cursor) < 6 else 0
        if start > len(self.sample):
            start = 0  # not a position in this sample: read it again (upserts dedupe)
        batch: list[FetchedPost] = []
        last = emitted = start - 1
        pages = 0
        for position in range(start, len(self.sample)):
            post = self.sample[position]
            if not self._released(post, now):
                break  # the sample is in release order: nothing later is out yet
            last = position
            record = self._record(post, now)
            if self._gone(post, now) or record.created_at < since:
                continue
            if wanted & set(record.hashtags):
                batch.append(record)
            if len(batch) == PAGE_SIZE:
                pages += 1
                yield Page(tuple(batch), cursor=str(last))
                batch, emitted = [], last
                if pages == max_pages:
                    return
        if last > emitted:
            # Also moves the cursor past released posts that carry none of the tags.
            yield Page(tuple(batch), cursor=str(last))

    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        """Current versions of the posts still there; ids deleted at source (or unknown)."""
        now = datetime.now(UTC)
        posts: list[FetchedPost] = []
        deleted: list[str] = []
        for ref in refs:
            post = self._by_sid.get(ref)
            if post is None or self._gone(post, now):
                deleted.append(ref)
            elif self._released(post, now):
                posts.append(self._record(post, now))
        return RefreshResult(posts=tuple(posts), deleted=tuple(deleted))


def register() -> None:
    """Add the sample platform to this process's adapters, as training mode does."""
    register_adapter(DemoAdapter.name, f"{__name__}:{DemoAdapter.__name__}")
