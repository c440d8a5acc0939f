"""Idempotency keys: the first POST with a key runs, retries with it get the stored answer."""

from __future__ import annotations

import json
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.store import bookkeeping_scripts, keys


class Idempotency:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._begin = redis.register_script(bookkeeping_scripts.IDEMPOTENCY_BEGIN)
        self._save = redis.register_script(bookkeeping_scripts.IDEMPOTENCY_SAVE)

    key = staticmethod(keys.idempotency)

    def begin(self, user: str, key: str, record: dict[str, Any], ttl: int) -> dict[str, Any] | None:
        """Store record if the key is new (None: go ahead); else what the first request stored."""
        found = self._begin(keys=[keys.idempotency(user, key)], args=[json.dumps(record), ttl])
        return json.loads(found) if found else None

    def save(self, user: str, key: str, record: dict[str, Any], ttl: int, pipeline: Pipeline | None = None) -> None:
        """Keep the answer for retries (also when Redis is full: what it answers has happened)."""
        self._save(keys=[keys.idempotency(user, key)], args=[json.dumps(record), ttl], client=pipeline)

    def release(self, user: str, key: str, pipeline: Pipeline | None = None) -> None:
        (pipeline if pipeline is not None else self.redis).delete(keys.idempotency(user, key))
