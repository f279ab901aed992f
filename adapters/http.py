"""The one HTTP helper every adapter uses: timeouts, retries, rate limits, size caps.

Platforms fail in the same few ways, so the policy lives here once:

* 5xx, timeouts, resets and truncated bodies are retried with exponential
  backoff and jitter, then reported as :class:`PlatformUnavailable`;
* 429 waits for ``Retry-After`` (or the platform's own reset header, read by a
  function the adapter passes) when that is short, else raises
  :class:`RateLimited` with the time to come back;
* 401/403 become :class:`AuthFailed`, other 4xx :class:`RequestRejected`;
* a body over ``max_body_bytes`` or not valid JSON is :class:`MalformedResponse`.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import tenacity

from adapters.base import (
    AuthFailed,
    MalformedResponse,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)

USER_AGENT = "hashtag-monitor/0.1 (campaign hashtag monitor; +https://github.com/hashtag-monitor)"

#: Query parameters: a mapping, or pairs when a name repeats (``id[]=1&id[]=2``).
Params = Mapping[str, Any] | Sequence[tuple[str, Any]]
#: Reads a platform-specific reset header and returns seconds to wait, or None.
ResetReader = Callable[[httpx.Headers], float | None]

_RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. Tests shrink the numbers; production keeps the defaults."""

    timeout: float = 20.0
    attempts: int = 4
    backoff: float = 1.0
    max_retry_after: float = 60.0
    max_body_bytes: int = 10 * 1024 * 1024


class _Retryable(Exception):
    """Internal: one failed attempt that is worth another try."""

    def __init__(self, message: str, *, wait: float | None = None, status: int | None = None):
        super().__init__(message)
        self.wait = wait
        self.status = status


