"""Tasks: creation (all or none), reads, renames, cancel, delete and the state transitions with their lease."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from wsexec.exceptions import Conflict, Unprocessable
from wsexec.store import keys, scripts
from wsexec.store.layout import Layout
from wsexec.store.metrics import run_time_args
from wsexec.store.records import INSTANCE, RUNNING_BY, TASK, TASK_LEGACY_INDEXED, Records, as_ints, task_parts
from wsexec.store.scripts import LAYOUT
from wsexec.store.states import FINISHED_STATES, RUNNING_STATES, STREAMS, TaskState

EXPIRY_GRACE_SECONDS = 3600  # Redis's own expiry of a finished task: a backstop, this long after the sweep's turn


@dataclass
class Created:
    """New tasks as stored, the jobs of unfinished dependencies per task that has some, and the events stream's id
    of their last 'created' event: their 'finished' events come after it."""

    tasks: list[dict[str, Any]]
    after: dict[int, list[str]]
    position: str


class Tasks:
    """The task records and their lifecycle: INIT -> CURRENT -> DONE/ABORT, never back."""

    def __init__(self, redis: Redis, retention_seconds: float, events_window: int) -> None:
        self.layout = Layout(redis)
        self.records = Records(redis, TASK, lambda: TASK.indexed if self.layout.current() else TASK_LEGACY_INDEXED)
        self.expire_seconds = math.ceil(retention_seconds) + EXPIRY_GRACE_SECONDS
        self.events_window = events_window
        self._create = redis.register_script(scripts.CREATE_TASKS)
        self._transition = redis.register_script(scripts.TRANSITION)
        self._dependencies = redis.register_script(scripts.DEPENDENCIES)

    def active_count(self, created_by: str) -> int:
        """How many of this user's tasks are INIT or CURRENT, from the indexes the state changes keep (no counter)."""
        return self._active("created_by", created_by)

    def batch_active(self, batch: str) -> int:
        """How many of a batch's tasks are INIT or CURRENT (without reading them)."""
        return self._active("batch", batch)

    def _active(self, field: str, value: str) -> int:
        with self.records.redis.pipeline(transaction=False) as pipe:
            self.queue_active(pipe, field, value)
            return sum(int(count) for count in pipe.execute())

    def queue_active(self, pipe: Pipeline, field: str, value: str) -> int:
        """The counts whose sum is _active(), on a pipeline; how many replies they are. One index of the running
        tasks, or (older layouts) intersections Redis walks from the smaller side: the tasks running, not all of the
        user's or batch's."""
        kind, current = self.records.kind, self.layout.current()
        if current and field == "created_by":
            pipe.zcard(kind.index_key(RUNNING_BY, value))
            return 1
        for state in RUNNING_STATES:
            if current:
                pipe.zcard(kind.index_key(f"state+{field}", f"{state.value}:{value}"))
            else:
                pipe.zintercard(2, [kind.index_key(field, value), kind.index_key("state", state)])
        return len(RUNNING_STATES)

    def create(self, tasks: list[dict[str, Any]], now: float, job_prefix: str, tasks_per_job: int
               ) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
        """Store tasks (state INIT, each with its RQ job's id) atomically, or none (see scripts.CREATE_TASKS).

        Also answers, per task that waits for some, the jobs of its dependencies that had not finished.
        """
        created = self.add(tasks, now, job_prefix, tasks_per_job)
        return created.tasks, created.after

    def add(self, tasks: list[dict[str, Any]], now: float, job_prefix: str, tasks_per_job: int) -> Created:
        """create() in one round trip, with the events' position for a wait on the new tasks."""
        records, create_keys, args = self.create_call(tasks, now, job_prefix, tasks_per_job)
        return self.created(records, self._create(keys=create_keys, args=args))

    def create_call(self, tasks: list[dict[str, Any]], now: float, job_prefix: str, tasks_per_job: int
                    ) -> tuple[list[dict[str, Any]], list[str], list[Any]]:
        """The records and CREATE_TASKS' KEYS and ARGV (which FIRE_SCHEDULE takes too)."""
        records = [{**t, "state": TaskState.INIT, "created_at": now} for t in tasks]
        run_after = json.dumps([[str(d) for d in t.get("run_after") or []] for t in tasks])
        return records, [TASK.counter_key, keys.EVENTS, keys.SCHEMA], [
            *self.records.create_args(records), INSTANCE.key(""), run_after, repr(now), tasks_per_job, job_prefix,
            self.events_window]

    def created(self, records: list[dict[str, Any]], outcome: list[Any]) -> Created:
        """CREATE_TASKS' answer: the stored tasks and the jobs they wait for, or its refusal raised.

        The tasks are what the script wrote (the records, their ids and jobs) decoded as a read would: not read back."""
        where = f"item {outcome[1]}: " if len(records) > 1 and outcome[0] != b"ok" else ""
        if outcome[0] == b"instance":
            index, reason = outcome[1], outcome[2].decode()
            instance = records[index]["instance"]
            if reason == "missing":
                raise Unprocessable(f"{where}instance {instance} does not exist", {"instance": [f"unknown {instance}"]})
            raise Conflict(f"{where}instance {instance} is {reason}, not ACTIVE")
        if outcome[0] == b"run_after":
            dependency = records[outcome[1]]["run_after"][outcome[2]]
            message = f"task {dependency} does not exist"
            detail = {"run_after": [message]}
            raise Unprocessable(f"{where}run_after: {message}", {str(outcome[1]): detail} if where else detail)
        _, ids, waits, jobs, position = outcome
        after = {int(i): wait.decode().split() for i, wait in zip(ids, waits, strict=True) if wait}
        stored = [TASK.decode({name.encode(): value.encode() for name, value in TASK.encode(
            {**record, "id": task_id, "job": job.decode()}).items() if value is not None})
            for record, task_id, job in zip(records, ids, jobs, strict=True)]
        return Created(stored, after, position.decode())

    def discard(self, task_ids: Iterable[int]) -> None:
        """Delete tasks that are still INIT, whose creation could not be completed (RQ refused their jobs).

        Best effort: if Redis refuses this too, the workers' reconciler ends them ABORT.
        """
        with contextlib.suppress(RedisError):
            for task_id in task_ids:
                self.records.delete(task_id, allowed=[TaskState.INIT])

    def stale_init(self, created_before: float, batch: int = 500) -> list[tuple[int, str | None]]:
        """The INIT tasks created before a time, oldest first, with their RQ job (None: none recorded); not those
        waiting for a slot of their instance (their job ended when they found none)."""
        redis, index = self.records.redis, TASK.index_key("state", TaskState.INIT)
        found: list[tuple[int, str | None]] = []
        start = 0
        while True:
            ids = as_ints(redis.zrange(index, start, start + batch - 1))
            with redis.pipeline(transaction=False) as pipe:
                for task_id in ids:
                    pipe.hmget(TASK.key(task_id), "created_at", "job", "waiting")
                fields = pipe.execute()
            for task_id, (created_at, job, waiting) in zip(ids, fields, strict=True):
                if created_at is None or waiting is not None:
                    continue  # deleted meanwhile, or waiting for a slot of its instance: woken by slots.py, not a job
                if float(created_at) >= created_before:
                    return found
                found.append((task_id, job.decode() if job else None))
            if len(ids) < batch:
                return found
            start += batch

    def get(self, task_id: int) -> dict[str, Any]:
        return self.records.get(task_id)

    def dependencies(self, job_keys: list[str], task_ids: Iterable[int], client: Redis | Pipeline | None = None
                     ) -> tuple[list[str | None], set[str]]:
        """In one round trip: the status in these hashes (RQ's jobs; None: no such job) and the jobs that these
        tasks still wait in or run in (INIT or CURRENT). A dependency's job that RQ no longer has and that is not
        among the latter ran to its end (RQ deletes a job once it succeeds), rather than not being queued yet."""
        task_keys = [TASK.key(task_id) for task_id in task_ids]
        statuses, tasks = self._dependencies(keys=[*job_keys, *task_keys], args=[len(job_keys)], client=client)
        unfinished = {job.decode() for state, job in tasks if state and job and state.decode() in RUNNING_STATES}
        return [status.decode() if status else None for status in statuses], unfinished

    def exists(self, task_id: int) -> bool:
        return self.records.exists(task_id)

    def get_many(self, task_ids: Iterable[int]) -> list[dict[str, Any]]:
        return self.records.get_many(task_ids)

    def page(self, filters: dict[str, Any], page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        version = self.layout.version()
        if version >= LAYOUT:
            return self.records.page_parts(task_parts(filters), page, page_size)
        return self.records.page(filters, page, page_size, composites=version >= 2)

    def batch(self, batch: str) -> list[dict[str, Any]]:
        """The tasks of a batch (created together by a fan-out), oldest first; empty if none is left."""
        return self.records.get_many(self.records.ids_by("batch", batch))

    def update(self, task_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        self.records.update(task_id, changes)
        return self.get(task_id)

    def delete(self, task_id: int) -> None:
        status, state = self.records.delete(task_id, allowed=FINISHED_STATES)
        if status == "state":
            raise Conflict(f"task {task_id} is {state}; only DONE or ABORT tasks can be deleted")
        self.records.redis.zrem(keys.FINISHED, task_id)

    def transition(self, task_id: int, changes: dict[str, Any], allowed: Iterable[TaskState] = (),
                   lease_op: str = "", pipeline: Pipeline | None = None, run_time: list[str] | None = None
                   ) -> tuple[str, str]:
        """Update a task and its lease at once (see scripts.TRANSITION); in a pipeline, execute() has the outcome.
        run_time: metrics.run_time_args(), counted if the transition is made.

        A task that ends loses its env's values (they may be secrets, and nothing reads them once it has run): its
        env_names stay; and its claim mark and holder, which only a held task needs (~80 bytes of each stored task)."""
        if changes.get("state") in FINISHED_STATES:
            changes = {"env": None, "claim": None, "holder": None, **changes}
        outcome = self._transition(
            keys=[TASK.key(task_id), keys.lease(task_id), keys.HELD, keys.FINISHED,
                  *(keys.output(task_id, s) for s in STREAMS), keys.EVENTS, keys.notify(task_id)],
            args=[*self.records.update_args(task_id, changes, allowed), lease_op, self.expire_seconds,
                  self.events_window, keys.upload(""), keys.SLOT_TEMPLATES, *(run_time or [])],
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

    def record_remote_pid(self, task_id: int, pid: int) -> None:
        """The running task's remote process group, so that whoever reaps it when its worker dies can kill it."""
        self.records.update(task_id, {"remote_pid": pid}, allowed=[TaskState.CURRENT])

    def record_temporary(self, task_id: int, path: str) -> None:
        """The running upload's temporary file on its host, so that whoever reaps it when its worker dies removes it."""
        self.records.update(task_id, {"temporary": path}, allowed=[TaskState.CURRENT])

    def cancel_requested_by(self, task_id: int) -> str | None:
        value = cast(bytes | None, self.records.redis.hget(TASK.key(task_id), "cancel_requested"))
        return value.decode() if value else None

    def finish(self, task_id: int, state: TaskState, started: float | None = None, **fields: Any) -> bool:
        """INIT/CURRENT -> DONE/ABORT with the results; False if it had already finished (e.g. reaped). With its
        start time, the run time is counted in the same step (metrics.Metrics.run_times)."""
        end = time.time()
        changes = {"state": state, "end": end, **fields}
        run_time = None if started is None else run_time_args(state, end - started)
        status, _ = self.transition(task_id, changes, allowed=RUNNING_STATES, lease_op="release", run_time=run_time)
        return status == "ok"
