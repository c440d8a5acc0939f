"""Events: the stream of task lifecycle events (created, started, finished) that the task scripts append to.

The scripts write an event in the same atomic step as the change it reports, so a reader that has seen a
stream position and then reads on from it cannot miss a change made after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from redis import Redis
from redis.exceptions import ResponseError

from wsexec.store import keys
from wsexec.store.connection import SOCKET_TIMEOUT

INT_FIELDS = frozenset({"task", "instance", "rc"})
START = "0-0"  # before every entry
# One XREAD blocks at most this long: a longer one would outlast the socket timeout and be retried as a lost reply.
BLOCK_MAX_MS = int(SOCKET_TIMEOUT * 1000 / 2)


@dataclass(frozen=True)
class Event:
    """One stream entry: its id (the SSE id), its type, and the task's fields at that moment."""

    id: str
    type: str
    fields: dict[str, Any]


def entry_id(value: str) -> tuple[int, int]:
    """A stream id as a comparable pair ("1700000000000-3" -> (1700000000000, 3))."""
    milliseconds, _, sequence = value.partition("-")
    return int(milliseconds), int(sequence or 0)


def decode(raw_id: bytes, raw: dict[bytes, bytes]) -> Event:
    fields: dict[str, Any] = {}
    for name_bytes, value_bytes in raw.items():
        name, value = name_bytes.decode(), value_bytes.decode()
        fields[name] = int(value) if name in INT_FIELDS else value
    return Event(raw_id.decode(), fields.pop("type"), fields)


class Events:
    """Reads of wsexec:events; its writes live in the task scripts (scripts.CREATE_TASKS, scripts.TRANSITION)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def _info(self) -> dict[Any, Any] | None:
        try:
            return cast(dict[Any, Any], self.redis.xinfo_stream(keys.EVENTS))
        except ResponseError:  # no such key: nothing was ever written (or Redis lost it)
            return None

    def position(self) -> str:
        """The id of the last event kept so far: reading on from it gives every later event."""
        last = cast(list[Any], self.redis.xrevrange(keys.EVENTS, count=1))
        return last[0][0].decode() if last else START

    def lost_after(self, after: str) -> str | None:
        """When events after `after` may have been trimmed away: the oldest id still kept (reading resumes there).

        Redis 7.0 does not record the last id a trim removed, so a client whose last event was exactly the last one
        trimmed is told of a gap too: it errs on the side of saying so.
        """
        info = self._info()
        if not info or int(info["entries-added"]) <= int(info["length"]):
            return None  # nothing was ever trimmed
        first = info.get("first-entry")
        oldest = first[0].decode() if first else info["last-generated-id"].decode()
        return oldest if entry_id(after) < entry_id(oldest) else None

    def read(self, after: str, block_ms: int | None = None, count: int = 500) -> list[Event]:
        """The events after an id, oldest first; with block_ms, wait up to that long (BLOCK_MAX_MS at most) for one."""
        block = None if block_ms is None else min(block_ms, BLOCK_MAX_MS)
        answer = self.redis.xread({keys.EVENTS: after}, count=count, block=block)
        if not answer:
            return []
        (_, entries), = cast(list[Any], answer)
        return [decode(raw_id, raw) for raw_id, raw in entries]