def retry_after_seconds(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def epoch_reset_reader(header: str) -> ResetReader:
    """A reset reader for headers carrying a Unix time (X, GitHub style)."""

    def read(headers: httpx.Headers) -> float | None:
        value = headers.get(header)
        try:
            return max(0.0, float(value) - time.time()) if value else None
        except ValueError:
            return None

    return read


def seconds_reset_reader(header: str) -> ResetReader:
    """A reset reader for headers carrying seconds until reset (Reddit style)."""

    def read(headers: httpx.Headers) -> float | None:
        value = headers.get(header)
        try:
            return max(0.0, float(value)) if value else None
        except ValueError:
            return None

    return read


class HttpClient:
    """A thread-safe wrapper around :class:`httpx.Client` with the policy above.

    ``requests`` counts every HTTP request sent (retries included), so polls and
    benchmarks can report what a cycle cost; ``thread_requests`` counts those of
    the calling thread only, for one poll among several running at once.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._client = httpx.Client(
            timeout=self.policy.timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
        )
        self._sleep = sleep
        self._lock = threading.Lock()
        self._local = threading.local()
        self.requests = 0

    @property
    def thread_requests(self) -> int:
        return getattr(self._local, "requests", 0)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        reset_reader: ResetReader | None = None,
    ) -> tuple[Any, httpx.Response]:
        """GET a JSON document; returns the decoded body and the response (for headers)."""
        response = self.request(
            "GET", url, params=params, headers=headers, reset_reader=reset_reader
        )
        return decode_json(response), response

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        reset_reader: ResetReader | None = None,
        ok_statuses: frozenset[int] = frozenset(),
        connect_to: str | None = None,
    ) -> httpx.Response:
        """Send one logical request, retrying per the policy; the body is fully read.

        Statuses in ``ok_statuses`` (e.g. 304, or 404 when probing) are returned
        instead of raised. ``connect_to`` is the address the private-address
        guard checked (:func:`adapters.netguard.checked_address`): the connection
        goes there, with the URL's host as ``Host`` and TLS name, so DNS cannot
        answer differently the second time.
        """
        host = httpx.URL(url).host
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(
                        method,
                        url,
                        params=params,
                        headers=headers,
                        data=data,
                        json_body=json_body,
                        auth=auth,
                        reset_reader=reset_reader,
                        ok_statuses=ok_statuses,
                        connect_to=connect_to,
                    )
        except _Retryable as exc:
            if exc.status == 429:
                retry_at = datetime.now(UTC) + timedelta(seconds=exc.wait or 60.0)
                raise RateLimited(f"{host}: {exc}", retry_at=retry_at) from None
            raise PlatformUnavailable(
                f"{host}: {exc} (after {self.policy.attempts} attempts)"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.wait is not None:
            return float(exc.wait)
        backoff = self.policy.backoff * 2.0 ** (state.attempt_number - 1)
        return backoff + random.uniform(0, self.policy.backoff)

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        reset_reader: ResetReader | None,
        ok_statuses: frozenset[int],
        connect_to: str | None,
        **kwargs: Any,
    ) -> httpx.Response:
        target = httpx.URL(url)
        host = target.host
        with self._lock:
            self.requests += 1
        self._local.requests = self.thread_requests + 1
        request_kwargs = {
            "params": kwargs["params"],
            "headers": kwargs["headers"],
            "data": kwargs["data"],
            "json": kwargs["json_body"],
        }
        if kwargs["auth"] is not None:
            request_kwargs["auth"] = kwargs["auth"]
        if connect_to is not None:
            request_kwargs["headers"] = {
                **(kwargs["headers"] or {}),
                "Host": target.netloc.decode(),
            }
            if target.scheme == "https":
                request_kwargs["extensions"] = {"sni_hostname": host}
            target = target.copy_with(host=connect_to)
        try:
            with self._client.stream(method, target, **request_kwargs) as streamed:
                # The body is already decoded: drop the headers that describe the wire form.
                headers = [
                    (name, value)
                    for name, value in streamed.headers.multi_items()
                    if name.lower() not in ("content-encoding", "content-length")
                ]
                response = httpx.Response(
                    streamed.status_code,
                    headers=headers,
                    content=self._read_capped(streamed),
                    request=streamed.request,
                )
        except httpx.TimeoutException:
            raise _Retryable(f"no answer within {self.policy.timeout:g}s") from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__})") from None

        status = response.status_code
        if status in ok_statuses or 200 <= status < 300:
            return response
        if status == 429:
            wait = retry_after_seconds(response.headers)
            if wait is None and reset_reader is not None:
                wait = reset_reader(response.headers)
            if wait is not None and wait > self.policy.max_retry_after:
                retry_at = datetime.now(UTC) + timedelta(seconds=wait)
                raise RateLimited(
                    f"{host}: rate limited until {retry_at:%Y-%m-%d %H:%M:%S} UTC",
                    retry_at=retry_at,
                )
            raise _Retryable("rate limited (HTTP 429)", wait=wait, status=429)
        if status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {status}", wait=retry_after_seconds(response.headers))
        if status in (401, 403):
            raise AuthFailed(
                f"{host}: credentials refused (HTTP {status}){_detail(response)}", status=status
            )
        raise RequestRejected(f"{host}: request refused (HTTP {status}){_detail(response)}")

    def _read_capped(self, response: httpx.Response) -> bytes:
        """Read the body, refusing giant pages and slow drips past the timeout."""
        cap = self.policy.max_body_bytes
        deadline = time.monotonic() + self.policy.timeout * 3
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise MalformedResponse(
                    f"{response.request.url.host}: response larger than {cap // 1024} KiB, refused"
                )
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("body trickled in past the deadline")
            chunks.append(chunk)
        return b"".join(chunks)


def link_on_host(base: str, link: str | None) -> str | None:
    """``link`` (a pagination URL the platform sent) resolved on ``base``, if it stays there.

    A link to another scheme, host or port is refused: following it would take
    our credentials, and whatever that host answers, somewhere we were never
    configured to go (an internal address, another service).
    """
    if not link:
        return None
    origin = httpx.URL(base)
    try:
        resolved = origin.join(link)
    except httpx.InvalidURL:
        raise MalformedResponse(f"{origin.host}: sent an unreadable pagination link") from None
    if (resolved.scheme, resolved.host, resolved.port) != (origin.scheme, origin.host, origin.port):
        raise MalformedResponse(
            f"{origin.host}: a pagination link points to another host; not followed"
        )
    return str(resolved)


def spent_until(
    response: httpx.Response, remaining_header: str, reset_reader: ResetReader, default: float
) -> datetime | None:
    """When the request window resets, if ``remaining_header`` says nothing is left, else None.

    ``default`` is the seconds to assume when the platform sends no reset time.
    """
    if response.headers.get(remaining_header, "").strip() != "0":
        return None
    wait = reset_reader(response.headers)
    return datetime.now(UTC) + timedelta(seconds=wait if wait is not None else default)


def error_body(response: httpx.Response) -> dict[str, Any]:
    """A refusal's JSON object, read defensively: {} for HTML, garbage or another shape."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def decode_json(response: httpx.Response) -> Any:
    """Decode a JSON body, turning garbage (truncated, HTML error pages) into an error."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise MalformedResponse(
            f"{response.request.url.host} answered HTTP {response.status_code} with a body that"
            f" is not valid JSON ({len(response.content)} bytes)"
        ) from None


_SECRET_PARAMS = ("key", "access_token", "token", "client_secret", "password")
#: JSON fields in which the platforms we know put their error wording.
_ERROR_FIELDS = ("error", "error_description", "message", "detail", "title", "reason")


def error_fields(response: httpx.Response) -> str:
    """The platform's own error wording from a JSON error body, or "" for anything else.

    Only named fields are read, never the raw body: an HTML page or a proxy's
    answer is not shown to people, so whatever a broken or hostile server sends
    cannot travel to ``/stats``, the Sources page, the CSV or the digest.
    """
    body = error_body(response)
    parts = [body.get(name) for name in _ERROR_FIELDS]
    errors = body.get("errors")
    if isinstance(errors, list):
        parts += [e.get("message") for e in errors[:3] if isinstance(e, dict)]
    words = [" ".join(p.split())[:200] for p in parts if isinstance(p, str) and p.strip()]
    return "; ".join(dict.fromkeys(words))


def _detail(response: httpx.Response) -> str:
    """A short, safe excerpt of an error for people to read: the platform's error fields.

    Some APIs echo the request back in their errors: whatever credential we
    sent (Authorization header, key or token parameters) is blanked out, since
    the excerpt ends up in logs, ``status`` and the database.
    """
    text = error_fields(response)
    request = response.request
    sent = [request.headers.get("authorization", "")]
    sent += [value for name, value in request.url.params.multi_items() if name in _SECRET_PARAMS]
    for value in sent:
        for secret in (value, value.partition(" ")[2]):
            if len(secret) >= 6:
                text = text.replace(secret, "***")
    return f": {text[:200]}" if text else ""
