"""Waits: block until tasks have finished, woken by their 'finished' events (XREAD BLOCK), never by polling."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis import Redis

from wsexec.store import keys
from wsexec.store.events import START, Events
from wsexec.store.records import TASK
from wsexec.store.states import RUNNING_STATES, STREAMS
from wsexec.store.tasks import Tasks

READ_COUNT = 500  # events per read; a full read means this waiter may be behind the window's trimming
_RUNNING = {state.value.encode() for state in RUNNING_STATES}


class Waits:
    """A wait takes the stream's position and the tasks' states in one transaction, then reads on from there: a
    task that ends after that snapshot has its 'finished' event after that position, so no end is missed."""

    def __init__(self, redis: Redis, tasks: Tasks, events: Events) -> None:
        self.redis, self.tasks, self.events = redis, tasks, events

    def _snapshot(self, task_ids: Iterable[int]) -> tuple[str, set[int]]:
        """The stream's last id and, at that same moment, which of the tasks are INIT or CURRENT."""
        ids = list(task_ids)
        with self.redis.pipeline() as pipe:
            pipe.xrevrange(keys.EVENTS, count=1)
            for task_id in ids:
                pipe.hget(TASK.key(task_id), "state")
            last, *states = pipe.execute()
        position = last[0][0].decode() if last else START
        return position, {task_id for task_id, state in zip(ids, states, strict=True) if state in _RUNNING}

    def until_finished(self, task_ids: list[int], seconds: float, output: bool = False, created: str | None = None
                       ) -> list[dict[str, Any]]:
        """The tasks once none is INIT or CURRENT, or as they are when `seconds` run out (those that still exist);
        with `output`, each with its streams' bytes as "stdout" and "stderr", read in the same round trip.

        created: the events' position the tasks were created at (Created.position), all INIT then: no snapshot."""
        deadline = time.monotonic() + seconds
        position, pending = (created, set(task_ids)) if created else self._snapshot(task_ids)
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch = self.events.read(position, max(1, int(remaining * 1000)), READ_COUNT)
            if batch:
                position = batch[-1].id
            pending -= {event.fields["task"] for event in batch if event.type == "finished"}
            if len(batch) == READ_COUNT and pending:  # events may have been trimmed before this waiter read them
                _, pending = self._snapshot(pending)
        return self._with_output(task_ids) if output else self.tasks.get_many(task_ids)

    def _with_output(self, task_ids: list[int]) -> list[dict[str, Any]]:
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(TASK.key(task_id))
                for stream in STREAMS:
                    pipe.get(keys.output(task_id, stream))
            replies = iter(pipe.execute())
        found = []
        for _ in task_ids:
            raw, streams = next(replies), {stream: next(replies) or b"" for stream in STREAMS}
            if raw:
                found.append({**TASK.decode(raw), **streams})
        return found
