"""X API v2 as documented on docs.x.com: recent search and post lookup.

``GET /2/tweets/search/recent`` (``query`` with ``#tag`` terms, ``since_id`` /
``until_id`` exclusive, ``start_time`` inside the last 7 days, ``max_results``
10-100, an opaque ``next_token``; newest first; ``includes`` with users and
media) and ``GET /2/tweets?ids=`` (up to 100; ids that are gone answer in
``errors``). Bearer-token auth, ``x-rate-limit-*`` headers, problem bodies from
``tests/fixtures/x/errors.json``. Ids are real snowflakes, so they encode time.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.server import FakeRequest, FakeServer, Reply

FIXTURES = Path(__file__).parent.parent / "fixtures" / "x"
TOKEN = "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI%3DEUifiRBkKG5E2XzMDjRf"
_EPOCH_MS = 1288834974657
_TAG = re.compile(r"(?<![\w#])#(\w+)")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def snowflake(moment: datetime, sequence: int) -> str:
    millis = int(moment.timestamp() * 1000) - _EPOCH_MS
    return str((millis << 22) | (sequence & 0x3FFFFF))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeX:
    """Holds posts by id; ``add`` posts one, ``edit``/``delete``/``protect`` change them."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.tweets: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.protected: set[str] = set()
        self.errors = fixture("errors.json")
        self.token = TOKEN
        #: False: the app's package has no search (403 client-not-enrolled).
        self.enrolled = True
        #: How far back search reaches by the server's clock.
        self.window = timedelta(days=7)
        self.remaining = 449
        self._sequence = itertools.count(1)
        self.clock = datetime.now(UTC) - timedelta(hours=24)
        server.route("GET", r"/2/tweets/search/recent", self._search)
        server.route("GET", r"/2/tweets", self._lookup)

    @property
    def url(self) -> str:
        return self.server.url

    # --- content -----------------------------------------------------------------

    def add(
        self,
        text: str = "Our hands say it together #CEADAY21",
        *,
        created_at: datetime | None = None,
        photos: int = 0,
        username: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        number = next(self._sequence)
        self.clock = created_at or self.clock + timedelta(minutes=1)
        template = fixture("search_recent.json")
        tweet = copy.deepcopy(template["data"][0])
        tweet_id = snowflake(self.clock, number)
        user = dict(template["includes"]["users"][0], id=str(10_000 + number))
        user["username"] = username or f"user{number}"
        user["name"] = f"User {number}"
        self.users[user["id"]] = user
        keys = []
        for index in range(photos):
            key = f"3_{tweet_id}{index}"
            photo = dict(template["includes"]["media"][0], media_key=key)
            photo["alt_text"] = f"Photo {index} alt"
            self.media[key] = photo
            keys.append(key)
        tweet.update(
            id=tweet_id,
            edit_history_tweet_ids=[tweet_id],
            text=text,
            created_at=_iso(self.clock),
            author_id=user["id"],
            entities={"hashtags": self._entities(text)},
            attachments={"media_keys": keys} if keys else {},
            public_metrics=dict(tweet["public_metrics"], like_count=0, retweet_count=0),
        )
        tweet.update(fields)
        self.tweets[tweet_id] = tweet
        return tweet

    def add_many(self, count: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [self.add(f"Message {i} on my hands #CEADAY21", **kwargs) for i in range(count)]

    @staticmethod
    def _entities(text: str) -> list[dict[str, Any]]:
        return [
            {"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _TAG.finditer(text)
        ]

    def edit(self, tweet_id: str, text: str) -> dict[str, Any]:
        """A new version with a new id; every version's history lists the whole chain."""
        old = self.tweets[tweet_id]
        moment = datetime.now(UTC) - timedelta(seconds=30)
        new_id = snowflake(moment, next(self._sequence))
        chain = [*old["edit_history_tweet_ids"], new_id]
        new = dict(old, id=new_id, text=text, created_at=_iso(moment))
        new["entities"] = {"hashtags": self._entities(text)}
        self.tweets[new_id] = new
        for version in chain:
            self.tweets[version]["edit_history_tweet_ids"] = chain
        return new

    def delete(self, tweet_id: str) -> None:
        """Deleting any version deletes the whole chain."""
        for version in list(self.tweets[tweet_id]["edit_history_tweet_ids"]):
            self.tweets.pop(version, None)

    def protect(self, tweet_id: str) -> None:
        self.protected.add(tweet_id)

    # --- API ---------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": str(self.remaining),
            "x-rate-limit-reset": str(int(time.time()) + 900),
        }

    def _refusal(self, request: FakeRequest) -> Reply | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply.json(self.errors["unauthorized"], 401, self._headers())
        return None

    def _invalid(self, message: str) -> Reply:
        body = copy.deepcopy(self.errors["invalid_request"])
        body["errors"][0]["message"] = message
        return Reply.json(body, 400, self._headers())

    def _includes(self, tweets: list[dict[str, Any]]) -> dict[str, Any]:
        users = {t["author_id"]: self.users[t["author_id"]] for t in tweets}
        keys = [k for t in tweets for k in (t.get("attachments") or {}).get("media_keys", [])]
        includes: dict[str, Any] = {"users": list(users.values())}
        if keys:
            includes["media"] = [self.media[k] for k in keys if k in self.media]
        return includes

    def _search(self, request: FakeRequest) -> Reply:
        if refusal := self._refusal(request):
            return refusal
        if not self.enrolled:
            return Reply.json(self.errors["client_not_enrolled"], 403, self._headers())
        query = request.arg("query") or ""
        wanted = {tag.casefold() for tag in _TAG.findall(query)}
        limit = int(request.arg("max_results") or 10)
        if not 10 <= limit <= 100:
            return self._invalid(
                "The `max_results` query parameter value is not between 10 and 100"
            )
        found = [
            t
            for t in self.tweets.values()
            if t["edit_history_tweet_ids"][-1] == t["id"]  # search shows the latest version
            and t["id"] not in self.protected
            and wanted & {h["tag"].casefold() for h in t["entities"].get("hashtags", [])}
        ]
        horizon = datetime.now(UTC) - self.window
        if start := request.arg("start_time"):
            moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
            if moment < horizon:
                return self._invalid(
                    f"Invalid 'start_time':'{start}'."
                    f" 'start_time' must be on or after {_iso(horizon)}"
                )
            found = [t for t in found if t["created_at"] >= _iso(moment)]
        if since_id := request.arg("since_id"):
            minted = datetime.fromtimestamp(((int(since_id) >> 22) + _EPOCH_MS) / 1000, UTC)
            if minted < horizon:
                return self._invalid(
                    f"Invalid 'since_id':'{since_id}'."
                    f" 'since_id' must be a tweet id created after {_iso(horizon)}"
                )
            found = [t for t in found if int(t["id"]) > int(since_id)]
        if until_id := request.arg("until_id"):
            found = [t for t in found if int(t["id"]) < int(until_id)]
        found.sort(key=lambda t: int(t["id"]), reverse=True)
        offset = 0
        if token := request.arg("next_token"):
            try:
                offset = int(base64.b32hexdecode(token.encode()).decode())
            except ValueError:
                return self._invalid(
                    f"The `next_token` query parameter value [{token}] is not valid"
                )
        page = found[offset : offset + limit]
        meta: dict[str, Any] = {"result_count": len(page)}
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = page
            body["includes"] = self._includes(page)
            meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
        if offset + limit < len(found):
            meta["next_token"] = base64.b32hexencode(str(offset + limit).encode()).decode()
        return Reply.json(body, headers=self._headers())

    def _lookup(self, request: FakeRequest) -> Reply:
        if refusal := self._refusal(request):
            return refusal
        ids = (request.arg("ids") or "").split(",")
        if len(ids) > 100:
            return self._invalid(
                f"The number of values in the `ids` query parameter list [{len(ids)}]"
                " is not between 1 and 100"
            )
        data = [self.tweets[i] for i in ids if i in self.tweets and i not in self.protected]
        errors = []
        for missing in [i for i in ids if i not in self.tweets or i in self.protected]:
            problem = copy.deepcopy(
                self.errors["not_authorized" if missing in self.protected else "not_found"]
            )
            problem["detail"] = problem["detail"].replace("[0]", f"[{missing}]")
            problem.update(value=missing, resource_id=missing)
            errors.append(problem)
        body: dict[str, Any] = {}
        if data:
            body.update(data=data, includes=self._includes(data))
        if errors:
            body["errors"] = errors
        return Reply.json(body, headers=self._headers())
