"""Every registered built-in adapter against its fake, through the one contract suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adapters import BUILTIN_ADAPTERS
from adapters.base import Target
from adapters.contract import CONTRACT_TESTS, TAG, Subject, build
from tests.adapters.subjects import SUBJECTS
from tests.adapters.test_registry import install_plugin
from tests.fakes.server import FakeRequest, FakeServer, Reply


def test_every_builtin_adapter_has_a_contract_subject() -> None:
    assert sorted(SUBJECTS) == sorted(BUILTIN_ADAPTERS)


@pytest.mark.parametrize("platform", sorted(SUBJECTS))
@pytest.mark.parametrize("contract", sorted(CONTRACT_TESTS))
def test_contract(platform: str, contract: str, fake_server: FakeServer) -> None:
    make: Callable[[FakeServer], Subject] = SUBJECTS[platform]
    CONTRACT_TESTS[contract](make(fake_server))


TOY_HTTP_PLUGIN = '''
from datetime import datetime, timezone

import pydantic

from adapters.base import (
    Adapter, Author, Batch, FetchedPost, MalformedResponse, Page, RefreshResult,
    UnreadableRecord, normalise_each, walk_newest_first,
)
from adapters.settings import AdapterSettings


class ToySettings(AdapterSettings):
    toy_api_base: str
    toy_token: pydantic.SecretStr


def _post(item):
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        raise UnreadableRecord("no id")
    return FetchedPost(
        platform="toyhttp", external_id=str(item["id"]), url=f"https://toy.example/{item['id']}",
        author=Author(handle="@toy", name="Toy"), text=f"#{item['tag']}", html="",
        created_at=datetime.now(timezone.utc), hashtags=(item["tag"].lower(),),
    )


class ToyHttpAdapter(Adapter):
    """Reads GET /posts?page=N (newest first), written with the base class's machinery."""

    name = "toyhttp"
    settings_model = ToySettings

    def search(self, target, cursor, *, since, max_pages):
        after = int(cursor) if cursor and cursor.isdigit() else 0
        base = self.base_url("TOY_API_BASE", "")
        headers = {"Authorization": "Bearer " + self.config["TOY_TOKEN"]}

        def fetch(page):
            params = {"page": page or 0}
            body, _ = self.http.get_json(f"{base}/posts", params=params, headers=headers)
            if not isinstance(body, dict) or not isinstance(body.get("posts"), list):
                raise MalformedResponse("toyhttp: no posts list")
            items = [i for i in body["posts"] if isinstance(i, dict) and i.get("id", 0) > after]
            posts, skipped = normalise_each(items, _post, lambda i: f"post {i.get('id')}")
            ended = len(items) < len(body["posts"]) or body.get("next") is None
            return Batch(posts, skipped, tuple(p.external_id for p in posts),
                         None if ended else body["next"])

        for page in walk_newest_first(
            fetch, until=since, max_pages=max_pages,
            last_cursor=lambda ids: max(ids, key=int, default=None) or cursor,
        ):
            yield Page(page.posts, page.cursor, gap=page.gap, skipped=page.skipped)

    def refresh(self, refs):
        return RefreshResult()
'''


class _ToyFake:
    """The toy platform's API: ten posts a page, newest first, bearer token required."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.posts: list[dict[str, object]] = []
        server.route("GET", "/posts", self._page)

    def add(self) -> None:
        self.posts.append({"id": len(self.posts) + 1, "tag": TAG})

    def _page(self, request: FakeRequest) -> Reply:
        if request.headers.get("authorization") != "Bearer toy-secret":
            return Reply.json({"error": "unauthorised"}, 401)
        number = int(request.arg("page") or 0)
        newest_first = list(reversed(self.posts))
        page = newest_first[number * 10 : number * 10 + 10]
        more = len(newest_first) > number * 10 + 10
        return Reply.json({"posts": page, "next": number + 1 if more else None})


@pytest.mark.parametrize("contract", sorted(CONTRACT_TESTS))
def test_an_installed_plugin_passes_the_contract_too(
    contract: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_server: FakeServer
) -> None:
    install_plugin(
        tmp_path, monkeypatch, "toyhttp", "toyhttp_plugin:ToyHttpAdapter", TOY_HTTP_PLUGIN
    )
    fake = _ToyFake(fake_server)
    config = {"TOY_API_BASE": fake_server.url, "TOY_TOKEN": "toy-secret"}
    subject = Subject(build("toyhttp", config), Target("", (TAG,)), fake_server, fake.add, 11)
    CONTRACT_TESTS[contract](subject)
