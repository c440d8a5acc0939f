"""Who may call what: nothing but /wsexec/health without credentials, and roles viewer < operator < admin."""

from __future__ import annotations

import base64
import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import check_password_hash
from werkzeug.test import TestResponse

from tests.helpers import PASSWORDS, ROOT, Api
from wsexec import create_app
from wsexec.blueprint import access_of
from wsexec.config import Settings
from wsexec.roles import Role

HEALTH = "/wsexec/health"
CONSOLE = "ui"  # the console's static files: code, no data (README, "The web console"); wsexec/ui is their blueprint
TASK = {"name": "uptime", "tag": "nightly", "script": "uptime"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


WRONG_CREDENTIALS: list[dict[str, str]] = [
    {},
    basic("admin", "wrong"),
    basic("admin", ""),
    basic("nobody", PASSWORDS["admin"]),
    basic("", ""),
    basic("ADMIN", PASSWORDS["admin"]),
    basic("admin", PASSWORDS["admin"] + " "),
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer " + PASSWORDS["admin"]},
    {"Authorization": "Basic !!!not base64"},
    {"Authorization": "Basic " + base64.b64encode(b"no colon").decode()},
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
    {"Authorization": "Digest username=admin"},
    {"Authorization": "admin:admin-pw"},
    {"Authorization": "\u00e9\u00e9"},
]


def walk(app: Flask) -> Iterator[tuple[str, str, Any]]:
    """(method, path, blueprint) for every route and method but health and the console's files; path arguments
    filled with 1."""
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0]
        if rule.rule == HEALTH or blueprint == CONSOLE:
            continue
        path = re.sub(r"<[^>]+>", "1", rule.rule)
        for method in sorted(rule.methods or ()):
            yield method, path, app.blueprints.get(blueprint)


def refused(response: TestResponse, method: str) -> str | None:
    """Why this is not a proper 401, or None."""
    if response.status_code != 401:
        return f"{response.status_code}"
    if not response.headers.get("WWW-Authenticate"):
        return "no WWW-Authenticate"
    if method != "HEAD" and set(response.get_json() or ()) != {"error", "detail"}:
        return f"body {response.get_data(as_text=True)[:100]}"
    return None


def test_the_walk_covers_the_api(app: Flask) -> None:
    walked = {(method, path) for method, path, _ in walk(app)}
    for expected in [("GET", "/wsexec/tasks"), ("POST", "/wsexec/tasks"), ("DELETE", "/wsexec/tasks/1"),
                     ("PUT", "/wsexec/instances/1"), ("GET", "/wsexec/openapi.json")]:
        assert expected in walked
    assert all(path != HEALTH for _, path in walked)


def test_the_console_files_are_all_that_is_public_beside_health(app: Flask) -> None:
    """Its blueprint serves files from its static folder only: no view there can read data."""
    console = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith(f"{CONSOLE}.")}
    assert console == {"/wsexec/ui/", "/wsexec/ui/<path:name>"}
    assert access_of(app.blueprints[CONSOLE]).public


@pytest.mark.parametrize("headers", WRONG_CREDENTIALS, ids=lambda h: h.get("Authorization", "none")[:30])
def test_every_route_but_health_needs_credentials(app: Flask, headers: dict[str, str]) -> None:
    client = app.test_client()
    failures = []
    for method, path, _ in walk(app):
        response = client.open(path, method=method, headers=headers, json={**TASK, "instance": 1})
        if why := refused(response, method):
            failures.append(f"{method} {path}: {why}")
    assert failures == []


def test_basic_clients_are_challenged_with_basic(app: Flask) -> None:
    response = app.test_client().get("/wsexec/tasks")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert response.json == {"error": "authentication required: basic auth or a bearer token", "detail": None}


@pytest.mark.parametrize(
    ("path", "request_kwargs"),
    [("/wsexec/tasks", {"data": "name=x"}),
     ("/wsexec/tasks", {"data": "{bad", "content_type": "application/json"}),
     ("/wsexec/tasks", {"data": "#" * (2 * 1024 * 1024), "content_type": "application/json"}),
     ("/wsexec/instances", {"json": {"ip": "not an ip"}}),
     ("/wsexec/nothing", {}),
     ("/wsexec/tasks/1/nothing", {})],
)
def test_credentials_are_checked_before_anything_else(app: Flask, path: str, request_kwargs: dict[str, Any]) -> None:
    """No 400/404/413/415/422 for strangers: they learn nothing about routes or validation."""
    assert refused(app.test_client().post(path, **request_kwargs), "POST") is None


@pytest.mark.parametrize("headers", [{}, basic("admin", "wrong")], ids=["none", "wrong"])
def test_health_answers_without_credentials(app: Flask, headers: dict[str, str]) -> None:
    response = app.test_client().get(HEALTH, headers=headers)
    assert response.status_code == 503  # no worker runs in this test, and health says so without credentials
    assert response.json["detail"]["redis"] is True


