"""Reddit's OAuth API, as documented on reddit.com/dev/api and the OAuth2 wiki.

``POST /api/v1/access_token`` (basic auth, ``grant_type=client_credentials``)
issues bearer tokens; ``GET /search`` answers Listings newest first with
``after`` paging (an unknown ``after`` gives an empty listing, as Reddit does);
``GET /api/info?id=t3_a,t3_b`` answers the posts that still exist. Every API
answer carries ``X-Ratelimit-Used`` / ``-Remaining`` / ``-Reset`` (seconds).
Posts are built from the example payloads in ``tests/fixtures/reddit``.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import secrets
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.server import FakeRequest, FakeServer, Reply

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reddit"
CLIENT_ID = "p-jcoLKBynTLew"
CLIENT_SECRET = "gko_LXELoV07ZBNUXrvWZfzE3aI"
USER_AGENT = "server:org.example.hashtag-monitor:v0.1 (by /u/hashtag_monitor_test)"
#: Base-36 ids grow with time, as Reddit's do.
FIRST_ID = int("1ab2cd", 36)


def fixture(name: str) -> dict[str, Any]:
    """One example payload from the fixtures directory (a fresh copy)."""
    return json.loads((FIXTURES / name).read_text())


def to_base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def _fold(text: str) -> str:
    """Search matches words whatever their case or Unicode form."""
    return unicodedata.normalize("NFKC", text).casefold()


def _newest_first(post: dict[str, Any]) -> tuple[float, int]:
    """Reddit's order for sort=new; tests plant broken fields, so read them gently."""
    created, post_id = post.get("created_utc"), post.get("id")
    when = created if isinstance(created, int | float) else 0.0
    return when, int(post_id, 36) if isinstance(post_id, str) else 0


class FakeReddit:
    """A Reddit holding posts; ``add`` creates one, ``edit``/``remove``/``delete`` change them."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.user_agent = USER_AGENT
        self.posts: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self.expires_in: Any = 86400
        #: Requests left in the window, or None for plenty; decremented per API call.
        self.remaining: float | None = None
        self.reset_seconds = 300
        self._ids = itertools.count(FIRST_ID)
        self.clock = datetime.now(UTC) - timedelta(hours=24)
        server.route("POST", r"/api/v1/access_token", self._access_token)
        server.route("GET", r"/search", self._search)
        server.route("GET", r"/api/info", self._info)

    @property
    def url(self) -> str:
        return self.server.url

    def config(self, **overrides: str) -> dict[str, str]:
        """The environment keys pointing the adapter at this fake."""
        return {
            "REDDIT_CLIENT_ID": self.client_id,
            "REDDIT_CLIENT_SECRET": self.client_secret,
            "REDDIT_USER_AGENT": self.user_agent,
            "REDDIT_API_BASE": self.url,
            "REDDIT_AUTH_BASE": self.url,
            **overrides,
        }

    # --- content ---------------------------------------------------------

    def add(
        self,
        title: str = "Awareness day #CEADAY21",
        selftext: str = "",
        *,
        template: str = "self_post.json",
        created_at: datetime | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A post built from a fixture, newer than every earlier one unless told otherwise."""
        post_id = to_base36(next(self._ids))
        self.clock = created_at or self.clock + timedelta(minutes=1)
        data = copy.deepcopy(fixture(template)["data"])
        data.update(
            id=post_id,
            name=f"t3_{post_id}",
            title=title,
            selftext=selftext,
            selftext_html=(
                f'<!-- SC_OFF --><div class="md"><p>{selftext}</p>\n</div><!-- SC_ON -->'
                if selftext
                else None
            ),
            created_utc=self.clock.timestamp(),
            created=self.clock.timestamp(),
            permalink=f"/r/test/comments/{post_id}/post/",
        )
        data.update(fields)
        self.posts[post_id] = data
        return data

    def add_many(self, count: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [self.add(f"Post {i} for #CEADAY21", **kwargs) for i in range(count)]

    def edit(self, post_id: str, selftext: str) -> None:
        post = self.posts[post_id]
        post["selftext"] = selftext
        post["selftext_html"] = f'<div class="md"><p>{selftext}</p></div>'
        post["edited"] = post["created_utc"] + 600

    def remove(self, post_id: str) -> None:
        """A moderator removal: the post stays listed, its text is gone."""
        self.posts[post_id].update(selftext="[removed]", removed_by_category="moderator")

    def delete(self, post_id: str) -> None:
        """Gone entirely, as after an admin purge: no longer returned at all."""
        del self.posts[post_id]

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def answer_with(self, method: str, path: str, reply: Reply) -> None:
        """From now on answer ``path`` with a fixed reply (an error body, a wrong shape)."""
        self.server.routes.insert(0, (method, re.compile(f"^{re.escape(path)}$"), lambda _: reply))

    # --- routes ------------------------------------------------------------

    def _access_token(self, request: FakeRequest) -> Reply:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Reply.json(fixture("unauthorized.json"), 401)
        if request.form().get("grant_type") != "client_credentials":
            return Reply.json({"error": "unsupported_grant_type"})
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        self.tokens_issued += 1
        body = fixture("access_token.json")
        body.update(access_token=token, expires_in=self.expires_in)
        return Reply.json(body)

    def _authorised(self, request: FakeRequest) -> Reply | None:
        """The 401/429 Reddit answers before looking at the request, or None."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return Reply.json(fixture("unauthorized.json"), 401)
        if request.headers.get("user-agent") != self.user_agent:
            return Reply.json({"message": "Too Many Requests", "error": 429}, 429)
        return None

    def _limits(self) -> dict[str, str]:
        if self.remaining is not None:
            self.remaining = max(0.0, self.remaining - 1)
        remaining = 95.0 if self.remaining is None else self.remaining
        return {
            "X-Ratelimit-Used": str(int(100 - remaining)),
            "X-Ratelimit-Remaining": f"{remaining:.1f}",
            "X-Ratelimit-Reset": str(self.reset_seconds),
        }

    @staticmethod
    def _listing(children: list[dict[str, Any]], after: str | None) -> dict[str, Any]:
        return {
            "kind": "Listing",
            "data": {
                "after": after,
                "dist": len(children),
                "modhash": "",
                "geo_filter": "",
                "children": [{"kind": "t3", "data": c} for c in children],
                "before": None,
            },
        }

    def _search(self, request: FakeRequest) -> Reply:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        query = _fold(request.arg("q") or "")
        limit = min(int(request.arg("limit") or 25), 100)
        found = sorted(
            (
                post
                for post in self.posts.values()
                if query in _fold(f"{post.get('title')} {post.get('selftext')}")
            ),
            key=_newest_first,
            reverse=True,
        )
        if after := request.arg("after"):
            names = [post.get("name") for post in found]
            found = found[names.index(after) + 1 :] if after in names else []
        page = found[:limit]
        next_after = page[-1].get("name") if len(found) > limit else None
        return Reply.json(self._listing(page, next_after), headers=self._limits())

    def _info(self, request: FakeRequest) -> Reply:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        names = (request.arg("id") or "").split(",")
        if len(names) > 100:
            return Reply.json({"message": "Bad Request", "error": 400}, 400)
        children = [
            self.posts[name[3:]]
            for name in names
            if name.startswith("t3_") and name[3:] in self.posts
        ]
        return Reply.json(self._listing(children, None), headers=self._limits())
