"""Task output: one capped string per stream, appended as it arrives so clients can follow it.

Followers are woken by a per-task notification stream (wsexec:task:N:notify, MAXLEN 1) that every append and the
task's end touch: one XADD on a one-entry key per flushed chunk, which only that task's followers read. An `output`
type on wsexec:events would cost the same XADD but wake every /events reader and waiter on every chunk and push
lifecycle events out of the resume window.
"""

from __future__ import annotations

from typing import cast

from redis import Redis
from redis.client import Pipeline

from wsexec.store import bookkeeping_scripts, keys
from wsexec.store.events import BLOCK_MAX_MS, START
from wsexec.store.records import TASK


class Output:
    """Appends that never pass the cap and are no-ops when retried; reads from a byte offset."""

    def __init__(self, redis: Redis, cap: int) -> None:
        self.redis, self.cap = redis, cap
        self._append = redis.register_script(bookkeeping_scripts.APPEND)

    key = staticmethod(keys.output)

    def append(self, task_id: int, stream: str, data: bytes, offset: int, pipeline: Pipeline | None = None) -> None:
        """Append a chunk that starts at byte `offset` of the stream (so a retried call is a no-op)."""
        if data:
            self._append(keys=[keys.output(task_id, stream), keys.notify(task_id)], args=[self.cap, data, offset],
                         client=pipeline)

    def read(self, task_id: int, stream: str, offset: int = 0, size: int | None = None) -> bytes:
        """The stored bytes of one stream from a byte offset: `size` of them at most, else up to the end (the cap)."""
        end = -1 if size is None else offset + size - 1
        return cast(bytes, self.redis.getrange(keys.output(task_id, stream), offset, end))

    def snapshot(self, task_id: int) -> tuple[str, str | None]:
        """The notification stream's last id and the task's state (None: no such task), at one moment.

        Output read after this and a wait from that id miss nothing: a later append or end adds a later entry.
        """
        with self.redis.pipeline() as pipe:
            pipe.xrevrange(keys.notify(task_id), count=1)
            pipe.hget(TASK.key(task_id), "state")
            last, state = pipe.execute()
        return (last[0][0].decode() if last else START), (state.decode() if state else None)

    def wait(self, task_id: int, after: str, block_ms: int) -> bool:
        """Block until the task gains output or ends after notification `after` (BLOCK_MAX_MS at most)."""
        return bool(self.redis.xread({keys.notify(task_id): after}, count=1, block=min(block_ms, BLOCK_MAX_MS)))
