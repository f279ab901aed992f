"""The YouTube Data API v3 as documented on developers.google.com/youtube/v3.

``GET /search`` (``part=snippet&type=video&order=date&q=&publishedAfter=
&publishedBefore=&maxResults=&pageToken=``, 100 units), ``GET /videos``
(``part=snippet,statistics,contentDetails&id=a,b``, 1 unit) and ``GET /channels``
(``part=statistics&id=a,b``, up to 50 channels, 1 unit). Every call needs
``key``; the fake charges the documented quota and answers the documented
error bodies (``quotaExceeded``, ``API_KEY_INVALID``, ``invalidPageToken``).
Payloads are built from the files in ``tests/fixtures/youtube/``.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.server import FakeRequest, FakeServer, Reply

FIXTURES = Path(__file__).parent.parent / "fixtures" / "youtube"
API_KEY = "AIzaSyTest-key-for-the-fake"
_TAG_RE = re.compile(r"#(\w+)")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)  # planted garbage: sorts as new


class FakeYouTube:
    """Holds videos by id; ``add`` publishes one, ``delete`` removes it."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.key = API_KEY
        self.videos: dict[str, dict[str, Any]] = {}
        #: What search matches each video under (search is fuzzier than hashtags).
        self.terms: dict[str, set[str]] = {}
        #: Videos search does not list yet (search lags behind publication).
        self.unindexed: set[str] = set()
        self.daily_quota = 10_000
        self.units = 0
        self.errors: list[tuple[int, Any]] = []
        #: Raw entries appended to the first search page (results search should not give).
        self.odd_results: list[Any] = []
        #: Subscriber counts by channel id (None: hidden by the owner); others unknown.
        self.subscribers: dict[str, int | None] = {
            item["id"]: int(item["statistics"]["subscriberCount"])
            for item in fixture("channels_list.json")["items"]
        }
        #: The channel ids each channels.list call asked for.
        self.channel_calls: list[list[str]] = []
        self._ids = itertools.count(1)
        self.clock = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
        #: Time between two videos added without a publication time.
        self.spacing = timedelta(minutes=1)
        server.route("GET", r"/search", self._search)
        server.route("GET", r"/videos", self._videos)
        server.route("GET", r"/channels", self._channels)

    @property
    def url(self) -> str:
        return self.server.url

    def add(
        self,
        title: str = "Assembly #CEADAY21",
        *,
        description: str = "Talk to us if you are worried.",
        tags: list[str] | None = None,
        published_at: datetime | None = None,
        terms: tuple[str, ...] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        number = next(self._ids)
        video_id = f"vid{number:08d}"
        self.clock = published_at or self.clock + self.spacing
        video = copy.deepcopy(fixture("videos_list.json")["items"][0])
        video["id"] = video_id
        video["snippet"].update(
            publishedAt=rfc3339(self.clock),
            title=title,
            description=description,
            tags=tags if tags is not None else [],
        )
        for thumbnail in video["snippet"]["thumbnails"].values():
            thumbnail["url"] = thumbnail["url"].replace("dQw4w9WgXcQ", video_id)
        video.update(fields)
        self.videos[video_id] = video
        found = terms if terms is not None else _TAG_RE.findall(f"{title} {description}")
        self.terms[video_id] = {term.casefold() for term in [*found, *(tags or [])]}
        return video

    def add_many(self, count: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [self.add(f"Video {i} #CEADAY21", **kwargs) for i in range(count)]

    def delete(self, video_id: str) -> None:
        del self.videos[video_id]

    def fail_with(self, status: int, fixture_name: str) -> None:
        """Answer the next request with this documented error body."""
        self.errors.append((status, fixture(fixture_name)))

    def _charge(self, request: FakeRequest, units: int) -> Reply | None:
        if self.errors:
            status, body = self.errors.pop(0)
            return Reply.json(body, status)
        if request.arg("key") != self.key:
            return Reply.json(fixture("error_key_invalid.json"), 400)
        if self.units + units > self.daily_quota:
            return Reply.json(fixture("error_quota_exceeded.json"), 403)
        self.units += units
        return None

    def _search(self, request: FakeRequest) -> Reply:
        if refused := self._charge(request, 100):
            return refused
        term = (request.arg("q") or "").lstrip("#").casefold()
        after = _parse(request.arg("publishedAfter")) if request.arg("publishedAfter") else None
        before = _parse(request.arg("publishedBefore")) if request.arg("publishedBefore") else None
        found = []
        for video_id, video in self.videos.items():
            snippet = video.get("snippet") if isinstance(video.get("snippet"), dict) else {}
            published = _parse(snippet.get("publishedAt"))
            if video_id in self.unindexed or term not in self.terms.get(video_id, set()):
                continue
            if (after and published < after) or (before and published > before):
                continue
            found.append((published, video))
        found.sort(key=lambda pair: pair[0], reverse=True)
        limit = min(int(request.arg("maxResults") or 5), 50)
        token = request.arg("pageToken")
        offset = 0
        if token:
            match = re.fullmatch(r"CAUQ(\d+)", token)
            if not match:
                return Reply.json(fixture("error_invalid_page_token.json"), 400)
            offset = int(match.group(1))
        template = fixture("search_list.json")
        items = []
        for _, video in found[offset : offset + limit]:
            item = copy.deepcopy(template["items"][0])
            item["id"]["videoId"] = video["id"]
            snippet = video.get("snippet") if isinstance(video.get("snippet"), dict) else {}
            item["snippet"].update(
                publishedAt=snippet.get("publishedAt", rfc3339(datetime.now(UTC))),
                title=snippet.get("title"),
                description=str(snippet.get("description"))[:160],
            )
            items.append(item)
        if offset == 0:
            items.extend(self.odd_results)
        body = {**template, "items": items, "pageInfo": {"totalResults": len(found)}}
        body.pop("nextPageToken")
        if offset + limit < len(found):
            body["nextPageToken"] = f"CAUQ{offset + limit}"
        return Reply.json(body)

    def _videos(self, request: FakeRequest) -> Reply:
        if refused := self._charge(request, 1):
            return refused
        ids = [i for i in (request.arg("id") or "").split(",") if i][:50]
        body = fixture("videos_list.json")
        body["items"] = [self.videos[i] for i in ids if i in self.videos]
        body["pageInfo"] = {"totalResults": len(body["items"]), "resultsPerPage": 50}
        return Reply.json(body)

    def _channels(self, request: FakeRequest) -> Reply:
        if refused := self._charge(request, 1):
            return refused
        ids = [i for i in (request.arg("id") or "").split(",") if i]
        self.channel_calls.append(ids)
        ids = ids[:50]
        body = fixture("channels_list.json")
        template = body["items"][0]
        items = []
        for channel_id in ids:
            if channel_id not in self.subscribers:
                continue
            count = self.subscribers[channel_id]
            statistics = {**template["statistics"], "hiddenSubscriberCount": count is None}
            if count is not None:
                statistics["subscriberCount"] = str(count)
            else:
                statistics.pop("subscriberCount")
            items.append({**template, "id": channel_id, "statistics": statistics})
        body["items"] = items
        body["pageInfo"] = {"totalResults": len(items), "resultsPerPage": 50}
        return Reply.json(body)
