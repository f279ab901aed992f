"""Mastodon: the public hashtag timeline of each configured instance.

API facts relied on (docs.joinmastodon.org, methods/timelines and statuses):

* ``GET /api/v1/timelines/tag/:hashtag`` is public (a token is optional);
  ``limit`` up to 40; ``max_id`` pages older, ``min_id`` returns the results
  immediately newer than an id; the ``Link`` header carries ``next`` (older)
  and ``prev`` (newer) URLs.
* Status ids are strings, only comparable within one instance. The same post
  federated to two instances has two ids but one ``uri`` (its ActivityPub id),
  which is therefore our external id.
* ``GET /api/v1/statuses?id[]=`` (4.3+, up to 20 ids) answers only the statuses
  that still exist; older servers need ``GET /api/v1/statuses/:id`` (404 = gone).
* ``X-RateLimit-Reset`` is an ISO 8601 time.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import pydantic

from adapters.base import (
    Adapter,
    AuthFailed,
    Author,
    Batch,
    Engagement,
    FetchedPost,
    MalformedResponse,
    Media,
    MediaKind,
    Page,
    RefreshResult,
    RequestRejected,
    Target,
    UnreadableRecord,
    checked_base_url,
    normalise_each,
    refresh_in_chunks,
    walk_newest_first,
)
from adapters.http import HttpClient, decode_json, link_on_host
from adapters.settings import AdapterSettings
from adapters.text import (
    as_array,
    as_count,
    as_id,
    as_object,
    as_str,
    clean_text,
    extract_hashtags,
    html_to_text,
    http_url,
    parse_time,
    platform_tags,
    sanitise_html,
    unique,
)

DEFAULT_INSTANCE = "https://mastodon.social"
#: Mastodon ids are decimal; forks (Pleroma, Akkoma) use base62 flake ids.
_STATUS_ID = re.compile(r"[0-9A-Za-z]{1,64}")
_LOST_CURSOR = "the stored cursor was unreadable, so this poll re-read back to the look-back"
PAGE_LIMIT = 40
BULK_LIMIT = 20
_MEDIA_KINDS: dict[str, MediaKind] = {
    "image": "image",
    "gifv": "gif",
    "video": "video",
    "audio": "audio",
}


def _reset_reader(headers: httpx.Headers) -> float | None:
    reset = parse_time(headers.get("x-ratelimit-reset"))
    return max(0.0, (reset - datetime.now(UTC)).total_seconds()) if reset else None


def _id_order(status_id: str) -> tuple[int, str]:
    """Mastodon ids are decimal strings: longer means newer, then lexical."""
    return (len(status_id), status_id)


#: The same order, for the stream's catch-up cursor (see :mod:`adapters.mastodon_stream`).
status_id_order = _id_order


class MastodonSettings(AdapterSettings):
    """The keys this adapter reads (see ``.env.example``)."""

    mastodon_instances: str = DEFAULT_INSTANCE
    mastodon_access_token: pydantic.SecretStr | None = None


class MastodonAdapter(Adapter[MastodonSettings]):
    """Reads ``/api/v1/timelines/tag`` on every instance in ``MASTODON_INSTANCES``."""

    name: ClassVar[str] = "mastodon"

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        super().__init__(config, http)
        raw = config.get("MASTODON_INSTANCES", "").strip() or DEFAULT_INSTANCE
        self.instances = [
            checked_base_url("MASTODON_INSTANCES", item.strip())
            for item in raw.split(",")
            if item.strip()
        ]
        token = config.get("MASTODON_ACCESS_TOKEN", "").strip()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def targets(self, hashtags: Sequence[str]) -> list[Target]:
        return [Target(instance, (tag,)) for instance in self.instances for tag in hashtags]

    @staticmethod
    def _timeline_url(target: Target) -> str:
        tag = httpx.URL(path=target.hashtags[0].lstrip("#")).path
        return f"{target.scope}/api/v1/timelines/tag/{tag}"

    def search(
        self, target: Target, cursor: str | None, *, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        instance, url = target.scope, self._timeline_url(target)
        if cursor and _STATUS_ID.fullmatch(cursor):
            yield from self._walk_forward(instance, url, cursor, max_pages)
            return
        note = _LOST_CURSOR if cursor else None
        for page in self._walk_back(instance, url, since, max_pages):
            yield dataclasses.replace(page, gap=page.gap or note) if note else page
            note = None

    def _walk_forward(self, instance: str, url: str, cursor: str, max_pages: int) -> Iterator[Page]:
        """From the stored cursor towards now; every page is resumable on its own."""
        params: dict[str, Any] | None = {"min_id": cursor, "limit": PAGE_LIMIT}
        next_url = url
        for _ in range(max_pages):
            body, response = self._get(next_url, params)
            statuses = self._statuses(body)
            if not statuses:
                return
            ids = [sid for sid in (as_id(s.get("id")) for s in statuses) if sid]
            newest = max(ids, key=_id_order, default=None)
            posts, skipped = self._normalise_all(instance, statuses)
            if newest is None or _id_order(newest) <= _id_order(cursor):
                # A server whose min_id goes backwards would loop us forever.
                yield Page(posts, None, skipped=skipped)
                return
            cursor = newest
            yield Page(posts, cursor, skipped=skipped)
            prev_link = link_on_host(instance, response.links.get("prev", {}).get("url"))
            if prev_link:
                next_url, params = prev_link, None
            else:
                params = {"min_id": cursor, "limit": PAGE_LIMIT}
                next_url = url

    def _walk_back(
        self, instance: str, url: str, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        """First poll: newest first, back to ``since``; the cursor lands on the last page."""
        walk = walk_newest_first(
            self._fetch_back(instance, url, max_id=None),
            until=since,
            max_pages=max_pages,
            last_cursor=lambda ids: max(ids, key=_id_order, default=None),
        )
        for page in walk:
            yield Page(page.posts, page.cursor, gap=page.gap, skipped=page.skipped)

    def backfill(
        self, target: Target, *, since: datetime, resume: str | None, max_pages: int
    ) -> Iterator[Page]:
        """Walk back with ``max_id``; the oldest id of each page is the resume position."""
        instance, url = target.scope, self._timeline_url(target)
        walk = walk_newest_first(
            self._fetch_back(instance, url, max_id=resume),
            until=since,
            max_pages=max_pages,
            last_cursor=lambda ids: None,
            page_cursor=lambda batch: min(batch.ids, key=_id_order, default=None),
        )
        for page in walk:
            yield Page(page.posts, page.cursor, skipped=page.skipped)

    def _fetch_back(
        self, instance: str, url: str, *, max_id: str | None
    ) -> Callable[[str | None], Batch[FetchedPost, str]]:
        """Reads one page of a walk back: the first by ``max_id``, then ``Link: rel=next``."""
        first: dict[str, Any] = {"limit": PAGE_LIMIT, **({"max_id": max_id} if max_id else {})}

        def fetch(next_url: str | None) -> Batch[FetchedPost, str]:
            body, response = self._get(next_url or url, None if next_url else first)
            statuses = self._statuses(body)
            posts, skipped = self._normalise_all(instance, statuses)
            return Batch(
                posts,
                skipped,
                tuple(sid for sid in (as_id(s.get("id")) for s in statuses) if sid),
                link_on_host(instance, response.links.get("next", {}).get("url")),
                min((p.created_at for p in posts), default=None),
            )

        return fetch

    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        by_instance: dict[str, list[str]] = {}
        for ref in refs:
            instance, _, status_id = ref.rpartition("|")
            if instance and status_id:
                by_instance.setdefault(instance, []).append(status_id)
        result = RefreshResult()
        for instance, ids in by_instance.items():
            found = refresh_in_chunks(
                ids,
                BULK_LIMIT,
                functools.partial(self._fetch_statuses, instance),
                functools.partial(self._normalise_all, instance),
            )
            gone = tuple(f"{instance}|{sid}" for sid in found.deleted)
            result += dataclasses.replace(found, deleted=gone)
        return result

    def _fetch_statuses(self, instance: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Current statuses by local id; ids missing from the answer are gone."""
        response = self.http.request(
            "GET",
            f"{instance}/api/v1/statuses",
            params=[("id[]", sid) for sid in ids],
            headers=self._headers,
            reset_reader=_reset_reader,
            ok_statuses=frozenset({404}),
        )
        if response.status_code != 404:
            return self._by_id(self._statuses(decode_json(response)))
        found: dict[str, dict[str, Any]] = {}
        for sid in ids:  # servers before 4.3 have no bulk endpoint
            single = self.http.request(
                "GET",
                f"{instance}/api/v1/statuses/{sid}",
                headers=self._headers,
                reset_reader=_reset_reader,
                ok_statuses=frozenset({404, 410}),
            )
            if single.status_code == 200:
                found.update(self._by_id(self._statuses([decode_json(single)])))
        return found

    @staticmethod
    def _by_id(statuses: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {sid: s for s in statuses if (sid := as_id(s.get("id")))}

    def _get(self, url: str, params: Mapping[str, Any] | None) -> tuple[Any, httpx.Response]:
        try:
            return self.http.get_json(
                url, params=params, headers=self._headers, reset_reader=_reset_reader
            )
        except RequestRejected as exc:
            raise RequestRejected(f"{exc} (the stored cursor may be too old)") from None
        except AuthFailed as exc:
            # Mastodon 4.5 lets a server close hashtag timelines to anonymous readers.
            if exc.status == 401 and not self._headers:
                raise AuthFailed(
                    f"mastodon: {httpx.URL(url).host} requires an access token for hashtag"
                    " timelines; set MASTODON_ACCESS_TOKEN",
                    status=401,
                ) from None
            raise

    @staticmethod
    def _statuses(body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            raise MalformedResponse(f"expected a JSON list of statuses, got {type(body).__name__}")
        return [item for item in body if isinstance(item, dict)]

    def _normalise_all(
        self, instance: str, statuses: list[dict[str, Any]]
    ) -> tuple[tuple[FetchedPost, ...], tuple[str, ...]]:
        return normalise_each(
            statuses,
            lambda status: normalise_status(instance, status),
            lambda status: f"status {as_id(status.get('id')) or '?'}",
        )


def normalise_status(instance: str, status: Mapping[str, Any]) -> FetchedPost:
    """Map one Mastodon status to a :class:`FetchedPost`; UnreadableRecord if it is unusable.

    A boost is the booster's empty status wrapping the original in ``reblog``:
    the original is what was said, so it is what we store (under its own uri,
    so a post boosted many times is one post).
    """
    if isinstance(status.get("reblog"), dict):
        status = status["reblog"]
    local_id = as_id(status.get("id"))
    created_at = parse_time(status.get("created_at"))
    if local_id is None:
        raise UnreadableRecord("no id")
    if created_at is None:
        raise UnreadableRecord("no readable created_at")
    uri = http_url(status.get("uri")) or f"{instance}/statuses/{local_id}"
    raw_html = as_str(status.get("content"))
    text = html_to_text(raw_html)
    sensitive = status.get("sensitive") is True
    media = (_normalise_media(a, sensitive) for a in as_array(status.get("media_attachments")))
    return FetchedPost(
        platform="mastodon",
        external_id=uri,
        url=http_url(status.get("url")) or uri,
        author=_author(instance, status.get("account")),
        text=text,
        html=sanitise_html(raw_html),
        created_at=created_at,
        hashtags=_hashtags(status, text),
        media=tuple(item for item in media if item is not None),
        engagement=Engagement(
            likes=as_count(status.get("favourites_count")),
            shares=as_count(status.get("reblogs_count")),
            replies=as_count(status.get("replies_count")),
            quotes=as_count(status.get("quotes_count")),
        ),
        sensitive=sensitive,
        content_warning=clean_text(status.get("spoiler_text"), 1000) or None,
        edited_at=parse_time(status.get("edited_at")),
        ref=f"{instance}|{local_id}",
        opt_out=account_opt_out(status.get("account")),
        author_followers=as_count(as_object(status.get("account")).get("followers_count")),
    )


def account_opt_out(account: Any) -> str | None:
    """In words, why an account's owner asked not to be shown publicly, or None.

    Mastodon 4.2+ accounts say ``indexable: false`` when the owner opted out of
    search; ``noindex: true`` asks search engines to stay away (both in the API's
    Account entity), and ``discoverable: false`` keeps the account out of the
    directory and recommendations. A missing field says nothing: older servers
    do not send them.
    """
    if not isinstance(account, dict):
        return None
    reasons = []
    if account.get("indexable") is False:
        reasons.append("the account is not indexable")
    if account.get("noindex") is True:
        reasons.append("the account asks not to be indexed (noindex)")
    if account.get("discoverable") is False:
        reasons.append("the account is not discoverable")
    return "; ".join(reasons) or None


def _author(instance: str, account: Any) -> Author:
    """The status's account, its handle made global (``@user@instance``)."""
    if not isinstance(account, dict):
        raise UnreadableRecord("no account")
    acct = clean_text(account.get("acct"), 300) or clean_text(account.get("username"), 300)
    if not acct:
        raise UnreadableRecord("account has no acct")
    if "@" not in acct:
        acct = f"{acct}@{httpx.URL(instance).host}"
    return Author(
        handle=f"@{acct}",
        name=clean_text(account.get("display_name"), 300) or acct,
        url=http_url(account.get("url")),
    )


def _hashtags(status: Mapping[str, Any], text: str) -> tuple[str, ...]:
    """The tags the server parsed, then any more in the text; never number-only ones."""
    names = [as_object(tag).get("name") for tag in as_array(status.get("tags"))]
    return unique([*platform_tags(names), *extract_hashtags(text)])


def _normalise_media(attachment: Any, sensitive: bool) -> Media | None:
    if not isinstance(attachment, dict):
        return None
    kind = _MEDIA_KINDS.get(str(attachment.get("type")))
    url = http_url(attachment.get("url")) or http_url(attachment.get("remote_url"))
    if kind is None or url is None:
        return None
    original = as_object(as_object(attachment.get("meta")).get("original"))
    return Media(
        kind=kind,
        url=url,
        alt=clean_text(attachment.get("description"), 1500) or None,
        preview_url=http_url(attachment.get("preview_url")),
        sensitive=sensitive,
        width=as_count(original.get("width")),
        height=as_count(original.get("height")),
        key=as_id(attachment.get("id")),
    )
