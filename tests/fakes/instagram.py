"""The Instagram Graph API's hashtag search, as documented on developers.facebook.com.

``GET /ig_hashtag_search?user_id=&q=``, ``GET /{hashtag-id}/recent_media`` (the
last 24 hours only, newest first, ``limit`` up to 50, ``paging.cursors.after``
plus ``paging.next`` while more remain), ``GET /?ids=a,b`` (one missing id
fails the whole request with error 803) and ``GET /{media-id}`` (error 100/33
when gone). Every call needs ``access_token``; errors use the Graph error body.
Payloads are built from the documentation-shaped files in
``tests/fixtures/instagram/``.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.fakes.server import FakeRequest, FakeServer, Reply

FIXTURES = Path(__file__).parent.parent / "fixtures" / "instagram"
TOKEN = "EAAGtest-long-lived-token"
USER_ID = "17841405309211844"
_TAG_RE = re.compile(r"#(\w+)")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def graph_time(when: datetime) -> str:
    """Graph API timestamps: ISO 8601 with a ``+0000`` offset."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class FakeInstagram:
    """Holds media by id; ``add`` publishes, ``delete`` / ``edit`` change them."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.token = TOKEN
        self.media: dict[str, dict[str, Any]] = {}
        #: Hashtag each media is indexed under (Instagram also indexes tags in comments).
        self.indexed: dict[str, set[str]] = {}
        self.hashtag_ids: dict[str, str] = {}
        self.hashtag_queries: list[str] = []
        self.page_size = 25
        #: Extra headers on every answer (usage headers, for instance).
        self.headers: dict[str, str] = {}
        #: Queued error bodies (status, fixture body, extra headers) answered before anything.
        self.errors: list[tuple[int, Any, dict[str, str]]] = []
        #: Media served again at the top of every page after the first (a buggy server).
        self.repeat_on_every_page: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.clock = self.now - timedelta(hours=20)
        #: The ``oe`` parameter of signed media URLs: hexadecimal Unix time, 3 days ahead.
        self.expiry = f"{int((self.now + timedelta(days=3)).timestamp()):X}"
        server.route("GET", r"/ig_hashtag_search", self._hashtag_search)
        server.route("GET", r"/(?P<id>\d+)/recent_media", self._recent_media)
        server.route("GET", r"/", self._by_ids)
        server.route("GET", r"/(?P<id>\d+)", self._single)

    @property
    def url(self) -> str:
        return self.server.url

    def add(
        self,
        caption: str = "We are listening #CEADAY21",
        *,
        created_at: datetime | None = None,
        tags: tuple[str, ...] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Publish an image (shaped like the documentation's first example)."""
        number = next(self._ids)
        media_id = str(17880997618081620 + number)
        self.clock = created_at or self.clock + timedelta(minutes=1)
        media = copy.deepcopy(fixture("recent_media.json")["data"][0])
        media.update(
            id=media_id,
            caption=caption,
            permalink=f"https://www.instagram.com/p/C6post{number}/",
            timestamp=graph_time(self.clock),
            media_url=f"https://scontent.cdninstagram.com/v/{media_id}.jpg?oe={self.expiry}&oh=1",
        )
        media.update(fields)
        self.media[media_id] = media
        found = tags if tags is not None else _TAG_RE.findall(caption)
        self.indexed[media_id] = {tag.casefold() for tag in found}
        return media

    def add_carousel(self, caption: str = "Assembly #CEADAY21") -> dict[str, Any]:
        album = copy.deepcopy(fixture("recent_media.json")["data"][1])
        for child in album["children"]["data"]:
            child["media_url"] = child["media_url"].replace("oe=6650B000", f"oe={self.expiry}")
        return self.add(caption, media_type="CAROUSEL_ALBUM", children=album["children"])

    def add_many(self, count: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [self.add(f"Message {i} #CEADAY21", **kwargs) for i in range(count)]

    def delete(self, media_id: str) -> None:
        del self.media[media_id]

    def fail_with(
        self, status: int, fixture_name: str, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next request with this documented error body."""
        self.errors.append((status, fixture(fixture_name), headers or {}))

    def _reply(self, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return Reply.json(value, status, {**self.headers, **(headers or {})})

    def _refused(self, request: FakeRequest) -> Reply | None:
        if self.errors:
            status, body, headers = self.errors.pop(0)
            return self._reply(body, status, headers)
        if request.arg("access_token") != self.token:
            return self._reply(fixture("error_token_expired.json"), 400)
        return None

    def _hashtag_search(self, request: FakeRequest) -> Reply:
        if refused := self._refused(request):
            return refused
        name = (request.arg("q") or "").lstrip("#").casefold()
        if request.arg("user_id") != USER_ID:
            return self._reply(fixture("error_missing_object.json"), 400)
        self.hashtag_queries.append(name)
        if not name:
            return self._reply({"data": []})
        hashtag_id = self.hashtag_ids.setdefault(
            name, str(17841593698074073 + len(self.hashtag_ids))
        )
        return self._reply({"data": [{"id": hashtag_id}]})

    def _recent_media(self, request: FakeRequest) -> Reply:
        if refused := self._refused(request):
            return refused
        hashtag_id = request.path.split("/")[1]
        names = [name for name, known in self.hashtag_ids.items() if known == hashtag_id]
        if not names or request.arg("user_id") != USER_ID:
            return self._reply(fixture("error_missing_object.json"), 400)
        horizon = self.now - timedelta(hours=24)
        found = [
            m
            for mid, m in self.media.items()
            if names[0] in self.indexed.get(mid, set()) and _parse(m["timestamp"]) >= horizon
        ]
        found.sort(key=lambda m: str(m.get("timestamp")), reverse=True)
        limit = min(int(request.arg("limit") or 25), 50, self.page_size)
        after = request.arg("after")
        offset = 0
        if after:
            match = re.fullmatch(r"QVFI(\d+)", after)
            if not match:
                return self._reply(fixture("error_missing_object.json"), 400)
            offset = int(match.group(1))
        page = found[offset : offset + limit]
        if offset and self.repeat_on_every_page is not None:
            page = [self.repeat_on_every_page, *page]
        body: dict[str, Any] = {"data": page}
        if offset + limit < len(found):
            cursor = f"QVFI{offset + limit}"
            query = urlencode({"user_id": USER_ID, "limit": limit, "after": cursor})
            body["paging"] = {
                "cursors": {"after": cursor},
                "next": f"{self.url}{request.path}?{query}",
            }
        return self._reply(body)

    def _by_ids(self, request: FakeRequest) -> Reply:
        if refused := self._refused(request):
            return refused
        ids = [i for i in (request.arg("ids") or "").split(",") if i]
        missing = [i for i in ids if i not in self.media]
        if missing:
            error = fixture("error_missing_aliases.json")
            error["error"]["message"] = (
                f"(#803) Some of the aliases you requested do not exist: {','.join(missing)}"
            )
            return self._reply(error, 400)
        return self._reply({i: self.media[i] for i in ids})

    def _single(self, request: FakeRequest) -> Reply:
        if refused := self._refused(request):
            return refused
        media = self.media.get(request.path.strip("/"))
        if media is None:
            return self._reply(fixture("error_missing_object.json"), 400)
        return self._reply(media)


def _parse(timestamp: Any) -> datetime:
    """A media's time for the 24-hour window; unreadable ones (planted by tests) count as new."""
    try:
        return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S%z")
    except (TypeError, ValueError):
        return datetime.now(UTC)
