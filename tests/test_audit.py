"""GET /wsexec/audit: every change is logged with who, what, when and from where; only admins read it."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest
from redis import Redis

from tests.helpers import Api, task_body
from wsexec import create_app
from wsexec.config import Settings
from wsexec.store import Store, keys

CLIENT = {"environ_base": {"REMOTE_ADDR": "127.0.0.9"}}


def audit(api: Api, **query: Any) -> dict[str, Any]:
    response = api.get("/audit", query_string=query)
    assert response.status_code == 200, response.json
    return response.json


def test_every_change_is_logged_newest_first(api: Api, instance: dict[str, Any]) -> None:
    operator = api.as_user("operator")
    started = time.time()
    assert operator.post("/tasks", json=[task_body(1), task_body(1)], **CLIENT).status_code == 201
    assert operator.patch("/tasks/1", json={"name": "renamed"}, **CLIENT).status_code == 200
    assert operator.patch("/tasks/1", json={"state": "ABORT"}, **CLIENT).status_code == 200
    assert operator.delete("/tasks/1", **CLIENT).status_code == 204
    assert api.patch(f"/instances/{instance['id']}", json={"tag": "other"}, **CLIENT).status_code == 200
    assert api.post("/instances", json={"ip": "127.0.0.1", "tag": "spare"}, **CLIENT).status_code == 201
    assert api.delete("/instances/2", **CLIENT).status_code == 204

    entries = audit(api)["results"]
    assert [(e["action"], e["target"], e["user"], e["role"]) for e in entries] == [
        ("instance.delete", "instance:2", "admin", "admin"),
        ("instance.create", "instance:2", "admin", "admin"),
        ("instance.update", f"instance:{instance['id']}", "admin", "admin"),
        ("task.delete", "task:1", "operator", "operator"),
        ("task.cancel", "task:1", "operator", "operator"),
        ("task.update", "task:1", "operator", "operator"),
        ("task.create", "task:1-2", "operator", "operator"),
        ("instance.create", f"instance:{instance['id']}", "admin", "admin"),  # the fixture's
    ]
    assert entries[-2]["detail"] == {"ids": [1, 2], "batches": []}
    assert entries[-3]["detail"] == {"name": "renamed"}
    assert entries[2]["detail"] == {"tag": "other"}
    assert entries[1]["detail"]["ip"] == "127.0.0.1"
    assert {e["ip"] for e in entries[:-1]} == {"127.0.0.9"}
    assert all(started <= e["time"] <= time.time() for e in entries[:-1])


def test_fan_out_names_its_batch(api: Api, instance: dict[str, Any]) -> None:
    created = api.post("/tasks", json={"name": "fan", "tag": "t", "target": {"tag": "test"}, "script": "true"})
    assert created.status_code == 201, created.json
    (entry,) = [e for e in audit(api)["results"] if e["action"] == "task.create"]
    assert entry["detail"] == {"ids": [created.json[0]["id"]], "batches": [created.json[0]["batch"]]}


def test_refused_changes_are_not_logged(api: Api, instance: dict[str, Any]) -> None:
    assert api.post("/tasks", json=task_body(1)).status_code == 201
    assert api.delete("/tasks/1").status_code == 409  # still INIT
    assert api.post("/tasks", json=task_body(99)).status_code == 422
    assert api.delete("/instances/99").status_code == 404
    assert [e["action"] for e in audit(api)["results"]] == ["task.create", "instance.create"]


@pytest.mark.parametrize("user, status", [("viewer", 403), ("operator", 403), ("admin", 200)])
def test_only_admins_read_it(api: Api, user: str, status: int) -> None:
    assert api.as_user(user).get("/audit").status_code == status


def test_unauthenticated_is_401(api: Api) -> None:
    assert api.get("/audit", auth=None).status_code == 401


def test_paginated_like_every_list(api: Api, instance: dict[str, Any]) -> None:
    for number in range(4):
        assert api.patch(f"/instances/{instance['id']}", json={"tag": f"t{number}"}).status_code == 200
    first = audit(api, page_size=2)
    assert first["count"] == 5 and first["previous"] is None and first["next"]
    assert [e["detail"] for e in first["results"]] == [{"tag": "t3"}, {"tag": "t2"}]
    last = audit(api, page=3, page_size=2)
    assert last["next"] is None and [e["action"] for e in last["results"]] == ["instance.create"]


def test_capped_at_audit_max_keeping_the_newest(settings: Settings, redis: Redis, instance: dict[str, Any]) -> None:
    api = Api(create_app(dataclasses.replace(settings, audit_max=3)).test_client())
    for number in range(5):
        assert api.patch(f"/instances/{instance['id']}", json={"tag": f"t{number}"}).status_code == 200
    page = audit(api)
    assert page["count"] == 3
    assert [e["detail"] for e in page["results"]] == [{"tag": "t4"}, {"tag": "t3"}, {"tag": "t2"}]


def entry_line(number: int) -> bytes:
    return json.dumps({"n": number, "detail": "x" * (number * 37 % 900)}, separators=(",", ":")).encode()


def test_capped_by_bytes_keeping_the_newest(store: Store, redis: Redis) -> None:
    limit = 40_000
    for number in range(3000):  # about 1.3 MB of entries through a 40 kB log
        store.audit.add(json.loads(entry_line(number)), keep=100_000, max_bytes=limit)
    kept = redis.lrange(keys.AUDIT, 0, -1)
    total = sum(len(line) for line in kept)
    assert total <= limit and store.audit.size() == total
    newest = [json.loads(line)["n"] for line in kept]
    assert newest == list(range(2999, 2999 - len(kept), -1))  # the newest, in order, none missing
    assert total + len(entry_line(newest[-1] - 1)) > limit  # as many as fit
    store.audit.add({"detail": "y" * (2 * limit)}, keep=100_000, max_bytes=limit)  # bigger than the bound itself
    assert [json.loads(line)["detail"][:1] for line in redis.lrange(keys.AUDIT, 0, -1)] == ["y"]  # it stays, alone


def test_a_log_written_before_the_byte_count_is_counted_once(store: Store, redis: Redis) -> None:
    old = [entry_line(number) for number in range(2500)]  # as an older version left it: no byte count
    redis.lpush(keys.AUDIT, *old)
    store.audit.add({"n": 2500}, keep=100_000, max_bytes=10**9)
    assert store.audit.size() == sum(map(len, old)) + len(b'{"n":2500}')
    store.audit.add({"n": 2501}, keep=100_000, max_bytes=20_000)
    kept = redis.lrange(keys.AUDIT, 0, -1)
    assert store.audit.size() == sum(map(len, kept)) <= 20_000
    assert json.loads(kept[0]) == {"n": 2501} and json.loads(kept[1]) == {"n": 2500}


def test_the_byte_bound_is_the_setting(settings: Settings, redis: Redis, instance: dict[str, Any]) -> None:
    api = Api(create_app(dataclasses.replace(settings, audit_max_bytes=1000)).test_client())
    for number in range(20):
        assert api.patch(f"/instances/{instance['id']}", json={"tag": f"t{number}"}).status_code == 200
    page = audit(api, page_size=100)
    assert 1 < page["count"] < 20
    assert [e["detail"] for e in page["results"]][:2] == [{"tag": "t19"}, {"tag": "t18"}]
    assert sum(map(len, redis.lrange(keys.AUDIT, 0, -1))) <= 1000


def test_a_post_after_redis_lost_its_scripts_logs_once_and_queues_each_job_once(
        api: Api, instance: dict[str, Any], redis: Redis, settings: Settings) -> None:
    """The audit entry goes in the transaction that queues the jobs: a Redis without the scripts (restarted) must
    neither refuse it after queueing them nor get them queued twice by a repeat."""
    assert api.post("/tasks", json=task_body(instance)).status_code == 201  # this process has run every script
    redis.script_flush()
    response = api.post("/tasks", json=[task_body(instance)] * 3)
    assert response.status_code == 201, response.json
    ids = [task["id"] for task in response.json]
    logged = [entry for entry in audit(api)["results"] if entry["action"] == "task.create"]
    assert [entry["detail"]["ids"] for entry in logged] == [ids, [ids[0] - 1]]
    queued = [job.decode() for job in redis.lrange(f"rq:queue:{settings.queue}", 0, -1)]
    assert sorted(queued) == sorted({*queued}) and {task["job"] for task in response.json} <= {*queued}