@pytest.fixture
def seeded(api: Api) -> Api:
    """Instance 1 (then DEACTIVATE, so nothing waits for a worker) and INIT task 1."""
    assert api.post("/instances", json={"ip": "127.0.0.1", "tag": "web", "user": "nobody"}).status_code == 201
    assert api.post("/tasks", json={**TASK, "instance": 1}).status_code == 201
    assert api.patch("/instances/1", json={"state": "DEACTIVATE"}).status_code == 200
    return api


@pytest.mark.parametrize("user", ["viewer", "operator", "admin"])
def test_every_route_checks_the_role(app: Flask, seeded: Api, user: str) -> None:
    """403 exactly where the route's blueprint asks for more than the user's role, on every route (and 401 on the
    registration token's)."""
    failures = []
    for method, path, blueprint in walk(app):
        response = seeded.client.open(path, method=method, auth=seeded.as_user(user).auth, json={})
        if access_of(blueprint).registration:  # a registration token's routes: no user's credentials open them
            if response.status_code != 401:
                failures.append(f"{method} {path}: {response.status_code} for {user}, not 401")
            continue
        required = access_of(blueprint).role_for(method)
        too_low = Role[user.upper()] < required
        if (response.status_code == 403) != too_low or response.status_code == 401:
            failures.append(f"{method} {path}: {response.status_code} for {user}")
        elif too_low and method != "HEAD" and response.json["detail"] != {"required": required.label}:
            failures.append(f"{method} {path}: 403 body {response.json}")
    assert failures == []


ROLE_TABLE = [  # (user, method, path, body, status): what each role can do, as curl sessions
    ("viewer", "get", "/tasks", None, 200),
    ("viewer", "get", "/tasks/1", None, 200),
    ("viewer", "get", "/tasks/1/output", None, 200),
    ("viewer", "get", "/instances", None, 200),
    ("viewer", "get", "/instances/1", None, 200),
    ("viewer", "post", "/tasks", {**TASK, "instance": 1}, 403),
    ("viewer", "patch", "/tasks/1", {"name": "x"}, 403),
    ("viewer", "patch", "/tasks/1", {"state": "ABORT"}, 403),
    ("viewer", "delete", "/tasks/1", None, 403),
    ("viewer", "post", "/instances", {"ip": "127.0.0.2", "tag": "web"}, 403),
    ("viewer", "post", "/notes", {"instance": 1, "content": "any user may write notes"}, 201),
    ("viewer", "get", "/notes?instance=1", None, 200),
    ("operator", "post", "/tasks", {**TASK, "instance": 1}, 201),
    ("operator", "patch", "/tasks/1", {"name": "renamed"}, 200),
    ("operator", "post", "/instances", {"ip": "127.0.0.2", "tag": "web"}, 403),
    ("operator", "put", "/instances/1", {"tag": "db"}, 403),
    ("operator", "patch", "/instances/1", {"state": "DEACTIVATE"}, 403),
    ("operator", "delete", "/instances/1", None, 403),
    ("admin", "post", "/instances", {"ip": "127.0.0.2", "tag": "web"}, 201),
    ("admin", "put", "/instances/1", {"tag": "db"}, 200),
    ("admin", "post", "/tasks", {**TASK, "instance": 1}, 201),
    ("admin", "patch", "/tasks/1", {"state": "ABORT"}, 200),
]


@pytest.mark.parametrize(("user", "method", "path", "body", "status"), ROLE_TABLE)
def test_roles(api: Api, user: str, method: str, path: str, body: Any, status: int) -> None:
    assert api.post("/instances", json={"ip": "127.0.0.1", "tag": "web", "user": "nobody"}).status_code == 201
    assert api.post("/tasks", json={**TASK, "instance": 1}).status_code == 201
    before = (api.get("/tasks").json, api.get("/instances").json)
    response = getattr(api.as_user(user), method)(path, json=body)
    assert response.status_code == status, response.json
    if status == 403:
        assert set(response.json) == {"error", "detail"}
        assert (api.get("/tasks").json, api.get("/instances").json) == before  # nothing happened
    if status == 201 and path == "/tasks":
        assert response.json["created_by"] == user


