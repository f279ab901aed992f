"""A Mastodon instance's public API, as documented on docs.joinmastodon.org.

``GET /api/v1/timelines/tag/:hashtag`` with ``max_id`` / ``since_id`` /
``min_id`` / ``limit`` (default 20, max 40) and a ``Link`` header with
``next`` (older) and ``prev`` (newer); ``GET /api/v1/statuses?id[]=`` and
``GET /api/v1/statuses/:id``. Ids are decimal strings.

Beyond the transport faults of :class:`FakeServer`, an instance can misbehave
the way real ones do (:meth:`FakeMastodon.misbehave`): answer the previous
page again, or ignore ``min_id`` and answer an older page.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tests.fakes.server import FakeRequest, FakeServer, Reply

BASE_ID = 109_000_000_000_000_000
MISBEHAVIOURS = ("repeat", "backwards")


@dataclasses.dataclass
class Misbehaviour:
    """A wrong answer the tag timeline gives instead of the right one.

    ``repeat``: the same statuses as the previous answer for that hashtag (a
    server looping on its pagination). ``backwards``: ``min_id`` ignored, the
    page at and before it instead (a cursor that goes backwards). ``tag``
    limits it to one hashtag's timeline; ``after`` lets that many requests it
    could strike through first.
    """

    kind: str
    tag: str | None = None
    after: int = 0


class FakeMastodon:
    """An instance holding statuses; ``add`` posts one, ``delete``/``edit`` change them."""

    def __init__(self, server: FakeServer, *, domain: str = "example.social") -> None:
        self.server = server
        self.domain = domain
        self.statuses: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        # Recent enough to be inside any first-poll look-back window.
        self.clock = datetime.now(UTC) - timedelta(hours=24)
        self.misbehaviours: list[Misbehaviour] = []
        #: Misbehaviours that struck a request, in order.
        self.struck: list[Misbehaviour] = []
        self._last_pages: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        server.route("GET", r"/api/v1/timelines/tag/(?P<tag>[^/]+)", self._tag_timeline)
        server.route("GET", r"/api/v1/statuses", self._bulk)
        server.route("GET", r"/api/v1/statuses/(?P<id>\d+)", self._single)

    @property
    def url(self) -> str:
        return self.server.url

    def add(
        self,
        text: str = "My hands say: we are listening #CEADAY21",
        *,
        tags: tuple[str, ...] = ("CEADAY21",),
        uri: str | None = None,
        created_at: datetime | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        number = next(self._ids)
        status_id = str(BASE_ID + number * 1000)
        self.clock = created_at or self.clock + timedelta(minutes=1)
        status = {
            "id": status_id,
            "uri": uri or f"https://{self.domain}/users/user{number}/statuses/{status_id}",
            "url": f"https://{self.domain}/@user{number}/{status_id}",
            "created_at": self.clock.isoformat().replace("+00:00", ".000Z"),
            "edited_at": None,
            "content": f"<p>{text}</p>",
            "spoiler_text": "",
            "sensitive": False,
            "visibility": "public",
            "account": {
                "id": str(number),
                "username": f"user{number}",
                "acct": f"user{number}",
                "display_name": f"User {number}",
                "url": f"https://{self.domain}/@user{number}",
                # As Mastodon's account entity gives it: what potential reach adds up.
                "followers_count": 100 * number,
            },
            "media_attachments": [],
            "tags": [{"name": t.lower(), "url": f"https://{self.domain}/tags/{t}"} for t in tags],
            "favourites_count": 0,
            "reblogs_count": 0,
            "replies_count": 0,
        }
        status.update(fields)
        self.statuses[status_id] = status
        return status

    def add_many(self, count: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [self.add(f"Message {i} on my hands #CEADAY21", **kwargs) for i in range(count)]

    def delete(self, status_id: str) -> None:
        del self.statuses[status_id]

    def edit(self, status_id: str, text: str) -> dict[str, Any]:
        """Change a status's text at source, as its author editing it would."""
        status = self.statuses[status_id]
        status["content"] = f"<p>{text}</p>"
        status["edited_at"] = datetime.now(UTC).isoformat().replace("+00:00", ".000Z")
        return status

    def misbehave(
        self, kind: str, *, tag: str | None = None, times: int = 1, after: int = 0
    ) -> None:
        """Queue ``times`` wrong answers of ``kind`` (see :class:`Misbehaviour`)."""
        if kind not in MISBEHAVIOURS:
            raise ValueError(f"unknown misbehaviour {kind!r}: one of {MISBEHAVIOURS}")
        with self._lock:
            self.misbehaviours.extend(Misbehaviour(kind, tag, after) for _ in range(times))

    def _take_misbehaviour(self, tag: str, request: FakeRequest) -> Misbehaviour | None:
        """The first queued misbehaviour this request can suffer, if its turn has come."""
        with self._lock:
            for index, wrong in enumerate(self.misbehaviours):
                if wrong.tag is not None and wrong.tag.lower() != tag:
                    continue
                if wrong.kind == "repeat" and tag not in self._last_pages:
                    continue
                if wrong.kind == "backwards" and not request.arg("min_id"):
                    continue
                if wrong.after > 0:
                    wrong.after -= 1
                    return None
                self.struck.append(wrong)
                return self.misbehaviours.pop(index)
        return None

    def _tagged(self, tag: str) -> list[dict[str, Any]]:
        tag = tag.lower()
        found = [
            s for s in self.statuses.values() if any(t["name"] == tag for t in s.get("tags") or [])
        ]
        return sorted(found, key=lambda s: int(s["id"]), reverse=True)

    def _tag_timeline(self, request: FakeRequest) -> Reply:
        tag = request.path.rsplit("/", 1)[1].lower()
        limit = min(int(request.arg("limit") or 20), 40)
        wrong = self._take_misbehaviour(tag, request)
        if wrong is not None and wrong.kind == "repeat":
            page = self._last_pages[tag]
        elif wrong is not None:  # backwards: the page at and before min_id
            at_or_before = int(request.arg("min_id") or 0)
            page = [s for s in self._tagged(tag) if int(s["id"]) <= at_or_before][:limit]
        else:
            page = self._right_page(tag, request, limit)
        with self._lock:
            self._last_pages[tag] = page
        headers = {}
        if page:
            base = f"{self.url}{request.path}"
            older = urlencode({"limit": limit, "max_id": page[-1]["id"]})
            newer_q = urlencode({"limit": limit, "min_id": page[0]["id"]})
            headers["Link"] = f'<{base}?{older}>; rel="next", <{base}?{newer_q}>; rel="prev"'
        return Reply.json(page, headers=headers)

    def _right_page(self, tag: str, request: FakeRequest, limit: int) -> list[dict[str, Any]]:
        """The page the documented API answers for these parameters."""
        statuses = self._tagged(tag)
        if max_id := request.arg("max_id"):
            statuses = [s for s in statuses if int(s["id"]) < int(max_id)]
        if since_id := request.arg("since_id"):
            statuses = [s for s in statuses if int(s["id"]) > int(since_id)]
        if min_id := request.arg("min_id"):
            # min_id: the page immediately newer than min_id, still newest first.
            newer = [s for s in statuses if int(s["id"]) > int(min_id)]
            return list(reversed(list(reversed(newer))[:limit]))
        return statuses[:limit]

    def _bulk(self, request: FakeRequest) -> Reply:
        ids = request.query.get("id[]", [])
        return Reply.json([self.statuses[i] for i in ids if i in self.statuses])

    def _single(self, request: FakeRequest) -> Reply:
        status = self.statuses.get(request.path.rsplit("/", 1)[1])
        return Reply.json(status) if status else Reply.json({"error": "Record not found"}, 404)
