"""The scale benchmark's data: 1,000 instances and N finished tasks, written through the store's own scripts.

The first tasks go in with CREATE_TASKS (the script POST /tasks uses) in pipelined chunks, are claimed as a worker
claims them (Leases.begin) and end DONE or ABORT with TRANSITION (the script a worker's finish uses), so every hash,
index, event and expiry is the real layout, whatever the store does; only the HTTP, RQ and SSH around them are
skipped. The rest, written in bulk the same way (bench/scale_bulk.py, proved equal by tests/test_bench_scale.py).
Values repeat the way a fleet's do: a task's instance, tag, name and author drawn from a fixed seed, some in fan-out
batches, some made by schedules.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from bench import scale_bulk
from wsexec.jobs import JOB_PREFIX
from wsexec.store import Store, TaskState, keys
from wsexec.store.metrics import run_time_args
from wsexec.store.states import RUNNING_STATES

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
REAL_TASKS = 2000  # the first tasks stored the real way; the others in bulk (scale_bulk.py)
LEASE_SECONDS = 10  # a worker's default (wsexec.config)


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

    def posts(self, count: int) -> list[list[dict[str, Any]]]:
        """POSTs' worth of records, `count` in all; the first is always a schedule's fan-out, so every size has a
        probe (a task with every filter field)."""
        found = [self.batch(scheduled_fanout=True)]
        total = len(found[0])
        while total < count:
            found.append(self.batch())
            total += len(found[-1])
        found[-1] = found[-1][:len(found[-1]) - (total - count)]
        return [post for post in found if post]

    def outcome(self, now: float) -> dict[str, Any]:
        """A finish as a worker writes it (workers/job.py): DONE with rc 0 or 1, or ABORT unreachable."""
        rng = self.rng
        fields: dict[str, Any] = {"end": now + rng.random(), "stdout_dropped": 0, "stderr_dropped": 0}
        if rng.random() < ABORT_SHARE:
            return {**fields, "state": TaskState.ABORT, "error": "unreachable: [Errno 111] Connection refused",
                    "rc": None}
        return {**fields, "state": TaskState.DONE, "rc": int(rng.random() < 0.1)}


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


def finish(store: Store, ids: list[int], outcomes: list[dict[str, Any]]) -> None:
    """Claim and end them as a worker does (Leases.begin, then Tasks.finish's TRANSITION with its run time); then as
    they are a minute later, when their notify stream (kept for followers 60 s after the end) has expired: what nearly
    every stored task is, so the bytes per task measured are those of tasks kept, not of tasks just ended."""
    for first in range(0, len(ids), CHUNK):
        chunk = ids[first:first + CHUNK]
        store.leases.begin(chunk, [], scale_bulk.WORKER, LEASE_SECONDS, scale_bulk.HOLDER)
        with store.tasks.records.redis.pipeline(transaction=False) as pipe:
            for task_id, outcome in zip(chunk, outcomes[first:first + CHUNK], strict=True):
                run_time = run_time_args(outcome["state"], 0.5)
                store.tasks.transition(task_id, outcome, RUNNING_STATES, "release", pipe, run_time)
                pipe.delete(keys.notify(task_id))
            pipe.execute()


def grow(store: Store, fleet: Fleet, maker: TaskMaker, size: int) -> float:
    """Add finished tasks until `size` are stored; the seconds it took. The first REAL_TASKS go the real way (the
    scripts of POST /tasks and of a worker), the others the bulk way (bench/scale_bulk.py: the same data, faster).
    The probe: the newest with every filter field."""
    started = time.perf_counter()
    now = time.time()
    while fleet.tasks < size:
        real = fleet.tasks < REAL_TASKS
        posts = maker.posts(min(REAL_TASKS - fleet.tasks if real else 100_000, size - fleet.tasks))
        records = [record for post in posts for record in post]
        outcomes = [maker.outcome(now) for _ in records]
        if real:
            ids = _create(store, records, now)
            finish(store, ids, outcomes)
        else:
            ids = scale_bulk.write(store, posts, outcomes, now)
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
    maker = TaskMaker(Fleet([]), seed=0)
    now = time.time()
    finish(store, ids, [maker.outcome(now) for _ in ids])
    return len(ids)
