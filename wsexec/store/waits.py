"""Waits: block until tasks have finished, woken by their 'finished' events (XREAD BLOCK), never by polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from redis import Redis
from redis.client import Pipeline

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

    def until_finished(self, task_ids: list[int], seconds: float, output: bool = False, created: str | None = None,
                       also: Callable[[Pipeline], None] | None = None) -> list[dict[str, Any]]:
        """The tasks once none is INIT or CURRENT, or as they are when `seconds` run out (those that still exist);
        with `output`, each with its streams' bytes as "stdout" and "stderr", read in the same round trip.

        created: the events' position the tasks were created at (Created.position), all INIT then: no snapshot.
        also: more commands for the last read's pipeline (the wait's slot given back)."""
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
        return self._read(task_ids, output, also)

    def with_output(self, task_ids: list[int]) -> list[dict[str, Any]]:
        """The tasks that exist, each with both its streams whole, in one round trip."""
        return self._read(task_ids, True, None)

    def _read(self, task_ids: list[int], output: bool, also: Callable[[Pipeline], None] | None
              ) -> list[dict[str, Any]]:
        streams = STREAMS if output else ()
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(TASK.key(task_id))
                for stream in streams:
                    pipe.get(keys.output(task_id, stream))
            if also is not None:
                also(pipe)
            replies = iter(pipe.execute())
        found = []
        for _ in task_ids:
            raw, data = next(replies), {stream: next(replies) or b"" for stream in streams}
            if raw:
                found.append({**TASK.decode(raw), **data})
        return found
