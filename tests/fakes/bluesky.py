"""A Bluesky PDS/AppView speaking the XRPC methods the adapter uses, per the lexicons.

``com.atproto.server.createSession`` / ``refreshSession`` (JWT pair; an expired
access token is answered 400 ``ExpiredToken``), ``app.bsky.feed.searchPosts``
(``q``, ``sort``, ``since`` inclusive and ``until`` exclusive on sortAt,
``limit`` up to 100, an offset ``cursor``) and ``app.bsky.feed.getPosts`` (up
to 25 ``uris``). Every answer carries ``RateLimit-*`` headers. Post views are
built from ``tests/fixtures/bluesky/post_view.json``.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.server import FakeRequest, FakeServer, Reply

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bluesky"
HANDLE = "monitor.example.com"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
# The Bluesky app's rule: '#' after a space or the start, then anything up to
# whitespace, trailing punctuation dropped.
_TAG_IN_TEXT = re.compile(r"(?<!\S)[#＃]([^\s#＃]*[^\s#＃.,;:!?'\")\]])")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeBluesky:
    """Holds posts by at-uri; ``add`` posts one, ``delete``/``edit`` change them."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.posts: dict[str, dict[str, Any]] = {}
        self.errors = fixture("errors.json")
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.logins = 0
        self.refreshes = 0
        #: Value of ``RateLimit-Remaining`` on every answer.
        self.remaining = 2999
        self._numbers = itertools.count(1)
        self._tokens = itertools.count(1)
        self.clock = datetime.now(UTC) - timedelta(hours=24)
        server.route("POST", r"/xrpc/com\.atproto\.server\.createSession", self._create_session)
        server.route("POST", r"/xrpc/com\.atproto\.server\.refreshSession", self._refresh_session)
        server.route("GET", r"/xrpc/app\.bsky\.feed\.searchPosts", self._search)
        server.route("GET", r"/xrpc/app\.bsky\.feed\.getPosts", self._get_posts)
        server.route("GET", r"/xrpc/app\.bsky\.actor\.getProfiles", self._get_profiles)
        #: ``followersCount`` per handle for getProfiles; a handle missing is not found.
        self.followers: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.server.url

    # --- content -----------------------------------------------------------------

    def add(
        self,
        text: str = "Our hands say it together #CEADAY21",
        *,
        created_at: datetime | None = None,
        indexed_at: datetime | None = None,
        facets: list[dict[str, Any]] | None = None,
        images: int = 0,
        labels: tuple[str, ...] = (),
        handle: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A post; facets are derived from ``#tags`` in the text with byte offsets."""
        number = next(self._numbers)
        did = f"did:plc:user{number:020d}"
        rkey = f"3l{number:011d}"
        self.clock = created_at or self.clock + timedelta(minutes=1)
        view = copy.deepcopy(fixture("post_view.json"))
        view["uri"] = f"at://{did}/app.bsky.feed.post/{rkey}"
        view["cid"] = f"bafyrei{number:020d}"
        view["author"].update(
            did=did, handle=handle or f"user{number}.bsky.social", displayName=f"User {number}"
        )
        record = view["record"]
        record.update(
            text=text,
            createdAt=_iso(self.clock),
            facets=self.tag_facets(text) if facets is None else facets,
        )
        view["indexedAt"] = _iso(indexed_at or self.clock + timedelta(seconds=1))
        view["labels"] = [
            {
                "src": "did:plc:ar7c4by46qjdydhdevvrndac",
                "uri": view["uri"],
                "val": value,
                "cts": view["indexedAt"],
            }
            for value in labels
        ]
        image = view["embed"]["images"][0]
        view["embed"]["images"] = [dict(image, alt=f"Image {i} alt") for i in range(images)]
        if not images:
            del view["embed"]
            del record["embed"]
        view.update(replyCount=0, repostCount=0, likeCount=0, quoteCount=0)
        view.update(fields)
        self.posts[view["uri"]] = view
        return view

    def add_many(self, count: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [self.add(f"Message {i} on my hands #CEADAY21", **kwargs) for i in range(count)]

    @staticmethod
    def tag_facets(text: str) -> list[dict[str, Any]]:
        """What the Bluesky app writes: one tag facet per ``#tag``, as UTF-8 byte offsets."""
        facets = []
        for match in _TAG_IN_TEXT.finditer(text):
            start = len(text[: match.start()].encode())
            end = start + len(match.group(0).encode())
            facets.append(
                {
                    "$type": "app.bsky.richtext.facet",
                    "index": {"byteStart": start, "byteEnd": end},
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": match.group(1)}],
                }
            )
        return facets

    def delete(self, uri: str) -> None:
        del self.posts[uri]

    def expire_sessions(self) -> None:
        """Every access token issued so far is now expired (refresh tokens stay valid)."""
        self.access_tokens.clear()

    # --- XRPC --------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": "3000",
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(int(time.time()) + 300),
            "RateLimit-Policy": "3000;w=300",
        }

    def _error(self, name: str, status: int) -> Reply:
        return Reply.json(self.errors[name], status, self._headers())

    def _issue(self) -> Reply:
        number = next(self._tokens)
        access, refresh = f"access-{number}", f"refresh-{number}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        session = fixture("session.json")
        session.update(accessJwt=access, refreshJwt=refresh, handle=HANDLE)
        return Reply.json(session, headers=self._headers())

    def _create_session(self, request: FakeRequest) -> Reply:
        body = request.json()
        if not isinstance(body, dict) or (body.get("identifier"), body.get("password")) != (
            HANDLE,
            APP_PASSWORD,
        ):
            return self._error("invalid_login", 401)
        self.logins += 1
        return self._issue()

    def _refresh_session(self, request: FakeRequest) -> Reply:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.refresh_tokens:
            return self._error("expired_token", 400)
        self.refresh_tokens.discard(token)  # refresh tokens are single-use
        self.refreshes += 1
        return self._issue()

    def _authorised(self, request: FakeRequest) -> Reply | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return self._error("auth_missing", 401)
        if auth.removeprefix("Bearer ") not in self.access_tokens:
            return self._error("expired_token", 400)
        return None

    @staticmethod
    def sort_at(view: dict[str, Any]) -> datetime:
        return min(_parse(view["record"]["createdAt"]), _parse(view["indexedAt"]))

    @staticmethod
    def _matches(view: dict[str, Any], query: str) -> bool:
        record = view["record"]
        tags = {
            feature["tag"].casefold()
            for facet in record.get("facets") or []
            for feature in facet["features"]
            if "tag" in feature
        } | {tag.casefold() for tag in record.get("tags") or []}
        words = [word.lstrip("#").casefold() for word in query.split()]
        return all(word in tags or f"#{word}" in record["text"].casefold() for word in words)

    def _search(self, request: FakeRequest) -> Reply:
        if refusal := self._authorised(request):
            return refusal
        query = request.arg("q") or ""
        limit = min(int(request.arg("limit") or 25), 100)
        found = [v for v in self.posts.values() if self._matches(v, query)]
        if since := request.arg("since"):
            found = [v for v in found if self.sort_at(v) >= _parse(since)]
        if until := request.arg("until"):
            found = [v for v in found if self.sort_at(v) < _parse(until)]
        found.sort(key=lambda v: (self.sort_at(v), v["uri"]), reverse=True)
        cursor = request.arg("cursor") or "0"
        if not cursor.isdigit():
            return self._error("bad_cursor", 400)
        offset = int(cursor)
        page = found[offset : offset + limit]
        body: dict[str, Any] = {"posts": page, "hitsTotal": len(found)}
        if offset + limit < len(found):
            body["cursor"] = str(offset + limit)
        return Reply.json(body, headers=self._headers())

    def _get_profiles(self, request: FakeRequest) -> Reply:
        """``app.bsky.actor.getProfiles``: up to 25 ``actors``; unknown ones left out."""
        if refusal := self._authorised(request):
            return refusal
        actors = request.query.get("actors", [])
        if len(actors) > 25:
            return self._error("too_many_actors", 400)
        profiles = [
            {"did": f"did:plc:{actor}", "handle": actor, "followersCount": self.followers[actor]}
            for actor in actors
            if actor in self.followers
        ]
        return Reply.json({"profiles": profiles}, headers=self._headers())

    def _get_posts(self, request: FakeRequest) -> Reply:
        if refusal := self._authorised(request):
            return refusal
        uris = request.query.get("uris", [])
        if len(uris) > 25:
            return self._error("too_many_uris", 400)
        return Reply.json(
            {"posts": [self.posts[uri] for uri in uris if uri in self.posts]},
            headers=self._headers(),
        )
