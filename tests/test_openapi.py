"""GET /wsexec/openapi.json is valid OpenAPI 3, covers every route, and the live app keeps to it (schemathesis)."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import Redis
from rq import Worker
from schemathesis.core.failures import ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.security import generate_password_hash

from tests.helpers import Api
from wsexec.config import Settings
from wsexec.store import Store, TaskState

UNDOCUMENTED_ENDPOINTS = {"static", "api-docs.openapi_json", "ui.index", "ui.asset"}  # itself; the console's files
FUZZER, FUZZER_PASSWORD = "schemathesis", "fuzz-pw"
ADMIN_HEADERS = {"Authorization": "Basic " + base64.b64encode(f"{FUZZER}:{FUZZER_PASSWORD}".encode()).decode()}
REGISTRATION_PATHS = {"/wsexec/register.sh", "/wsexec/register"}
PUBLIC_PATHS = {"/wsexec/health", "/wsexec/websh/sessions/{session_id}/connect"}  # the websocket: its one-time ticket
SEEDED = 9  # instances, and tasks (a third ABORT, a third DONE, a third INIT)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One more admin, with a cheap password hash: thousands of requests must not each pay for scrypt."""
    fuzzer = f"{FUZZER}:admin:{generate_password_hash(FUZZER_PASSWORD, 'pbkdf2:sha256:1')}"
    return dataclasses.replace(settings, users=f"{settings.users} {fuzzer}")


@pytest.fixture
def document(api: Api) -> dict[str, Any]:
    response = api.as_user("viewer").get("/openapi.json")
    assert response.status_code == 200, response.json
    return response.json


def openapi_path(rule: str) -> str:
    """/wsexec/tasks/<int:task_id> -> /wsexec/tasks/{task_id}"""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    schemathesis.openapi.from_dict(document).validate()  # the official OpenAPI 3 JSON schema; raises if invalid


def test_document_covers_every_route_and_method(app: Flask, document: dict[str, Any]) -> None:
    expected = {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in UNDOCUMENTED_ENDPOINTS
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    documented = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert expected - documented == set(), "routes missing from the document"
    assert documented - expected == set(), "documented operations the app does not have"


def test_security_declared_and_required_except_health(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {(s["type"], s["scheme"]) for s in schemes.values()} == {("http", "basic"), ("http", "bearer")}
    assert document["security"] == [{"basicAuth": []}, {"bearerAuth": []}]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            public = path in PUBLIC_PATHS
            registration = path in REGISTRATION_PATHS  # a registration token, and no user's credentials
            assert (operation.get("security") == []) is public, (method, path)
            assert (operation.get("security") == [{"registrationToken": []}]) is registration, (method, path)
            assert ("401" not in operation["responses"]) is public, (method, path)


def test_errors_are_documented_with_our_error_body(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"error", "detail"} and set(error["required"]) == {"error", "detail"}
    responses = document["components"]["responses"]
    assert responses, "no shared error responses"
    for name, response in responses.items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name


def test_post_tasks_takes_and_answers_one_task_or_an_array(document: dict[str, Any]) -> None:
    post = document["paths"]["/wsexec/tasks"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    answer = post["responses"]["201"]["content"]["application/json"]["schema"]
    for schema in (body, answer):
        one, many = schema["oneOf"]
        assert many["type"] == "array" and many["items"] == one


@pytest.fixture
def idle_worker(settings: Settings, redis: Redis) -> Iterator[Worker]:
    """A worker registered with RQ, never started: health sees one; generated tasks (to made-up hosts) stay queued."""
    worker = Worker([settings.queue], connection=redis)
    worker.register_birth()
    yield worker
    worker.register_death()


@pytest.fixture
def live_schema(
    app: Flask, api: Api, store: Store, settings: Settings, sshd: Any, ssh_user: str, idle_worker: Worker
) -> Any:
    """The document as the app serves it, bound to the app, and records in every state for generated ids to hit."""
    for number in range(SEEDED):
        instance = {"ip": sshd.host, "port": sshd.port, "tag": f"tag{number % 2}", "user": ssh_user}
        assert api.post("/instances", json=instance).status_code == 201
    task = {"name": "seed", "tag": "seed", "instance": 1, "script": "echo out; echo err >&2"}
    created = api.post("/tasks", json=[task] * SEEDED)
    assert created.status_code == 201, created.json
    for task_id in range(1, SEEDED // 3 + 1):  # ABORT, as a client cancels it
        assert api.patch(f"/tasks/{task_id}", json={"state": "ABORT"}).status_code == 200
    for task_id in range(SEEDED // 3 + 1, 2 * SEEDED // 3 + 1):  # DONE, as a worker finishes it
        assert store.claim(task_id, "seed-worker", 60)
        store.append_output(task_id, "stdout", b"out\n", 0)
        store.finish(task_id, TaskState.DONE, rc=0)
    fan_out = api.post("/tasks", json={"name": "seed", "tag": "seed", "target": {"tag": "tag0"}, "script": "true"})
    assert fan_out.status_code == 201, fan_out.json
    for number in range(SEEDED):  # public and private, pinned or not, on several instances
        note = {"instance": number % 3 + 1, "content": f"seed {number}", "private": number % 3 == 0,
                "pinned": number % 2 == 0}
        assert api.post("/notes", json=note).status_code == 201
    for number in range(SEEDED):
        registration = {"tag": f"tag{number % 2}", "user": ssh_user, "uses": number + 1, "activate": number % 2 == 0}
        assert api.post("/registrations", json=registration).status_code == 201
    seeded = {"name": next(iter(settings.commands)), "batch_id": fan_out.json[0]["batch"]}

    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        """Half the generated ids and names are made seeded ones, so success answers get checked as much as 404s."""
        if not path_parameters:
            return st.just(path_parameters)
        existing = {
            name: value % SEEDED + 1 if type(value) is int and value >= 0 else seeded.get(name, value)
            for name, value in path_parameters.items()
        }
        return st.sampled_from([path_parameters, existing])

    loaded = schemathesis.openapi.from_wsgi("/wsexec/openapi.json", app, headers=ADMIN_HEADERS)
    loaded.hook(flatmap_path_parameters)
    return loaded


def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """Never a 500; another 5xx only where the operation documents it (health's 503, ?wait's 502 and 504)."""
    status = response.status_code
    if status >= 500 and (status == 500 or str(status) not in case.operation.responses.status_codes):
        raise ServerError(operation=case.operation.label, status_code=status)


schema = schemathesis.pytest.from_fixture("live_schema")


@pytest.mark.timeout(1200)  # one test for every operation: their 100 examples each, on a loaded machine
@hypothesis_settings(
    max_examples=100, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@schema.parametrize()
def test_app_keeps_to_its_document(case: Any) -> None:
    """Generated valid and invalid calls, as an admin: never a 5xx, every answer's code and body as documented."""
    if isinstance(case.body, dict) and isinstance(case.body.get("ip"), str):
        case.body["ip"] = "127.0.0.1"  # whatever address was generated: the run must reach no other host
    if "wait" in case.operation.query and type((case.query or {}).get("wait", 0)) is int:
        case.query = {**(case.query or {}), "wait": 1}  # no worker runs here: a longer wait ends in the same 504
    if case.operation.path in ("/wsexec/events", "/wsexec/tasks/{task_id}/output"):
        case.query = {**(case.query or {}), "timeout": 0}  # the events already there, not a stream left open
    checks = [no_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
    case.call_and_validate(headers=ADMIN_HEADERS, checks=checks)
