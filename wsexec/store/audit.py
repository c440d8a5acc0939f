"""The audit log: a list of JSON entries, newest first, capped by count and by bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.store import bookkeeping_scripts, keys


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry, separators=(",", ":"), default=str)


class Audit:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._add = redis.register_script(bookkeeping_scripts.AUDIT_ADD)

    def add(self, entry: dict[str, Any], keep: int, max_bytes: int, pipeline: Pipeline | None = None) -> None:
        """Prepend an entry and drop the oldest beyond `keep` entries or `max_bytes` bytes of them (also when Redis
        is full: the change has happened)."""
        self._add(keys=[keys.AUDIT, keys.AUDIT_BYTES], args=[_line(entry), keep, max_bytes], client=pipeline)

    def add_with(self, entry: dict[str, Any], keep: int, max_bytes: int, queue: Callable[[Pipeline], None]) -> None:
        """add() in one transaction with what `queue` puts on it (the jobs of the tasks it logs): one round trip.

        By EVAL, not EVALSHA: a transaction runs on past a failed command, so a Redis that has lost its scripts would
        refuse the entry after running the rest, and running that again is no remedy (it would queue the jobs twice).
        """
        with self.redis.pipeline() as pipe:
            queue(pipe)
            pipe.eval(bookkeeping_scripts.AUDIT_ADD, 2, keys.AUDIT, keys.AUDIT_BYTES, _line(entry), keep, max_bytes)
            pipe.execute()

    def size(self) -> int:
        """The bytes of the entries kept (as counted by the scripts that add them)."""
        return int(self.redis.get(keys.AUDIT_BYTES) or 0)

    def page(self, page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        """One page of the audit log, newest first."""
        start = (page - 1) * page_size
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(keys.AUDIT)
            pipe.lrange(keys.AUDIT, start, start + page_size - 1)
            count, raw = pipe.execute()
        return count, [json.loads(entry) for entry in raw]
