"""Task output: one capped string per stream, appended as it arrives so clients can follow it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from redis import Redis
from redis.client import Pipeline

from wsexec.store import keys, scripts
from wsexec.store.states import STREAMS


class Output:
    """Appends that never pass the cap and are no-ops when retried; reads from a byte offset."""

    def __init__(self, redis: Redis, cap: int) -> None:
        self.redis, self.cap = redis, cap
        self._append = redis.register_script(scripts.APPEND)

    key = staticmethod(keys.output)

    def append(self, task_id: int, stream: str, data: bytes, offset: int, pipeline: Pipeline | None = None) -> None:
        """Append a chunk that starts at byte `offset` of the stream (so a retried call is a no-op)."""
        if data:
            self._append(keys=[keys.output(task_id, stream)], args=[self.cap, data, offset], client=pipeline)

    def read_all(self, task_ids: Iterable[int]) -> list[dict[str, bytes]]:
        """Both streams of each task, whole (bounded by the cap), in one round trip."""
        ids = list(task_ids)
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                for stream in STREAMS:
                    pipe.get(keys.output(task_id, stream))
            values = iter(pipe.execute())
        return [{stream: next(values) or b"" for stream in STREAMS} for _ in ids]

    def read(self, task_id: int, stream: str, offset: int = 0) -> bytes:
        """The stored bytes of one stream from a byte offset (bounded by the cap)."""
        return cast(bytes, self.redis.getrange(keys.output(task_id, stream), offset, -1))
