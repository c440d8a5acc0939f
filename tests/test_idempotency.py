"""Idempotency-Key on POST /wsexec/tasks: a retried POST gets the first answer back and creates nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask import Flask
from redis import Redis

from tests.helpers import Api, wait_for
from wsexec import create_app
from wsexec.config import Settings
from wsexec.exceptions import Unprocessable, WsexecError
from wsexec.idempotency import fingerprint, idempotent
from wsexec.store import Store

TASK = {"name": "cron", "tag": "nightly", "instance": 1, "script": "backup"}


def post(api: Api, key: str | None, body: Any = None) -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return api.post("/tasks", json=TASK if body is None else body, headers=headers)


def task_count(api: Api) -> int:
    return api.get("/tasks").json["count"]


def test_retry_returns_the_first_answer_and_creates_nothing(api: Api, instance: dict[str, Any]) -> None:
    operator = api.as_user("operator")
    first = post(operator, "nightly-2026-01-01")
    retry = post(operator, "nightly-2026-01-01")
    assert first.status_code == retry.status_code == 201
    assert retry.json == first.json and retry.json["id"] == 1
    assert retry.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert task_count(api) == 1


def test_same_json_in_another_key_order_is_the_same_request(api: Api, instance: dict[str, Any]) -> None:
    assert post(api, "k", TASK).status_code == 201
    assert post(api, "k", dict(reversed(TASK.items()))).headers.get("Idempotent-Replayed") == "true"
    assert task_count(api) == 1


def test_without_a_key_every_post_creates(api: Api, instance: dict[str, Any]) -> None:
    assert post(api, None).status_code == post(api, None).status_code == 201
    assert task_count(api) == 2


def test_keys_are_per_user(api: Api, instance: dict[str, Any]) -> None:
    assert post(api, "shared").json["id"] == 1
    assert post(api.as_user("operator"), "shared").json["id"] == 2
    assert task_count(api) == 2


def test_same_key_with_another_body_is_422(api: Api, instance: dict[str, Any]) -> None:
    assert post(api, "k").status_code == 201
    response = post(api, "k", {**TASK, "script": "something else"})
    assert response.status_code == 422 and "Idempotency-Key" in response.json["detail"]
    assert task_count(api) == 1


@pytest.mark.parametrize("key", ["", "   ", "k" * 201])
def test_invalid_key_is_422(api: Api, instance: dict[str, Any], key: str) -> None:
    response = post(api, key)
    assert response.status_code == 422 and "Idempotency-Key" in response.json["detail"]
    assert task_count(api) == 0


def test_longest_key_is_accepted(api: Api, instance: dict[str, Any]) -> None:
    assert post(api, "k" * 200).status_code == post(api, "k" * 200).status_code == 201
    assert task_count(api) == 1


def test_in_flight_duplicate_is_409(app: Flask, api: Api, store: Store, instance: dict[str, Any]) -> None:
    """The first request is still running (its pending record is there): the duplicate must not run too."""
    with app.test_request_context("/wsexec/tasks", method="POST", json=TASK):
        pending = {"fingerprint": fingerprint()}
    assert store.idempotency_begin("admin", "k", pending, 600) is None
    response = post(api, "k")
    assert response.status_code == 409 and "in progress" in response.json["error"]
    assert task_count(api) == 0
    store.idempotency_release("admin", "k")  # the first request failed: a retry may run
    assert post(api, "k").status_code == 201


def test_a_refused_request_keeps_no_answer(api: Api, instance: dict[str, Any]) -> None:
    """Nothing was created, so the key stays free: the corrected request runs."""
    bad = {**TASK, "instance": 99}
    assert post(api, "k", bad).status_code == 422
    assert "Idempotent-Replayed" not in post(api, "k", bad).headers
    assert post(api, "k").status_code == 201
    assert task_count(api) == 1


def test_answer_kept_for_the_window(settings: Settings, redis: Redis, store: Store, instance: Any) -> None:
    api = Api(create_app(dataclasses.replace(settings, idempotency_window=1)).test_client())
    assert post(api, "k").status_code == 201
    assert 0 < redis.ttl(store.idempotency_key("admin", "k")) <= 1
    wait_for(lambda: "Idempotent-Replayed" not in post(api, "k").headers)  # expired: this one created a task
    assert task_count(api) == 2


def test_default_window_is_a_day(api: Api, redis: Redis, store: Store, instance: dict[str, Any]) -> None:
    assert post(api, "k").status_code == 201
    assert 86400 - 60 < redis.ttl(store.idempotency_key("admin", "k")) <= 86400


def test_header_is_documented(api: Api) -> None:
    operation = api.get("/openapi.json").json["paths"]["/wsexec/tasks"]["post"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert parameter["in"] == "header" and parameter["schema"]["maxLength"] == 200


class Timeout(WsexecError):
    status = 504


@pytest.mark.parametrize("error, runs", [(Timeout, 1), (Unprocessable, 2)], ids=["5xx kept", "4xx not kept"])
def test_error_answers_after_the_view_ran(app: Flask, api: Api, error: type[WsexecError], runs: int) -> None:
    """A 504 from ?wait comes after the task was created: a retry must get it back, not create another."""
    calls = []

    @app.post("/wsexec/probe")
    @idempotent
    def probe() -> None:
        calls.append(1)
        raise error(f"call {len(calls)}", {"task": 1})

    first, second = (api.post("/probe", json={}, headers={"Idempotency-Key": "k"}) for _ in range(2))
    assert (first.status_code, second.status_code) == (error.status, error.status)
    assert len(calls) == runs
    assert (second.json == first.json) is (runs == 1)
