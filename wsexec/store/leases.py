"""Leases: a worker holds the tasks it runs for a few seconds at a time, so the tasks of a dead worker end ABORT."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.store import keys
from wsexec.store.records import TASK, as_ints
from wsexec.store.states import RUNNING_STATES, TaskState
from wsexec.store.tasks import Tasks


class Leases:
    """Hold, claim, renew and reap: what a worker's tasks go through besides their own run."""

    def __init__(self, redis: Redis, tasks: Tasks) -> None:
        self.redis, self.tasks = redis, tasks

    def hold(self, task_ids: list[int], worker: str, lease_seconds: int) -> list[int]:
        """Lease the still-INIT tasks of a job to this worker (one round trip), so they end ABORT if it dies."""
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                self.tasks.transition(task_id, {"worker": worker}, [TaskState.INIT],
                                      f"hold:{lease_seconds}:{worker}", pipe)
            outcomes = pipe.execute()
        return [task_id for task_id, (status, _) in zip(task_ids, outcomes, strict=True) if status == b"ok"]

    def claim(self, task_id: int, worker: str, lease_seconds: int) -> dict[str, Any] | None:
        """INIT -> CURRENT; None if it was cancelled or another worker took it (a task never runs twice)."""
        changes = {"state": TaskState.CURRENT, "start": time.time(), "worker": worker}
        with self.redis.pipeline() as pipe:  # the claim and the claimed record in one round trip
            self.tasks.transition(task_id, changes, [TaskState.INIT], f"hold:{lease_seconds}:{worker}", pipe)
            pipe.hgetall(TASK.key(task_id))
            (status, _), raw = pipe.execute()
        return TASK.decode(raw) if status == b"ok" else None

    def renew(self, task_ids: Iterable[int], worker: str, lease_seconds: int, pipeline: Pipeline | None = None) -> None:
        pipe = pipeline if pipeline is not None else self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(keys.lease(task_id), worker, ex=lease_seconds)
        if pipeline is None:
            pipe.execute()

    def lost(self) -> list[int]:
        """Held tasks whose lease has expired: their worker is gone, and what it ran on the host may be left."""
        held = as_ints(self.redis.zrange(keys.HELD, 0, -1))
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in held:
                pipe.exists(keys.lease(task_id))
            leased = pipe.execute()
        return [task_id for task_id, alive in zip(held, leased, strict=True) if not alive]

    def reap_lost(self, task_ids: Iterable[int] | None = None, errors: Mapping[int, str] | None = None) -> list[int]:
        """ABORT held tasks whose worker stopped renewing their lease (killed, machine lost); all held by default.
        The error is "worker lost", or what `errors` says for the task (how its remote process was dealt with)."""
        if task_ids is None:
            task_ids = as_ints(self.redis.zrange(keys.HELD, 0, -1))
        reaped = []
        for task_id in task_ids:
            error = (errors or {}).get(task_id, "worker lost")
            changes = {"state": TaskState.ABORT, "error": error, "end": time.time()}
            status, _ = self.tasks.transition(task_id, changes, allowed=RUNNING_STATES, lease_op="reap")
            if status == "ok":
                reaped.append(task_id)
            elif status == "state":
                self.redis.zrem(keys.HELD, task_id)  # finished meanwhile: nothing to watch
        return reaped
