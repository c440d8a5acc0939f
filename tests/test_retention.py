"""Retention: finished tasks and their output are deleted Settings.retention_days after they end, indexes too."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis

from tests.helpers import Api, WorkerProcesses, task_body, wait_finished, wait_for
from wsexec.config import Settings
from wsexec.store import STREAMS, Store, TaskState
from wsexec.store.keys import FINISHED as FINISHED_KEY
from wsexec.store.records import TASK
from wsexec.store.tasks import EXPIRY_GRACE_SECONDS

RETENTION = 2.0  # seconds


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, retention_days=RETENTION / 86400)


@pytest.fixture
def store(redis: Redis, settings: Settings) -> Store:
    return Store.from_settings(redis, settings)


def indexes_holding(redis: Redis, task_id: int) -> list[bytes]:
    return [key for key in redis.scan_iter(f"{TASK.index_prefix}*", _type="zset") if redis.zscore(key, task_id)]


def keys_of(redis: Redis, task_id: int) -> list[bytes]:
    return [key for key in redis.scan_iter(f"{TASK.key(task_id)}*") if key.decode().split(":")[2] == str(task_id)]


def new_tasks(api: Api, count: int = 1, **fields: Any) -> list[int]:
    body = task_body(1, "echo out; echo err >&2", name="kept", tag="retained", **fields)
    return [task["id"] for task in api.created("/tasks", [body] * count)]


def test_finished_tasks_vanish_with_output_and_index_entries(api: Api, redis: Redis, instance: dict[str, Any],
                                                             workers: WorkerProcesses) -> None:
    fan_out = api.post("/tasks", json={"name": "fan", "tag": "t", "target": {"tag": "test"}, "script": "echo hi"})
    (task,) = fan_out.json
    (waiting,) = new_tasks(api, scheduled_at=time.time() + 3600)
    workers.start(1)
    assert wait_finished(api, task["id"])["stdout"] == "hi\n"

    wait_for(lambda: api.get(f"/tasks/{task['id']}").status_code == 404, timeout=30)  # the worker's sweep
    assert keys_of(redis, task["id"]) == [] and indexes_holding(redis, task["id"]) == []
    assert api.get(f"/batches/{task['batch']}").status_code == 404
    assert [t["id"] for t in api.get("/tasks").json["results"]] == [waiting]  # INIT: kept
    assert api.get("/tasks", query_string={"instance": instance["id"]}).json["count"] == 1


FINISHES: dict[str, Callable[[Store, int], Any]] = {
    "by its worker": lambda store, task_id: store.claim(task_id, "w", 60) and store.finish(task_id, TaskState.DONE),
    "cancelled while queued": lambda store, task_id: store.abort_queued(task_id, "cancelled by test"),
    "worker lost": lambda store, task_id: store.claim(task_id, "w", 1) and wait_for(lambda: store.reap_lost([task_id])),
}


@pytest.mark.parametrize("finish", FINISHES.values(), ids=FINISHES.keys())
def test_every_way_of_finishing_starts_the_clock(api: Api, store: Store, redis: Redis, instance: dict[str, Any],
                                                 finish: Callable[[Store, int], Any]) -> None:
    (task_id,) = new_tasks(api)
    for stream in STREAMS:
        store.append_output(task_id, stream, b"output\n", 0)
    assert redis.ttl(TASK.key(task_id)) == -1 and redis.zscore(FINISHED_KEY, task_id) is None
    assert finish(store, task_id)
    ttl = RETENTION + EXPIRY_GRACE_SECONDS  # Redis's own expiry: the backstop behind the sweep
    keys = [TASK.key(task_id)] + [store.output_key(task_id, stream) for stream in STREAMS]
    assert all(0 < redis.ttl(key) <= ttl for key in keys)
    assert redis.zscore(FINISHED_KEY, task_id) == store.get_task(task_id)["end"]


def test_sweep_deletes_what_is_past_retention_only(api: Api, store: Store, redis: Redis,
                                                   instance: dict[str, Any]) -> None:
    old, recent, running, queued = new_tasks(api, 4)
    for task_id in (old, recent, running):
        store.claim(task_id, "w", 60)
    store.finish(old, TaskState.DONE, rc=0)
    ended = store.get_task(old)["end"]
    redis.zadd(FINISHED_KEY, {str(old): ended - 10})  # as if it had ended 10 s earlier
    store.finish(recent, TaskState.DONE, rc=0)

    assert store.purge_expired(now=ended + RETENTION / 2) == 1
    assert not store.task_exists(old) and keys_of(redis, old) == [] and indexes_holding(redis, old) == []
    assert store.purge_expired(now=ended + 3600) == 1
    assert not store.task_exists(recent) and indexes_holding(redis, recent) == []
    assert [store.get_task(t)["state"] for t in (running, queued)] == ["CURRENT", "INIT"]  # never swept
    assert api.get("/tasks").json["count"] == 2


def test_renamed_after_finishing_its_new_index_is_cleaned(api: Api, store: Store, redis: Redis,
                                                          instance: dict[str, Any]) -> None:
    (task_id,) = new_tasks(api)
    assert api.patch(f"/tasks/{task_id}", json={"state": "ABORT"}).status_code == 200
    assert api.patch(f"/tasks/{task_id}", json={"name": "renamed", "tag": "retagged"}).status_code == 200
    assert redis.ttl(TASK.key(task_id)) > 0  # changing fields kept the expiry
    store.purge_expired(now=time.time() + 3600)
    assert indexes_holding(redis, task_id) == []
    assert api.get("/tasks", query_string={"name": "renamed"}).json["count"] == 0


def test_hash_expired_before_the_sweep_still_leaves_no_index_entry(api: Api, store: Store, redis: Redis,
                                                                   instance: dict[str, Any]) -> None:
    first, second = new_tasks(api, 2)
    for task_id in (first, second):
        store.abort_queued(task_id, "cancelled by test")
    redis.delete(TASK.key(first))  # what Redis's own expiry does when no worker swept for an hour
    assert indexes_holding(redis, first) != []
    assert store.purge_expired(now=time.time() + 3600) == 2
    assert indexes_holding(redis, first) == [] and indexes_holding(redis, second) == []
    assert api.get("/tasks", query_string={"tag": "retained"}).json["count"] == 0


def test_deleted_task_leaves_the_sweep_list(api: Api, store: Store, redis: Redis, instance: dict[str, Any]) -> None:
    (task_id,) = new_tasks(api)
    store.abort_queued(task_id, "cancelled by test")
    assert redis.zscore(FINISHED_KEY, task_id) is not None
    assert api.delete(f"/tasks/{task_id}").status_code == 204
    assert redis.zscore(FINISHED_KEY, task_id) is None


def test_setting_reads_fractions_of_days() -> None:
    settings = Settings.from_env({"WSEXEC_RETENTION_DAYS": "0.5"})
    assert settings.retention_seconds == 43200 and Settings().retention_seconds == 30 * 86400
