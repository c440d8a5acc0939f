"""Counters and leases that expire on their own, shared by every web process on every machine: failed logins per
client address and per user name (fixed windows), and each user's concurrent waits (leases). A crashed web process
leaves nothing wrong for longer than a window or a lease."""

from __future__ import annotations

import hashlib
import math
import uuid

from redis import Redis

from wsexec.store import keys, scripts


class Limits:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._locked = redis.register_script(scripts.LIMITS_LOCKED)
        self._fail = redis.register_script(scripts.LIMITS_FAIL)
        self._acquire = redis.register_script(scripts.LEASE_ACQUIRE)

    @staticmethod
    def _failure_keys(address: str, user: str | None) -> list[str]:
        found = [keys.login_failures("ip", address)]
        if user is not None:  # names are hashed: any bytes a client sends, one short key
            found.append(keys.login_failures("user", hashlib.sha256(user.encode(errors="replace")).hexdigest()[:32]))
        return found

    def login_locked(self, address: str, user: str | None, per_address: int, per_user: int) -> int:
        """Seconds until this address (and user name) may try again: 0 while under both limits."""
        milliseconds = self._locked(keys=self._failure_keys(address, user), args=[per_address, per_user])
        return math.ceil(int(milliseconds) / 1000)

    def login_failed(self, address: str, user: str | None, window: int) -> None:
        """Count one failure for the address (and the name); each count lives `window` seconds from its first."""
        self._fail(keys=self._failure_keys(address, user), args=[window * 1000])

    def acquire_wait(self, user: str, seconds: float, limit: int) -> tuple[str | None, int]:
        """(a lease id, 0) if the user holds fewer than `limit` waits; else (None, seconds until one ends)."""
        lease = uuid.uuid4().hex
        milliseconds = int(self._acquire(keys=[keys.waits(user)], args=[lease, int(seconds * 1000), limit]))
        return (lease, 0) if milliseconds == 0 else (None, max(1, math.ceil(milliseconds / 1000)))

    def release_wait(self, user: str, lease: str) -> None:
        self.redis.zrem(keys.waits(user), lease)
