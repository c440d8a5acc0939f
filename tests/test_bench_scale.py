"""`make bench-scale` runs end to end at tiny sizes and writes the result file the issue's table is read from.

The bench starts its own redis-server and gunicorn (loopback, a temporary directory); this checks the file's shape
and that every figure was measured, never a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from redis import Redis

from bench import scale_bulk, scale_data
from bench.scale_probe import FILTERS, combinations
from wsexec.store import Store, TaskState
from wsexec.store.records import TASK

ROOT = Path(__file__).resolve().parent.parent
SIZES = (60, 150)


def test_bench_scale_writes_every_case_at_every_size(tmp_path: Path) -> None:
    output = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--sizes", ",".join(map(str, SIZES)), "--instances", "20",
         "--reps", "2", "--posts", "2", "--arrays", "2", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["instances"] == 20
    assert [entry["size"] for entry in result["sizes"]] == list(SIZES)
    lists = 2 ** len(FILTERS)
    assert len(combinations()) == lists
    expected = lists + 4  # the last page, GET one task, POST one, POST an array of 100
    for entry in result["sizes"]:
        assert entry["stored"] >= entry["size"]
        assert entry["memory"]["bytes_per_task"] > 0
        assert len(entry["rows"]) == expected
        for row in entry["rows"]:
            assert row["calls"] >= 2 and row["median_ms"] > 0, row
            assert row["min_ms"] <= row["median_ms"] <= row["max_ms"], row
            assert row["redis_commands_per_call"] > 0, row  # every call reaches Redis
        posts = {row["case"]: row for row in entry["rows"] if row["case"].startswith("POST")}
        assert set(posts) == {"POST one task", "POST array of 100"}
        assert all("redis_bytes_per_task" in row for row in posts.values())
    assert len(result["ratios"]) == expected
    assert {r["case"] for r in result["ratios"]} == {row["case"] for row in result["sizes"][0]["rows"]}
    assert set(result["goals"]) >= {"ratios_met", "redis_calls_met", "bytes_met"}
    assert "GET one task" in done.stdout  # the printed table


def _footprints(redis: Redis, task_ids: list[int]) -> list[dict[str, Any]]:
    """What each stored task is in Redis, its own values left out: its hash's fields and encoding, its expiry, the
    indexes and zsets it is in (with its score where that is not its id), the other keys named after it."""
    zsets: dict[int, dict[str, Any]] = {task_id: {} for task_id in task_ids}
    for key in redis.scan_iter(match=TASK.index_prefix + "*", count=1000):
        if redis.type(key) == b"zset":
            for member, score in redis.zrange(key, 0, -1, withscores=True):
                zsets.setdefault(int(member), {})[key.decode()] = score == int(member) or score
    found = []
    for task_id in task_ids:
        key = TASK.key(task_id)
        raw = redis.hgetall(key)
        found.append({"fields": {k: v for k, v in raw.items() if k not in OWN_VALUES},
                      "own": sorted(k for k in raw if k in OWN_VALUES),
                      "encoding": redis.object("encoding", key), "expires": redis.ttl(key) > 0, "zsets": zsets[task_id],
                      "sub_keys": sorted(k.decode().split(":", 3)[-1] for k in redis.scan_iter(match=f"{key}:*"))})
    return found


OWN_VALUES = {b"id", b"job", b"start", b"claim", b"created_at", b"end"}  # differ from one task to the next


def test_bulk_tasks_are_stored_as_the_real_scripts_store_them(store: Store) -> None:
    """The bench's bulk writer (1M tasks in minutes) against the real path (POST's CREATE_TASKS, a worker's claim and
    finish) for the same records and outcomes: the same fields, indexes, composite indexes, expiry and sub-keys."""
    fleet = scale_data.declare_instances(store, 20)
    maker = scale_data.TaskMaker(fleet)
    posts = maker.posts(200)
    records = [record for post in posts for record in post]
    now = time.time()
    outcomes = [maker.outcome(now) for _ in records]
    assert {o["state"] for o in outcomes} == {TaskState.DONE, TaskState.ABORT}  # both kinds of end are compared
    real = scale_data._create(store, records, now)
    scale_data.finish(store, real, outcomes)
    bulk = scale_bulk.write(store, posts, outcomes, now)
    redis = store.tasks.records.redis
    for real_id, bulk_id, expected, found in zip(real, bulk, _footprints(redis, real), _footprints(redis, bulk),
                                                 strict=True):
        assert found == expected, (real_id, bulk_id)
    assert store.get_task(bulk[-1])["state"] == outcomes[-1]["state"]
    combined = store.list_tasks({"tag": records[0]["tag"]}, 1, 100)[1]  # both found by the lists
    assert {t["id"] for t in combined} >= {real[0], bulk[0]}
