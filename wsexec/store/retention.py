"""Retention: finished tasks, their output and index entries are deleted a set time after they end."""

from __future__ import annotations

import json
import time

from redis import Redis

from wsexec.store import bookkeeping_scripts, keys
from wsexec.store.records import TASK, TASK_LEGACY_INDEXED

PURGE_BATCH = 500


class Retention:
    """The sweep the workers run; Redis's own expiry (set when a task finishes) is only its backstop."""

    def __init__(self, redis: Redis, retention_seconds: float) -> None:
        self.redis, self.retention_seconds = redis, retention_seconds
        self._purge = redis.register_script(bookkeeping_scripts.PURGE)

    def purge_expired(self, now: float | None = None) -> int:
        """Delete the tasks that finished more than the retention period ago, their output and index entries."""
        cutoff = (time.time() if now is None else now) - self.retention_seconds
        base = TASK.key("")
        suffixes = [key.removeprefix(base) for key in TASK.sub_keys("")]
        purged = 0
        while True:
            seen, gone = self._purge(
                keys=[keys.FINISHED],
                # the older layout's indexes too: those of tasks stored before a worker's upgrade (a ZREM of nothing
                # after it)
                args=[repr(cutoff), PURGE_BATCH, base, TASK.index_prefix, json.dumps(TASK_LEGACY_INDEXED),
                      json.dumps(suffixes)],
            )
            if gone:
                self._unindex(gone)
            purged += seen
            if seen < PURGE_BATCH:
                return purged

    def _unindex(self, task_ids: list[bytes]) -> None:
        """Ids whose hash Redis expired before the sweep: their index values are lost, so look in every index."""
        with self.redis.pipeline(transaction=False) as pipe:
            for key in self.redis.scan_iter(match=f"{TASK.index_prefix}*", count=1000, _type="zset"):
                pipe.zrem(key, *task_ids)
            pipe.execute()
