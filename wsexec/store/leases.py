"""Leases: a worker holds the tasks it runs for a few seconds at a time, so the tasks of a dead worker end ABORT."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.store import keys, scripts
from wsexec.store.connection import execute_scripted
from wsexec.store.records import INSTANCE, TASK, as_ints
from wsexec.store.states import RUNNING_STATES, TaskState
from wsexec.store.tasks import Tasks


class Leases:
    """Hold, claim, renew and reap: what a worker's tasks go through besides their own run."""

    def __init__(self, redis: Redis, tasks: Tasks) -> None:
        self.redis, self.tasks = redis, tasks
        self._claimed = redis.register_script(scripts.CLAIMED)

    def hold(self, task_ids: list[int], worker: str, lease_seconds: int, holder: str | None = None) -> list[int]:
        """Lease the still-INIT tasks of a job to this worker (one round trip), so they end ABORT if it dies.
        holder: the worker process that renews the leases and beats (default: the worker's name)."""
        def queue(pipe: Pipeline) -> None:
            for task_id in task_ids:
                self.tasks.transition(task_id, {"worker": worker}, [TaskState.INIT],
                                      f"hold:{lease_seconds}:{holder or worker}", pipe)

        outcomes = execute_scripted(self.redis, queue, transaction=False)
        return [task_id for task_id, (status, _) in zip(task_ids, outcomes, strict=True) if status == b"ok"]

    def claim(self, task_id: int, worker: str, lease_seconds: int, holder: str | None = None
              ) -> dict[str, Any] | None:
        """INIT -> CURRENT, with a slot of its instance if it has max_concurrent; None if it was cancelled or another
        worker took it (a task never runs twice). A task for which no slot is free is answered still INIT: it waits,
        no longer held by this worker, saying why in `waiting`, until a slot frees and wakes it (store/slots.py)."""
        return self.start(task_id, worker, lease_seconds, holder)[0]

    def start(self, task_id: int, worker: str, lease_seconds: int, holder: str | None = None
              ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """claim(), and the claimed task's instance read in the same round trip (None if the instance is gone)."""
        # The claim's own mark: when Redis goes away as it answers, the client sends the claim again, which then finds
        # the task CURRENT; the mark tells this claim's repeat (the task is ours) from another worker's claim.
        claim = uuid.uuid4().hex
        changes = {"state": TaskState.CURRENT, "start": time.time(), "worker": worker, "claim": claim}
        def queue(pipe: Pipeline) -> None:  # the claim and the claimed record in one round trip
            self.tasks.transition(task_id, changes, [TaskState.INIT], f"claim:{lease_seconds}:{holder or worker}",
                                  pipe)
            self._claimed(keys=[TASK.key(task_id)], args=[INSTANCE.key("")], client=pipe)

        (status, _), (task, instance) = execute_scripted(self.redis, queue)
        raw = _pairs(task)
        if not (status in (b"ok", b"waiting") or raw.get(b"claim") == claim.encode()):
            return None, None
        return TASK.decode(raw), INSTANCE.decode(_pairs(instance)) if instance else None

    def renew(self, task_ids: Iterable[int], holder: str, lease_seconds: int, pipeline: Pipeline | None = None) -> None:
        """Renew the tasks' leases, and their holder's heartbeat: while it beats, its tasks are not taken for lost."""
        pipe = pipeline if pipeline is not None else self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(keys.lease(task_id), holder, ex=lease_seconds)
        pipe.set(keys.worker_alive(holder), 1, ex=lease_seconds)
        if pipeline is None:
            pipe.execute()

    def tick(self, task_id: int, holder: str, lease_seconds: int = 0) -> str | None:
        """A running task's check: who asked to cancel it (None: no one); renewing its lease and its worker's
        heartbeat in the same round trip when lease_seconds is given."""
        if not lease_seconds:
            return self.tasks.cancel_requested_by(task_id)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(TASK.key(task_id), "cancel_requested")
            self.renew([task_id], holder, lease_seconds, pipe)
            by = pipe.execute()[0]
        return by.decode() if by else None

    def lost(self) -> list[int]:
        """Held tasks whose lease has expired and whose holder no longer beats: their worker is gone, and what it ran
        on the host may be left."""
        held = as_ints(self.redis.zrange(keys.HELD, 0, -1))
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in held:
                pipe.exists(keys.lease(task_id))
            expired = [task_id for task_id, leased in zip(held, pipe.execute(), strict=True) if not leased]
        if not expired:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in expired:
                pipe.hget(TASK.key(task_id), "holder")
            owners = [(owner or b"").decode() for owner in pipe.execute()]
            for owner in owners:
                pipe.exists(keys.worker_alive(owner))
            beating = pipe.execute()
        return [task_id for task_id, alive in zip(expired, beating, strict=True) if not alive]

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


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A hash as a script returns it (field, value, field, value...) as HGETALL's answer would be."""
    return dict(zip(flat[::2], flat[1::2], strict=True))
