"""Counters and leases that expire on their own, shared by every web process on every machine: failed logins per
client address and per user name (fixed windows), the addresses each user logged in from (so guessing a name from
elsewhere does not lock its owner out), and each user's concurrent waits (leases). A crashed web process leaves
nothing wrong for longer than a window or a lease."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.store import bookkeeping_scripts, keys

KNOWN_REWRITE_SECONDS = 3600  # a process writes a (user, address) it has seen log in again after this long
KNOWN_MEMO_MAX = 4096


class Limits:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._locked = redis.register_script(bookkeeping_scripts.LIMITS_LOCKED)
        self._fail = redis.register_script(bookkeeping_scripts.LIMITS_FAIL)
        self._known = redis.register_script(bookkeeping_scripts.LOGIN_KNOWN)
        self._acquire = redis.register_script(bookkeeping_scripts.LEASE_ACQUIRE)
        self._known_written: dict[tuple[str, str], float] = {}  # (user, address) -> when this process wrote it

    @staticmethod
    def _who(user: str) -> str:
        """Names are hashed: any bytes a client sends, one short key."""
        return hashlib.sha256(user.encode(errors="replace")).hexdigest()[:32]

    def _failure_keys(self, address: str, user: str | None) -> list[str]:
        found = [keys.login_failures("ip", address)]
        if user is not None:
            found.append(keys.login_failures("user", self._who(user)))
        return found

    def login_locked(self, address: str, user: str | None, per_address: int, per_user: int) -> int:
        """Seconds until this address (and user name) may try again: 0 while under both limits.

        The name's limit does not apply from an address the name logged in from (login_succeeded).
        """
        known = [keys.login_known(self._who(user))] if user is not None else []
        milliseconds = self._locked(keys=[*self._failure_keys(address, user), *known],
                                    args=[per_address, per_user, address])
        return math.ceil(int(milliseconds) / 1000)

    def login_succeeded(self, address: str, user: str, seconds: int) -> None:
        """Remember for `seconds` that the user logged in from this address (written at most hourly per process)."""
        now = time.monotonic()
        if now - self._known_written.get((user, address), -KNOWN_REWRITE_SECONDS) < KNOWN_REWRITE_SECONDS:
            return
        if len(self._known_written) >= KNOWN_MEMO_MAX:
            self._known_written.clear()
        self._known(keys=[keys.login_known(self._who(user))], args=[address, seconds * 1000])
        self._known_written[(user, address)] = now

    def login_failed(self, address: str, user: str | None, window: int) -> None:
        """Count one failure for the address (and the name); each count lives `window` seconds from its first."""
        self._fail(keys=self._failure_keys(address, user), args=[window * 1000])

    def acquire_wait(self, user: str, seconds: float, limit: int) -> tuple[str | None, int]:
        """(a lease id, 0) if the user holds fewer than `limit` waits; else (None, seconds until one ends)."""
        lease = uuid.uuid4().hex
        return self.acquired(lease, self.queue_acquire_wait(lease, user, seconds, limit))

    def queue_acquire_wait(self, lease: str, user: str, seconds: float, limit: int, pipeline: Pipeline | None = None
                           ) -> Any:
        """acquire_wait() of a lease id (uuid4 hex); on a pipeline, acquired() reads its reply. Safe to run twice
        (execute_scripted): the same lease is taken once."""
        return self._acquire(keys=[keys.waits(user)], args=[lease, int(seconds * 1000), limit], client=pipeline)

    @staticmethod
    def acquired(lease: str, reply: Any) -> tuple[str | None, int]:
        milliseconds = int(reply)
        return (lease, 0) if milliseconds == 0 else (None, max(1, math.ceil(milliseconds / 1000)))

    def release_wait(self, user: str, lease: str, pipeline: Pipeline | None = None) -> None:
        (pipeline if pipeline is not None else self.redis).zrem(keys.waits(user), lease)
