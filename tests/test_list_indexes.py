"""Every filter combination of GET /tasks answers what a brute-force filter over all tasks does, through every kind
of change (create, fan-out, start, end, cancel, rename, delete, retention), in the current layout and on data an
older version wrote (before and after a worker's start upgrades it)."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import pytest
from redis import Redis

from tests.helpers import Api, WorkerProcesses, wait_for
from wsexec import jobs
from wsexec.store import Store, TaskState, keys
from wsexec.store.records import RUNNING_BY, UNION_ONLY
from wsexec.store.scripts import LAYOUT

FILTERS = ("state", "instance", "tag", "name", "batch", "kind", "schedule")


def listed(api: Api, query: dict[str, Any]) -> tuple[int, list[int]]:
    response = api.get("/tasks", query_string={**query, "page_size": 100})
    assert response.status_code == 200, response.json
    return response.json["count"], [task["id"] for task in response.json["results"]]


def make_tasks(api: Api, store: Store) -> None:
    """About 300 tasks in every state, over 3 instances, tags, names, batches, kinds and schedules."""
    rng = random.Random(15)
    instances = [api.created("/instances", {"ip": f"127.0.0.{i + 2}", "tag": "t", "user": "u"})["id"]
                 for i in range(3)]

    def record(batch: str | None = None, instance: int | None = None) -> dict[str, Any]:
        found = {"kind": rng.choice(["script", "script", "upload", "fetch"]), "name": rng.choice(["a", "b", "c"]),
                 "tag": rng.choice(["web", "db", "x:y"]), "instance": instance or rng.choice(instances),
                 "script": "true", "user": "u", "timeout": 60, "created_by": rng.choice(["admin", "operator"])}
        if rng.random() < 0.3:
            found["schedule"] = rng.choice([1, 2])
        return found | ({"batch": batch} if batch else {})

    def create(records: list[dict[str, Any]]) -> list[int]:
        tasks, _ = store.create_tasks(records, time.time(), jobs.JOB_PREFIX, 50)
        return [task["id"] for task in tasks]

    def move(ids: list[int]) -> None:
        for task_id in ids:
            step = rng.random()
            if step < 0.6:
                store.tasks.transition(task_id, {"state": TaskState.CURRENT, "start": time.time()},
                                       allowed=[TaskState.INIT], lease_op="hold:600:w")  # not reaped midway
                if step < 0.45:
                    store.finish(task_id, rng.choice([TaskState.DONE, TaskState.ABORT]), rc=0)
            elif step < 0.7:
                store.abort_queued(task_id, "cancelled")
            if rng.random() < 0.15:
                store.update_task(task_id, {"name": rng.choice(["a", "d"]), "tag": rng.choice(["web", "new"])})

    old = create([record() for _ in range(60)])
    move(old)
    store.retention.purge_expired(now=time.time() + store.retention.retention_seconds + 1)  # the finished go
    ids = create([record() for _ in range(150)])
    ids += create([record(batch=f"b{n}", instance=i) for n in range(4) for i in instances])
    move(ids)
    for task_id in rng.sample(ids, 20):
        if store.get_task(task_id)["state"] in ("DONE", "ABORT"):
            store.delete_task(task_id)


def every_task(store: Store, redis: Redis) -> list[dict[str, Any]]:
    counter = int(redis.get(keys.counter("task")) or 0)
    return store.get_tasks(range(1, counter + 1))


def check_every_combination(api: Api, tasks: list[dict[str, Any]]) -> int:
    """Each combination of filters, with values that tasks have (and one that none has): as brute force finds."""
    rng = random.Random(10)
    checked = 0
    for size in range(1, len(FILTERS) + 1):
        for fields in itertools.combinations(FILTERS, size):
            having = [t for t in tasks if all(f in t for f in fields)]
            assert having, fields  # make_tasks makes every combination
            unknown = [] if fields[-1] in ("state", "kind") else [{**having[0], fields[-1]: 999}]  # those: 422
            for sample in [*rng.sample(having, min(3, len(having))), *unknown]:
                query = {f: sample[f] for f in fields}
                expected = sorted((t["id"] for t in tasks if all(str(t.get(f)) == str(v) for f, v in query.items())),
                                  reverse=True)
                assert listed(api, query) == (len(expected), expected[:100]), query
                checked += 1
    return checked


def test_every_filter_combination_answers_as_brute_force(api: Api, store: Store, redis: Redis) -> None:
    make_tasks(api, store)
    assert store.layout.current()
    tasks = every_task(store, redis)
    assert {t["state"] for t in tasks} == {"INIT", "CURRENT", "DONE", "ABORT"}
    assert check_every_combination(api, tasks) > 400


@pytest.mark.parametrize("field", [f for f in FILTERS if f != "state"])
def test_state_and_one_filter_read_one_index(api: Api, store: Store, redis_server: Any, field: str) -> None:
    """No intersection of whole indexes: one small composite index answers (the scale run's O(N) lists)."""
    make_tasks(api, store)
    sample = next(t for t in every_task(store, Redis.from_url(redis_server.url)) if field in t)
    admin = Redis.from_url(redis_server.url)
    admin.config_resetstat()
    listed(api, {"state": sample["state"], field: sample[field]})
    stats = admin.info("commandstats")
    assert "cmdstat_zinterstore" not in stats and "cmdstat_zinter" not in stats
    assert stats["cmdstat_zrevrange"]["calls"] == 1


def old_layout(admin: Redis, version: int) -> None:
    """The data as an older version wrote it: indexes of their own for tag, name, kind and created_by, none of the
    running tasks by user, no composite indexes either in layout 1, and its layout mark."""
    tasks = [admin.hgetall(key) for key in admin.scan_iter(match=keys.record("task", "*"), count=1000)
             if key.decode().rsplit(":", 1)[-1].isdigit()]  # not the sub-keys, nor the counter
    for task in tasks:
        for field in (*UNION_ONLY, "created_by"):
            admin.zadd(keys.index("task", field, task[field.encode()].decode()), {task[b"id"]: int(task[b"id"])})
    dropped = [keys.index("task", RUNNING_BY, "*"), *([keys.index("task", "state+*", "*")] if version < 2 else [])]
    for pattern in dropped:
        for key in admin.scan_iter(match=pattern, count=1000):
            admin.delete(key)
    admin.set(keys.SCHEMA, version) if version > 1 else admin.delete(keys.SCHEMA)


def running_by(tasks: list[dict[str, Any]], user: str) -> int:
    return sum(t["created_by"] == user and t["state"] in ("INIT", "CURRENT") for t in tasks)


@pytest.mark.parametrize("version", [1, 2])
def test_data_of_an_older_layout_lists_right_before_and_after_a_worker_upgrades_it(
        api: Api, store: Store, redis: Redis, redis_server: Any, workers: WorkerProcesses, version: int) -> None:
    make_tasks(api, store)
    admin = Redis.from_url(redis_server.url)
    old_layout(admin, version)
    upgraded = Store(redis)  # a process of the new version meeting old data: the old indexes until it is upgraded
    assert upgraded.layout.version() == version
    instance = every_task(store, redis)[0]["instance"]
    meanwhile, _ = upgraded.create_tasks([{"instance": instance, "tag": "web", "name": "z", "kind": "script",
                                           "script": "true", "user": "u", "timeout": 60, "created_by": "admin"}],
                                         time.time(), jobs.JOB_PREFIX, 50)  # stored before the upgrade: listed too
    tasks = every_task(store, redis)
    assert upgraded.list_tasks({"state": "INIT", "tag": "web"}, 1, 100)[0] == sum(
        t["state"] == "INIT" and t["tag"] == "web" for t in tasks)
    assert upgraded.list_tasks({"name": "z"}, 1, 100)[1][0]["id"] == meanwhile[0]["id"]
    assert upgraded.tasks.active_count("admin") == running_by(tasks, "admin")
    before = api.client.application.extensions["wsexec_store"]  # the web app's: the same answers, old indexes
    assert not before.layout.current()
    assert check_every_combination(api, tasks) > 400
    workers.start(1)  # its start upgrades the layout
    wait_for(lambda: admin.get(keys.SCHEMA) == str(LAYOUT).encode(), timeout=20)
    assert admin.exists(keys.index("task", "state+tag", f"{tasks[0]['state']}:{tasks[0]['tag']}"))
    wait_for(lambda: not any(admin.scan_iter(match=keys.index("task", "tag", "*"))), timeout=20)  # the old ones go
    assert not any(admin.scan_iter(match=keys.index("task", "created_by", "*")))
    assert before.layout.current()
    tasks = every_task(store, redis)
    assert check_every_combination(api, tasks) > 400
    assert before.tasks.active_count("admin") == running_by(tasks, "admin") > 0
