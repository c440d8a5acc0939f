"""A full Redis (maxmemory reached, noeviction): 507 with the error shape, and nothing half-written.

Against a redis-server of its own, filled past a small memory budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from tests.helpers import Api, task_body
from workers.rq_adapter import make_queue
from wsexec.config import Settings
from wsexec.store import keys
from wsexec.testing import RedisServer

FILLER = "filler"


@pytest.fixture
def full_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis").start() as server:
        yield server


@pytest.fixture
def settings(settings: Settings, full_server: RedisServer) -> Settings:
    return dataclasses.replace(settings, redis_url=full_server.url)


@pytest.fixture
def admin(full_server: RedisServer) -> Redis:
    connection = Redis.from_url(full_server.url)
    connection.config_set("maxmemory-policy", "noeviction")
    return connection


def budget(admin: Redis, room: int) -> None:
    """Set maxmemory `room` bytes above what Redis uses now (negative: already past it)."""
    admin.config_set("maxmemory", admin.info("memory")["used_memory"] + room)


def assert_full(response: Any) -> None:
    assert response.status_code == 507, response.json
    assert set(response.json) == {"error", "detail"}
    assert response.json["error"].startswith("the task store is full")


def assert_nothing_stored(api: Api, admin: Redis, settings: Settings) -> None:
    assert api.get("/tasks").json["count"] == 0
    assert admin.get(keys.counter("task")) is None  # not even an id was taken
    assert make_queue(admin, settings.queue).count == 0 and admin.keys("rq:job:*") == []


def test_full_redis_answers_507_and_keeps_nothing(api: Api, instance: dict[str, Any], admin: Redis,
                                                  settings: Settings) -> None:
    admin.set(FILLER, b"x" * 4_000_000)
    budget(admin, -3_000_000)  # well past it: Redis's own buffers come and go by a megabyte on a busy machine
    assert_full(api.post("/tasks", json=[task_body(instance)] * 5))
    assert_full(api.post("/tasks", json=task_body(instance), headers={"Idempotency-Key": "k1"}))
    assert_full(api.post("/instances", json={"ip": "127.0.0.1", "tag": "more"}))
    assert_nothing_stored(api, admin, settings)
    assert api.get("/instances").json["count"] == 1
    admin.delete(FILLER)  # room again: the same requests go through, the idempotency key was not kept half-done
    assert api.post("/tasks", json=task_body(instance), headers={"Idempotency-Key": "k1"}).status_code == 201
    assert api.post("/instances", json={"ip": "127.0.0.1", "tag": "more"}).status_code == 201


def test_redis_filling_up_during_a_creation_keeps_nothing(api: Api, instance: dict[str, Any], admin: Redis,
                                                          settings: Settings) -> None:
    budget(admin, 650_000)  # room for the request and its 1000 tasks (about 450 KB), not for their RQ jobs too
    assert_full(api.post("/tasks", json=[task_body(instance)] * 1000))
    assert admin.get(keys.counter("task")) == b"1000"  # they were stored, then removed when RQ could not take them
    assert api.get("/tasks").json["count"] == 0
    assert make_queue(admin, settings.queue).count == 0 and admin.keys("rq:job:*") == []
