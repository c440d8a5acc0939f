"""The scale benchmark's data: 1,000 instances and N finished tasks, written through the store's own scripts.

Tasks go in with CREATE_TASKS (the script POST /tasks uses) in pipelined chunks, then end DONE or ABORT with
TRANSITION (the script a worker's finish uses), so every hash, index, event and expiry is the real layout, whatever
the store does; only the HTTP, RQ and SSH around them are skipped. Values repeat the way a fleet's do: a task's
instance, tag, name and author drawn from a fixed seed, some in fan-out batches, some made by schedules.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from wsexec.jobs import JOB_PREFIX
from wsexec.store import Store, TaskState, keys

INSTANCES = 1000
TAGS = 100  # task tags (what a caller labels a run with)
NAMES = 50
AUTHORS = ("bench", "alice", "bob", "cron-nightly", "deploy")
SCHEDULES = 20
BATCH_SHARE, BATCH_SIZE = 0.3, 10  # a third of the tasks come from fan-outs of 10 instances
SCHEDULE_SHARE = 0.1
ABORT_SHARE = 0.05
KINDS = (("script", 0.98), ("fetch", 0.01), ("upload", 0.01))
SCRIPT = "df -P / && uptime && cat /etc/os-release | head -n 3"
CHUNK = 500  # tasks per CREATE_TASKS call
PIPELINE = 20  # calls per round trip


@dataclass
class Fleet:
    """What is stored: the instances' ids, how many tasks, and the newest task that has every filter field."""

    instances: list[int]
    tasks: int = 0
    probe: dict[str, Any] = field(default_factory=dict)


def declare_instances(store: Store, count: int = INSTANCES) -> Fleet:
    """`count` ACTIVE instances on loopback addresses (never contacted: no worker runs), 10 tags of them."""
    records = [{"ip": f"127.0.{10 + n // 250}.{1 + n % 250}", "port": 22, "tag": f"fleet-{n % 10}",
                "state": "ACTIVE", "user": "wsexec-bench"} for n in range(count)]
    ids: list[int] = []
    for first in range(0, count, CHUNK):
        ids += store.instances.records.create(records[first:first + CHUNK])
    return Fleet(ids)


class TaskMaker:
    """Records like POST /tasks stores them (wsexec.tasks.expand), drawn from one seed so runs compare."""

    def __init__(self, fleet: Fleet, seed: int = 15) -> None:
        self.fleet, self.rng = fleet, random.Random(seed)
        self.kinds, self.kind_weights = zip(*KINDS, strict=True)

    def batch(self, scheduled_fanout: bool = False) -> list[dict[str, Any]]:
        """One POST's worth: a single task, or a fan-out of BATCH_SIZE with a batch id."""
        rng = self.rng
        fanout = rng.random() < BATCH_SHARE or scheduled_fanout
        base: dict[str, Any] = {"name": f"job-{rng.randrange(NAMES)}", "tag": f"tag-{rng.randrange(TAGS)}",
                                "script": SCRIPT, "user": "wsexec-bench", "timeout": 3600,
                                "kind": rng.choices(self.kinds, self.kind_weights)[0]}
        if rng.random() < SCHEDULE_SHARE or scheduled_fanout:
            schedule = 1 + rng.randrange(SCHEDULES)
            base |= {"schedule": schedule, "fire_time": int(time.time()), "created_by": f"schedule:{schedule}"}
        else:
            base["created_by"] = rng.choice(AUTHORS)
        if not fanout:
            return [{**base, "instance": rng.choice(self.fleet.instances)}]
        first = rng.randrange(len(self.fleet.instances) - BATCH_SIZE)
        batch = uuid.uuid4().hex[:12]
        return [{**base, "instance": instance, "batch": batch}
                for instance in self.fleet.instances[first:first + BATCH_SIZE]]

    def records(self, count: int) -> list[dict[str, Any]]:
        """The first is always a schedule's fan-out, so every size has a probe (a task with every filter field)."""
        found: list[dict[str, Any]] = self.batch(scheduled_fanout=True)
        while len(found) < count:
            found += self.batch()
        return found[:count]


def _create(store: Store, records: list[dict[str, Any]], now: float) -> list[int]:
    """CREATE_TASKS over the records, PIPELINE chunks a round trip; the new ids in order."""
    ids: list[int] = []
    for first in range(0, len(records), CHUNK * PIPELINE):
        with store.tasks.records.redis.pipeline(transaction=False) as pipe:
            for start in range(first, min(first + CHUNK * PIPELINE, len(records)), CHUNK):
                _, create_keys, args = store.tasks.create_call(records[start:start + CHUNK], now, JOB_PREFIX, 50)
                store.tasks._create(keys=create_keys, args=args, client=pipe)
            for outcome in pipe.execute():
                if outcome[0] != b"ok":
                    raise RuntimeError(f"CREATE_TASKS refused the bench's tasks: {outcome!r}")
                ids += [int(i) for i in outcome[1]]
    return ids


def finish(store: Store, ids: list[int], rng: random.Random, now: float) -> None:
    """End them as a worker does (TRANSITION, release): DONE with rc 0 or 1, or ABORT unreachable; then as they are a
    minute later, when their notify stream (kept for followers 60 s after the end) has expired: what nearly every
    stored task is, so the bytes per task measured are those of tasks kept, not of tasks just ended."""
    for first in range(0, len(ids), CHUNK * 4):
        with store.tasks.records.redis.pipeline(transaction=False) as pipe:
            for task_id in ids[first:first + CHUNK * 4]:
                changes: dict[str, Any] = {"start": now, "end": now + rng.random(), "worker": "bench-host.4242",
                                           "claim": uuid.uuid4().hex}
                if rng.random() < ABORT_SHARE:
                    changes |= {"state": TaskState.ABORT, "error": "unreachable: [Errno 111] Connection refused"}
                else:
                    changes |= {"state": TaskState.DONE, "rc": int(rng.random() < 0.1)}
                store.tasks.transition(task_id, changes, [TaskState.INIT, TaskState.CURRENT], "release", pipe)
                pipe.delete(keys.notify(task_id))
            pipe.execute()


def grow(store: Store, fleet: Fleet, maker: TaskMaker, size: int) -> float:
    """Add finished tasks until `size` are stored; the seconds it took. The probe: the newest with every field."""
    started = time.perf_counter()
    now = time.time()
    while fleet.tasks < size:
        records = maker.records(min(100_000, size - fleet.tasks))
        ids = _create(store, records, now)
        finish(store, ids, maker.rng, now)
        fleet.tasks += len(ids)
        for task_id, record in zip(reversed(ids), reversed(records), strict=True):
            if "batch" in record and "schedule" in record:
                fleet.probe = store.get_task(task_id)
                break
    return time.perf_counter() - started


def finish_open(store: Store) -> int:
    """End the tasks the benchmark's own POSTs left INIT (no worker runs), so they count as stored tasks."""
    redis: Redis = store.tasks.records.redis
    ids = [int(i) for i in redis.zrange(store.tasks.records.kind.index_key("state", TaskState.INIT), 0, -1)]
    finish(store, ids, random.Random(0), time.time())
    return len(ids)
