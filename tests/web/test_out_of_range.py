"""Out-of-range input is the client's mistake: a 4xx answer, never a 500, on every route.

The fuzz test walks the app's own OpenAPI description (not served publicly) and
sends generated values, huge numbers and edge-of-calendar dates included, to
every operation as a logged-in admin with a valid CSRF token, so requests reach
the code behind the checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from monitor.config import Settings
from monitor.web.app import SECURITY_HEADERS, create_app
from tests.web.auth_helpers import (
    TestClient,
    csrf_token,
    login,
    make_user,
)

HUGE = "9" * 25


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(DATA_DIR=str(tmp_path / "data"))


@pytest.fixture
def admin(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        login(client, "ad")
        yield client


@pytest.mark.parametrize(
    "path",
    [
        f"/gallery/report/{HUGE}",
        "/gallery/report/9223372036854775808",
        "/stats?from=0001-01-01&to=0001-01-01",
        "/stats?from=9999-12-31&to=9999-12-31",
        "/stats.csv?from=0001-01-01",
        "/stats/chart.png?from=0001-01-01",
        "/queue?until=9999-12-31",
        "/queue?since=0001-01-01",
        f"/queue?after=1~1.0~{HUGE}",
        "/queue?after=1~1e300~1",
        f"/queue/posts/{HUGE}",
    ],
)
def test_out_of_range_input_is_a_4xx(admin: TestClient, path: str) -> None:
    for accept in ("text/html", "application/json"):
        response = admin.get(path, headers={"accept": accept})
        assert response.status_code < 500, (path, response.status_code, response.text[:300])


def test_a_server_error_page_carries_the_security_headers(app: FastAPI) -> None:
    @app.get("/_boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        for accept in ("text/html", "application/json"):
            response = client.get("/_boom", headers={"accept": accept})
            assert response.status_code == 500
            for name, value in SECURITY_HEADERS.items():
                assert response.headers[name] == value, name
            assert "boom" not in response.text and "Traceback" not in response.text


_EDGE_VALUES = [
    HUGE,
    "-" + HUGE,
    "9223372036854775808",
    "-1",
    "0",
    "0001-01-01",
    "9999-12-31",
    "1e309",
    "nan",
    "",
    "\x00",
    "1~1e300~1",
    "../../etc/passwd",
]
_VALUES = st.one_of(
    st.sampled_from(_EDGE_VALUES),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.dates().map(lambda d: d.isoformat()),
    st.text(max_size=30),
)


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """Every GET and POST in the app's schema, logout aside (it would end the fuzzing login)
    and the live event streams (an answer that never ends; their bad parameters are
    tests/web/test_live_events.py's)."""
    return [
        (method, path, operation)
        for path, methods in app.openapi()["paths"].items()
        for method, operation in methods.items()
        if method in ("get", "post") and path != "/logout" and not path.endswith("/events")
    ]


def _form_fields(operation: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    body = content.get("application/x-www-form-urlencoded") or content.get("multipart/form-data")
    if not body:
        return []
    ref = body["schema"].get("$ref", "")
    target = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else body["schema"]
    return [name for name in target.get("properties", {}) if name != "csrf_token"]


@dataclasses.dataclass(frozen=True)
class _Operation:
    """One route to fuzz: its method, path template, parameters and form fields."""

    method: str
    path: str
    params: list[dict[str, Any]]
    fields: list[str]

    def request(self, client: TestClient, token: str, values: list[str]) -> int:
        url, query = self.path, {}
        for param, value in zip(self.params, values, strict=False):
            if param["in"] == "path":
                url = url.replace("{" + param["name"] + "}", quote(value, safe="") or "0")
            else:
                query[param["name"]] = value
        if self.method == "get":
            response = client.get(url, params=query, headers={"accept": "text/html"})
        else:
            form = dict(zip(self.fields, values[len(self.params) :], strict=False))
            response = client.post(
                url, params=query, data={"csrf_token": token, **form}, follow_redirects=False
            )
        return response.status_code


def _fuzz(operation: _Operation, client: TestClient, token: str, errors: list[str]) -> None:
    size = len(operation.params) + len(operation.fields)

    @hypothesis_settings(
        max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(values=st.lists(_VALUES, min_size=size, max_size=size))
    def probe(values: list[str]) -> None:
        status = operation.request(client, token, values)
        if status >= 500:
            errors.append(f"{operation.method.upper()} {operation.path} {values!r}: {status}")

    probe()


def test_the_queue_forms_and_filters_are_described_so_the_fuzzer_reaches_them(
    app: FastAPI,
) -> None:
    schema = app.openapi()
    operations = {(method, path): operation for method, path, operation in _operations(app)}
    expected = {
        "/queue/decide": {"post_id", "version", "action", "reason_note", "decorative", "ack_flag"},
        "/queue/bulk": {"selected", "action", "reason_choice", "reason_note", "return_to"},
        "/queue/reveal": {"post_id", "return_to"},
        "/queue/undo": {"event_id", "return_to"},
        "/queue/consent": {"post_id", "obtained_on", "how", "covers"},
        "/queue/bulk-matching": {"tab", "since", "until", "reason_note", "up_to"},
    }
    for path, fields in expected.items():
        assert fields <= set(_form_fields(operations["post", path], schema)), path
    filters = {param["name"] for param in operations["get", "/queue"]["parameters"]}
    assert {"tab", "platform", "tag", "author", "since", "until", "q", "order", "after"} <= filters


def test_fuzzing_every_route_finds_no_server_error(app: FastAPI, admin: TestClient) -> None:
    schema = app.openapi()
    token = csrf_token(admin)
    operations = [
        _Operation(
            method,
            path,
            [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")],
            _form_fields(operation, schema),
        )
        for method, path, operation in _operations(app)
    ]
    assert len(operations) > 20
    errors: list[str] = []
    for operation in operations:
        _fuzz(operation, admin, token, errors)
    assert errors == []


def test_out_of_range_ids_are_a_4xx_on_postgresql(
    postgres_url: str, configure: Callable[..., Settings], tmp_path: Path
) -> None:
    from monitor.db import create_db_engine, upgrade

    engine = create_db_engine(postgres_url)
    upgrade(engine)
    make_user(engine, "ad", "admin")
    app = create_app(configure(DATA_DIR=str(tmp_path / "data")), engine=engine)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            login(client, "ad")
            for path in (
                "/gallery/report/9223372036854775808",
                f"/gallery/report/{HUGE}",
                f"/queue?after=1~1.0~{HUGE}",
                "/queue?until=9999-12-31",
            ):
                assert client.get(path).status_code < 500, path
    finally:
        engine.dispose()
