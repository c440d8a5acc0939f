"""Leases: a worker holds the tasks it runs for a few seconds at a time, so the tasks of a dead worker end ABORT."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.store import keys, lease_scripts
from wsexec.store.connection import execute_scripted
from wsexec.store.records import INSTANCE, TASK, as_ints
from wsexec.store.states import RUNNING_STATES, TaskState
from wsexec.store.tasks import Tasks

LOST_BATCH = 1000  # lost tasks a reaper round takes at most (the next round takes the rest)


class Leases:
    """Hold, claim, renew and reap: what a worker's tasks go through besides their own run."""

    def __init__(self, redis: Redis, tasks: Tasks) -> None:
        self.redis, self.tasks = redis, tasks
        self._renew = redis.register_script(lease_scripts.RENEW)
        self._expired = redis.register_script(lease_scripts.EXPIRED)
        self._claimed = redis.register_script(lease_scripts.CLAIMED)

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
        return self.begin([task_id], [], worker, lease_seconds, holder)[1][0]

    def begin(self, claim_ids: list[int], hold_ids: list[int], worker: str, lease_seconds: int,
              holder: str | None = None) -> tuple[list[int], list[tuple[dict[str, Any] | None, dict[str, Any] | None]]]:
        """A job's start in one round trip: start() each of claim_ids (those it runs at once) and hold() the others
        (they run as threads free up); the ids held, and what start() answers for each claimed one."""
        owner = f"{holder or worker}"
        # A claim's own mark: when Redis goes away as it answers, the client sends the claim again, which then finds
        # the task CURRENT; the mark tells this claim's repeat (the task is ours) from another worker's claim.
        marks = [uuid.uuid4().hex for _ in claim_ids]
        now = time.time()

        def queue(pipe: Pipeline) -> None:
            for task_id, mark in zip(claim_ids, marks, strict=True):
                changes = {"state": TaskState.CURRENT, "start": now, "worker": worker, "claim": mark}
                self.tasks.transition(task_id, changes, [TaskState.INIT], f"claim:{lease_seconds}:{owner}", pipe)
                self._claimed(keys=[TASK.key(task_id)], args=[INSTANCE.key("")], client=pipe)
            for task_id in hold_ids:
                self.tasks.transition(task_id, {"worker": worker}, [TaskState.INIT], f"hold:{lease_seconds}:{owner}",
                                      pipe)

        replies = execute_scripted(self.redis, queue)
        started: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
        for n, mark in enumerate(marks):
            (status, _), (task, instance) = replies[2 * n], replies[2 * n + 1]
            raw = _pairs(task)
            ours = status in (b"ok", b"waiting") or raw.get(b"claim") == mark.encode()
            started.append((TASK.decode(raw), INSTANCE.decode(_pairs(instance)) if instance else None) if ours
                           else (None, None))
        held = [task_id for task_id, (status, _) in zip(hold_ids, replies[2 * len(marks):], strict=True)
                if status == b"ok"]
        return held, started

    def renew(self, task_ids: Iterable[int], holder: str, lease_seconds: int, pipeline: Pipeline | None = None) -> None:
        """Renew the tasks' leases and deadlines, and their holder's heartbeat: while it beats, its tasks are not
        taken for lost (one script, in the pipeline if given)."""
        ids = list(task_ids)
        self._renew(keys=[keys.HELD, keys.worker_alive(holder), *(keys.lease(task_id) for task_id in ids)],
                    args=[holder, lease_seconds, *ids], client=pipeline)

    def tick(self, task_id: int, holder: str, lease_seconds: int = 0) -> str | None:
        """A running task's check: who asked to cancel it (None: no one); renewing its lease and its worker's
        heartbeat in the same round trip when lease_seconds is given."""
        if not lease_seconds:
            return self.tasks.cancel_requested_by(task_id)
        with self.redis.pipeline(transaction=False) as pipe:  # plain commands: one round trip, no script to load
            pipe.hget(TASK.key(task_id), "cancel_requested")
            pipe.set(keys.lease(task_id), holder, ex=lease_seconds)  # its deadline moves at the lease keeper's renew
            pipe.set(keys.worker_alive(holder), 1, ex=lease_seconds)
            by = pipe.execute()[0]
        return by.decode() if by else None

    def lost(self, most: int = LOST_BATCH) -> list[int]:
        """Held tasks whose lease has expired and whose holder no longer beats: their worker is gone, and what it ran
        on the host may be left. Only those past their lease deadline are looked at, so a round costs the same
        however many tasks and workers there are (not every held task by every worker)."""
        held = as_ints(self._expired(keys=[keys.HELD], args=[most]))
        if not held:
            return []
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