def run_auth_command(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m wsexec.auth ...` as an operator would run it."""
    return subprocess.run([sys.executable, "-m", "wsexec.auth", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def new_token(name: str, role: str) -> tuple[str, str]:
    """(the token for the client, the entry for WSEXEC_TOKENS), from the helper command."""
    out = run_auth_command("token", name, role).stdout
    token = re.search(r"^token .*:\s+(\S+)$", out, re.M)
    entry = re.search(r"^entry .*:\s+(\S+)$", out, re.M)
    assert token and entry, out
    return token.group(1), entry.group(1)


@pytest.fixture
def token_client(settings: Settings, redis: Any) -> tuple[FlaskClient, dict[str, str]]:
    """An app that knows tokens for ci (operator) and dash (viewer) besides the users."""
    ci, ci_entry = new_token("ci", "operator")
    dash, dash_entry = new_token("dash", "viewer")
    name, role, digest = dash_entry.split(":")
    tokens = f"{ci_entry} {name}:{role}:{digest.upper()}"  # the digest is hex: either case works
    app = create_app(dataclasses.replace(settings, tokens=tokens))
    return app.test_client(), {"ci": ci, "dash": dash}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_bearer_tokens_carry_their_role(token_client: tuple[FlaskClient, dict[str, str]]) -> None:
    client, tokens = token_client
    admin = basic("admin", PASSWORDS["admin"])  # users still work next to tokens
    assert client.post("/wsexec/instances", headers=admin, json={"ip": "127.0.0.1", "tag": "web", "user": "nobody"})
    task = client.post("/wsexec/tasks", headers=bearer(tokens["ci"]), json={**TASK, "instance": 1})
    assert task.status_code == 201
    assert task.json["created_by"] == "ci"
    assert client.get("/wsexec/tasks", headers=bearer(tokens["dash"])).json["count"] == 1
    assert client.post("/wsexec/tasks", headers=bearer(tokens["dash"]), json={**TASK, "instance": 1}).status_code == 403
    assert client.post("/wsexec/instances", headers=bearer(tokens["ci"]), json={"ip": "::1", "tag": "x"}).status_code \
        == 403


def test_a_token_is_not_a_password(token_client: tuple[FlaskClient, dict[str, str]]) -> None:
    client, tokens = token_client
    other, _ = new_token("ci", "operator")  # generated, never added to WSEXEC_TOKENS
    for headers in (bearer(other), bearer(tokens["ci"][:-1]), bearer(tokens["ci"] + "x"), basic("ci", tokens["ci"])):
        assert refused(client.get("/wsexec/tasks", headers=headers), "GET") is None


def test_the_hash_command_prints_a_usable_password_hash(settings: Settings, redis: Any) -> None:
    password = "correct horse: battery staple \u00e9"
    digest = run_auth_command("hash", password).stdout.strip()
    assert check_password_hash(digest, password)
    assert not check_password_hash(digest, password + "x")
    client = create_app(dataclasses.replace(settings, users=f"carol:viewer:{digest}")).test_client()
    assert client.get("/wsexec/tasks", headers=basic("carol", password)).status_code == 200
    assert client.post("/wsexec/tasks", headers=basic("carol", password), json=TASK).status_code == 403
    assert refused(client.get("/wsexec/tasks", headers=basic("carol", "wrong")), "GET") is None


@pytest.mark.parametrize("args", [[], ["hash"], ["token", "ci"], ["token", "ci", "root"], ["nope", "x"]])
def test_the_helper_command_explains_its_usage(args: list[str]) -> None:
    result = run_auth_command(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_a_verified_password_is_not_rehashed_but_a_wrong_one_always_is(
    settings: Any, redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polling with basic auth must not pay scrypt per request; guessing must."""
    from dataclasses import replace

    from werkzeug.security import generate_password_hash

    from wsexec import create_app, logins

    slow_hash = generate_password_hash("poller-pw")  # werkzeug's default scrypt
    client = create_app(replace(settings, users=f"poller:viewer:{slow_hash}")).test_client()
    checks = []
    real_check = logins.hash_matches
    monkeypatch.setattr(logins, "hash_matches", lambda *a: checks.append(a) or real_check(*a))
    for _ in range(5):
        assert client.get("/wsexec/tasks", auth=("poller", "poller-pw")).status_code == 200
    for _ in range(3):
        assert client.get("/wsexec/tasks", auth=("poller", "wrong")).status_code == 401
    assert len(checks) == 1 + 3


def test_requests_arriving_together_with_one_password_share_its_check(
    settings: Any, redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client opening many connections at once pays one scrypt check, not one per connection; a wrong password
    sent the same way is refused to every one of them."""
    import threading
    from dataclasses import replace

    from werkzeug.security import generate_password_hash

    from wsexec import create_app, logins

    app = create_app(replace(settings, users=f"dashboard:viewer:{generate_password_hash('dash-pw')}"))
    checks = []
    real_check = logins.hash_matches
    monkeypatch.setattr(logins, "hash_matches", lambda *a: checks.append(a) or real_check(*a))
    start = threading.Barrier(8)

    def statuses(password: str) -> list[int]:
        found: list[int] = []

        def call() -> None:
            client = app.test_client()
            start.wait()
            found.append(client.get("/wsexec/tasks", auth=("dashboard", password)).status_code)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return found

    assert statuses("dash-pw") == [200] * 8
    assert len(checks) == 1
    assert statuses("wrong") == [401] * 8
    assert 2 <= len(checks) <= 1 + 8  # checked (at least once) by its own flight: the right one's verdict is not reused
