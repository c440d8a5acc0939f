"""Tasks: creation (all or none), reads, renames, cancel, delete and the state transitions with their lease."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline

from wsexec.exceptions import Conflict, Unprocessable
from wsexec.store import keys, scripts
from wsexec.store.records import INSTANCE, TASK, Records
from wsexec.store.states import FINISHED_STATES, RUNNING_STATES, STREAMS, TaskState

EXPIRY_GRACE_SECONDS = 3600  # Redis's own expiry of a finished task: a backstop, this long after the sweep's turn


class Tasks:
    """The task records and their lifecycle: INIT -> CURRENT -> DONE/ABORT, never back."""

    def __init__(self, redis: Redis, retention_seconds: float) -> None:
        self.records = Records(redis, TASK)
        self.expire_seconds = math.ceil(retention_seconds) + EXPIRY_GRACE_SECONDS
        self._create = redis.register_script(scripts.CREATE_TASKS)
        self._transition = redis.register_script(scripts.TRANSITION)

    def create(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store tasks (state INIT) atomically, refusing all of them if one instance is not ACTIVE."""
        now = time.time()
        records = [{**t, "state": TaskState.INIT, "created_at": now} for t in tasks]
        outcome = self._create(keys=[TASK.counter_key], args=[*self.records.create_args(records), INSTANCE.key("")])
        if outcome[0] == b"instance":
            index, reason = outcome[1], outcome[2].decode()
            where = f"item {index}: " if len(records) > 1 else ""
            instance = records[index]["instance"]
            if reason == "missing":
                raise Unprocessable(f"{where}instance {instance} does not exist", {"instance": [f"unknown {instance}"]})
            raise Conflict(f"{where}instance {instance} is {reason}, not ACTIVE")
        return self.records.get_many(outcome[1])

    def get(self, task_id: int) -> dict[str, Any]:
        return self.records.get(task_id)

    def exists(self, task_id: int) -> bool:
        return self.records.exists(task_id)

    def get_many(self, task_ids: Iterable[int]) -> list[dict[str, Any]]:
        return self.records.get_many(task_ids)

    def page(self, filters: dict[str, Any], page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        return self.records.page(filters, page, page_size)

    def batch(self, batch: str) -> list[dict[str, Any]]:
        """The tasks of a batch (created together by a fan-out), oldest first; empty if none is left."""
        return self.records.get_many(self.records.ids_by("batch", batch))

    def update(self, task_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        self.records.update(task_id, changes)
        return self.get(task_id)

    def set_jobs(self, jobs: dict[int, str], pipeline: Pipeline | None = None) -> None:
        """Record which RQ job runs each task (dependencies and cancel look it up)."""
        pipe = pipeline if pipeline is not None else self.records.redis.pipeline(transaction=False)
        for task_id, job in jobs.items():
            pipe.hset(TASK.key(task_id), "job", job)
        if pipeline is None:
            pipe.execute()

    def delete(self, task_id: int) -> None:
        status, state = self.records.delete(task_id, allowed=FINISHED_STATES)
        if status == "state":
            raise Conflict(f"task {task_id} is {state}; only DONE or ABORT tasks can be deleted")
        self.records.redis.zrem(keys.FINISHED, task_id)

    def transition(self, task_id: int, changes: dict[str, Any], allowed: Iterable[TaskState] = (),
                   lease_op: str = "", pipeline: Pipeline | None = None) -> tuple[str, str]:
        """Update a task and its lease at once (see scripts.TRANSITION); in a pipeline, execute() has the outcome."""
        outcome = self._transition(
            keys=[TASK.key(task_id), keys.lease(task_id), keys.HELD, keys.FINISHED,
                  *(keys.output(task_id, s) for s in STREAMS)],
            args=[*self.records.update_args(task_id, changes, allowed), lease_op, self.expire_seconds],
            client=pipeline,
        )
        return ("", "") if pipeline is not None else self.records.outcome(task_id, outcome)

    def abort_queued(self, task_id: int, error: str) -> bool:
        """INIT -> ABORT; False when the task has already left INIT."""
        changes = {"state": TaskState.ABORT, "error": error, "end": time.time()}
        status, _ = self.transition(task_id, changes, allowed=[TaskState.INIT], lease_op="release")
        return status == "ok"

    def request_cancel(self, task_id: int, by: str) -> str:
        """Abort a queued task at once, or flag a running one for its worker; returns the state found."""
        if self.abort_queued(task_id, f"cancelled by {by}"):
            return TaskState.INIT.value
        status, state = self.records.update(task_id, {"cancel_requested": by}, allowed=[TaskState.CURRENT])
        if status != "ok":
            raise Conflict(f"task {task_id} is already {state}")
        return state

    def cancel_requested_by(self, task_id: int) -> str | None:
        value = cast(bytes | None, self.records.redis.hget(TASK.key(task_id), "cancel_requested"))
        return value.decode() if value else None

    def finish(self, task_id: int, state: TaskState, **fields: Any) -> bool:
        """INIT/CURRENT -> DONE/ABORT with the results; False if it had already finished (e.g. reaped)."""
        changes = {"state": state, "end": time.time(), **fields}
        status, _ = self.transition(task_id, changes, allowed=RUNNING_STATES, lease_op="release")
        return status == "ok"
