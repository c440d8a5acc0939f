"""The audit log: a list of JSON entries, newest first, capped by count and by bytes."""

from __future__ import annotations

import json
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.store import bookkeeping_scripts, keys


class Audit:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._add = redis.register_script(bookkeeping_scripts.AUDIT_ADD)

    def add(self, entry: dict[str, Any], keep: int, max_bytes: int, pipeline: Pipeline | None = None) -> None:
        """Prepend an entry and drop the oldest beyond `keep` entries or `max_bytes` bytes of them (also when Redis
        is full: the change has happened)."""
        line = json.dumps(entry, separators=(",", ":"), default=str)
        self._add(keys=[keys.AUDIT, keys.AUDIT_BYTES], args=[line, keep, max_bytes], client=pipeline)

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
