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
                                       allowed=[TaskState.INIT], lease_op="hold:60:w")
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


def old_layout(admin: Redis) -> None:
    """The data as the version before the composite indexes wrote it: those indexes and the layout mark gone."""
    for key in admin.scan_iter(match=keys.index("task", "state+*", "*"), count=1000):
        admin.delete(key)
    admin.delete(keys.SCHEMA)


def test_data_of_the_older_layout_lists_right_before_and_after_a_worker_upgrades_it(
        api: Api, store: Store, redis: Redis, redis_server: Any, workers: WorkerProcesses) -> None:
    make_tasks(api, store)
    tasks = every_task(store, redis)
    admin = Redis.from_url(redis_server.url)
    old_layout(admin)
    upgraded = Store(redis)  # a process of the new version meeting old data: intersections until it is upgraded
    assert not upgraded.layout.current()
    assert upgraded.list_tasks({"state": "INIT", "tag": "web"}, 1, 100)[0] == sum(
        t["state"] == "INIT" and t["tag"] == "web" for t in tasks)
    before = api.client.application.extensions["wsexec_store"]  # the web app's: the same answers, old indexes
    assert not before.layout.current()
    assert check_every_combination(api, tasks) > 400
    workers.start(1)  # its start upgrades the layout
    wait_for(lambda: admin.get(keys.SCHEMA) == b"2", timeout=20)
    assert admin.exists(keys.index("task", "state+tag", f"{tasks[0]['state']}:{tasks[0]['tag']}"))
    assert before.layout.current()
    assert check_every_combination(api, every_task(store, redis)) > 400
