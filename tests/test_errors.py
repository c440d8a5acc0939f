"""Every error is JSON {"error": str, "detail": ...} with the right status, and no input makes the API answer 500."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from tests.helpers import PASSWORDS, Api
from wsexec.config import Settings

TASK = {"name": "uptime", "tag": "nightly", "script": "uptime"}
INSTANCE = {"ip": "127.0.0.1", "tag": "web", "user": "nobody"}
BODY_ROUTES = [("post", "/tasks"), ("post", "/instances"), ("patch", "/tasks/1"), ("put", "/instances/1"),
               ("post", "/notes"), ("patch", "/notes/1")]


@pytest.fixture
def seeded(api: Api) -> Api:
    """Instance 1, INIT tasks 1-3 and note 1, so routes with an id reach real records (no worker runs them).

    The instance is then DEACTIVATE: routes that start a task and wait for it (facts, commands?wait) answer
    409 at once instead of waiting for a worker that never comes.
    """
    assert api.post("/instances", json=INSTANCE).status_code == 201
    assert api.post("/tasks", json=[{**TASK, "instance": 1}] * 3).status_code == 201
    assert api.patch("/instances/1", json={"state": "DEACTIVATE"}).status_code == 200
    assert api.post("/notes", json={"instance": 1, "content": "seeded"}).status_code == 201
    return api


def assert_error(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("raw", [b"{bad", b'{"name": }', b"[1,", b"{'name': 'x'}", b"\xff\xfe{}", b"[" * 100_000,
                                 b'{"port": ' + b"1" * 5000 + b"}"], ids=lambda raw: repr(raw[:20]))
def test_malformed_json_is_400(seeded: Api, method: str, path: str, raw: bytes) -> None:
    response = getattr(seeded, method)(path, data=raw, content_type="application/json")
    assert_error(response, 400)


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize(
    "request_kwargs",
    [{"data": {"name": "x"}},  # curl -d name=x
     {"data": json.dumps(TASK), "content_type": "text/plain"},
     {"data": "<task/>", "content_type": "application/xml"},
     {"data": {"file": (b"{}", "x.json")}, "content_type": "multipart/form-data"}],
)
def test_a_body_that_is_not_json_is_415(seeded: Api, method: str, path: str, request_kwargs: dict[str, Any]) -> None:
    if "file" in request_kwargs["data"]:
        request_kwargs = {**request_kwargs, "data": {"file": (io.BytesIO(b"{}"), "x.json")}}  # a fresh stream
    body = assert_error(getattr(seeded, method)(path, **request_kwargs), 415)
    assert "application/json" in body["error"]
    assert seeded.get("/tasks").json["count"] == 3


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_a_body_above_max_body_is_413(seeded: Api, settings: Settings, method: str, path: str) -> None:
    body = json.dumps({**TASK, "instance": 1, "script": "#" * settings.max_body})
    assert len(body) > settings.max_body
    assert_error(getattr(seeded, method)(path, data=body, content_type="application/json"), 413)
    assert seeded.get("/tasks").json["count"] == 3


@pytest.mark.parametrize(
    "path", ["/nothing", "/tasks/1/nothing", "/tasks/abc", "/tasks/-1", "/tasks/1.5", "/instances/x", "/task",
             "/tasks/%00", "/tasks/\u00e9", "/tasks/999", "/instances/999", f"/tasks/{10**30}",
             f"/instances/{10**30}", f"/tasks/{10**30}/output"],
)
def test_unknown_route_or_id_is_404(seeded: Api, path: str) -> None:
    assert_error(seeded.get(path), 404)


def test_outside_the_api_is_404_too(seeded: Api) -> None:
    assert_error(seeded.client.get("/", auth=seeded.auth), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("delete", "/tasks"), ("put", "/tasks"), ("patch", "/instances"), ("post", "/tasks/1"),
     ("post", "/instances/1"), ("post", "/tasks/1/output"), ("delete", "/tasks/1/output"), ("post", "/health"),
     ("delete", "/openapi.json")],
)
def test_wrong_method_is_405_with_allow(seeded: Api, method: str, path: str) -> None:
    response = getattr(seeded, method)(path, json={})
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_validation_is_422_field_by_field(seeded: Api) -> None:
    body = assert_error(seeded.post("/instances", json={"ip": "not an ip", "port": 0, "tag": "web"}), 422)
    assert set(body["detail"]) == {"ip", "port"}
    assert all(isinstance(messages, list) and messages for messages in body["detail"].values())


@pytest.mark.parametrize("name", [b'"\\ud800"', b'"x\\udfff"', b'"\\ude00\\ud83d"', b'"\\ud800\\u0041"'])
def test_a_lone_surrogate_is_400(api: Api, name: bytes) -> None:
    assert api.post("/instances", json=INSTANCE).status_code == 201
    body = b'{"tag": "t", "script": "s", "instance": 1, "name": ' + name + b"}"
    assert_error(api.post("/tasks", data=body, content_type="application/json"), 400)
    assert api.get("/tasks").json["count"] == 0
    pair = api.post("/tasks", data=body.replace(name, b'"\\ud83d\\ude00"'), content_type="application/json")
    assert pair.status_code == 201
    assert pair.json["name"] == "\U0001f600"


def test_domain_errors_have_the_shape(seeded: Api) -> None:
    assert_error(seeded.delete("/tasks/1"), 409)
    assert_error(seeded.delete("/instances/1"), 409)
    assert_error(seeded.post("/tasks", json={**TASK, "instance": 999}), 422)


# -- the garbage table: nothing may answer 500 -----------------------------------------------------------------

GARBAGE_JSON: list[Any] = [
    None, 0, -1, 1.5, 10**30, -(10**30), 1e308, True, "", "x", "\u00fc\U0001f600", "\u0000",
    [], [[]], [[[[[]]]]], [None], [1, "a"], [{}], [[{"name": "x"}]],
    {}, {"": None}, {"id": 10**30}, {"\u0000": 1}, {"state": None}, {"state": "ABORT", "name": 5},
    {**TASK, "instance": 10**30}, {**TASK, "instance": -1}, {**TASK, "instance": "1"}, {**TASK, "instance": [1]},
    {**TASK, "instance": 1, "timeout": -(10**30)}, {**TASK, "instance": 1, "timeout": 1e308},
    {**TASK, "instance": 1, "run_after": [10**30]}, {**TASK, "instance": 1, "run_after": [[1]]},
    {**TASK, "instance": 1, "run_after": list(range(1, 500))}, {**TASK, "instance": 1, "scheduled_at": 1e308},
    {**TASK, "instance": 1, "scheduled_at": "9999-12-31T23:59:59-23:59"}, {**TASK, "instance": 1, "scheduled_at": []},
    {**TASK, "instance": 1, "user": "\u0000"}, {**TASK, "instance": 1, "name": "\u0000\u00e9\U0001f600"},
    {**TASK, "target": None}, {**TASK, "target": {"tag": None}}, {**TASK, "target": []}, {**TASK, "target": "web"},
    {**TASK, "target": {"tag": "web", "x": 1}}, [{**TASK, "instance": 1}, {**TASK, "instance": 10**30}],
    {"ip": "x" * 10_000, "tag": "t" * 10_000, "port": 10**30}, {"ip": "\u00fc" * 100, "tag": "\u00fc"},
    {**INSTANCE, "host_key": "ssh-ed25519 " + "A" * 10_000}, {**INSTANCE, "host_key": "ssh-ed25519 AAAA"},
    {**INSTANCE, "host_key": "ssh-rsa //8="}, {**INSTANCE, "host_key": "SHA256:" + "A" * 43 + "\n"},
    {**INSTANCE, "port": "65535", "state": "DEACTIVE"}, {**INSTANCE, "facts": {"a": 1}, "facts_at": 1},
    {"a": {"b": {"c": {"d": [[[{"e": None}]]]}}}},
    {"instance": 1, "content": "x" * 513}, {"instance": 1, "content": None}, {"instance": 10**30, "content": "x"},
    {"instance": 1, "content": "x", "private": "maybe", "pinned": 2}, {"instance": 2, "content": "\u0000"},
    {"content": "x", "author": "someone else", "created_at": -1},
]
GARBAGE_RAW: list[bytes] = [
    b"", b"null", b"NaN", b"-Infinity", b'{"port": NaN, "ip": "h", "tag": "t"}', b'{"port": Infinity}',
    b'{"name": "\\ud800", "tag": "t", "script": "s", "instance": 1}', b'{"ip": "\\udfff", "tag": "t"}',
    b'{"tag": "\\ud800"}', b'{"name": "ok", "name": 5}', b"\xef\xbb\xbf{}", b"\xff\xfe\x00",
    b"[" * 100_000, b'{"a":' * 50_000, b'{"port": ' + b"9" * 5000 + b"}", b"1e400", b'"' + b"x" * 1000,
]
GARBAGE_QUERIES = [
    f"page={10**30}", "page_size=-1", f"page_size={10**30}", "page=2&page=x", "state=%00", "state=\u00e9",
    f"instance={10**30}", "instance=-1", "tag=%FF", "name=%ED%A0%80", "name=\u00e9\U0001f600", "tag=",
    "page_size=1&_external=1", "page_size=1&_method=DELETE", "page_size=1&_anchor=x", "page_size=1&_scheme=ftp",
    "page_size=1&page=2&endpoint=x", "page_size=1&values=x", f"stdout_offset={10**30}", "stderr_offset=-1",
    f"stdout_offset={2**63}", "stdout_offset=1e3", "offset=x",
]
IDS = ["1", "2", "0", "999", str(10**30), str(2**63), str(2**64)]


def calls(app: Flask) -> Iterator[tuple[str, str]]:
    """(method, path) for every route and method of the app, ids filled with real, absent and huge values."""
    for rule in app.url_map.iter_rules():
        if rule.rule == "/wsexec/health":
            continue  # its 503 reports the state of the service (no worker runs here), not the input
        paths = {re.sub(r"<[^>]+>", value, rule.rule) for value in IDS}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for path in sorted(paths):
                yield method, path


def check(response: TestResponse, what: str) -> str | None:
    """Why this answer breaks the contract, or None."""
    if response.status_code >= 500:
        return f"{what}: {response.status_code} {response.get_data(as_text=True)[:200]}"
    if response.status_code < 400:
        return None
    if response.mimetype != "application/json":
        return f"{what}: {response.status_code} not JSON ({response.mimetype})"
    body = response.get_json()
    if set(body) != {"error", "detail"} or not isinstance(body["error"], str):
        return f"{what}: {response.status_code} error shape {body!r:.200}"
    return None


def send_everywhere(app: Flask, api: Api, raw: bytes) -> list[str]:
    failures = []
    for method, path in calls(app):
        kwargs = {"data": raw, "content_type": "application/json"} if method in ("POST", "PUT", "PATCH") else {}
        response = api.client.open(path, method=method, auth=api.auth, **kwargs)
        failures.append(check(response, f"{method} {path} {raw[:60]!r}"))
    return [failure for failure in failures if failure]


def test_the_walk_covers_the_api(app: Flask) -> None:
    walked = set(calls(app))
    for expected in [("GET", "/wsexec/tasks"), ("POST", "/wsexec/tasks"), ("PATCH", "/wsexec/tasks/1"),
                     ("DELETE", "/wsexec/instances/1"), ("GET", "/wsexec/tasks/1/output")]:
        assert expected in walked


@pytest.mark.parametrize("value", GARBAGE_JSON, ids=lambda v: repr(v)[:40])
def test_garbage_json_never_answers_500(app: Flask, seeded: Api, value: Any) -> None:
    assert send_everywhere(app, seeded, json.dumps(value).encode()) == []


@pytest.mark.parametrize("raw", GARBAGE_RAW, ids=lambda v: repr(v[:30]))
def test_garbage_bytes_never_answer_500(app: Flask, seeded: Api, raw: bytes) -> None:
    assert send_everywhere(app, seeded, raw) == []


@pytest.mark.parametrize("query", GARBAGE_QUERIES)
def test_garbage_queries_never_answer_500(app: Flask, seeded: Api, query: str) -> None:
    failures = []
    for method, path in calls(app):
        if method == "GET":
            response = seeded.client.get(f"{path}?{query}", auth=seeded.auth)
            failures.append(check(response, f"GET {path}?{query}"))
    assert [failure for failure in failures if failure] == []


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "application/json; charset=latin-1"}, {"Content-Type": "application/json; charset=nope"},
     {"Content-Type": "application/json", "Content-Encoding": "gzip"}, {"Content-Type": "application/merge-patch+json"},
     {"Content-Type": "application/json", "Accept": "text/html"}, {"Content-Type": ""}],
)
def test_garbage_headers_never_answer_500(app: Flask, seeded: Api, headers: dict[str, str]) -> None:
    failures = []
    for method, path in calls(app):
        response = seeded.client.open(path, method=method, auth=seeded.auth, headers=headers,
                                      data=json.dumps({**TASK, "instance": 1}))
        failures.append(check(response, f"{method} {path} {headers}"))
    assert [failure for failure in failures if failure] == []


def test_redis_down_is_503_not_500(settings: Any) -> None:
    """Redis gone (restart, outage): every answer says so with 503 and the error shape, and health tells why."""
    from dataclasses import replace

    from wsexec import create_app
    from wsexec.testing import free_port

    client = create_app(replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")).test_client()
    response = client.get("/wsexec/tasks", auth=("admin", PASSWORDS["admin"]))
    assert response.status_code == 503
    assert response.json["error"] == "storage unavailable, try again shortly" and response.headers["Retry-After"]
    health = client.get("/wsexec/health")
    assert health.status_code == 503
    assert health.json == {"error": "Redis unreachable", "detail": {"status": "degraded", "redis": False, "workers": 0}}
