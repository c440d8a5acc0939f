"""Webhook deliveries: what task ends to report (read from the events stream through a consumer group) and each
delivery's record, queue position and outcome.

The ends come from wsexec:events, which the task scripts write in the same step as every state change, whoever makes
it (a worker, the reaper, a cancel in the web app): a consumer group hands each entry to one worker process, and an
entry read but not acknowledged (its reader died) is claimed by another after CLAIM_IDLE_MS. Deliveries get ids made
from what they report, so an end seen twice adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from redis import Redis
from redis.exceptions import ResponseError

from wsexec.store import keys, webhook_scripts
from wsexec.store.events import Event, decode

GROUP = "wsexec-webhooks"
CLAIM_IDLE_MS = 60_000  # an end read this long ago and not acknowledged: its reader died, another takes it


class Webhooks:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._add = redis.register_script(webhook_scripts.DELIVERY_ADD)
        self._claim = redis.register_script(webhook_scripts.DELIVERY_CLAIM)
        self._record = redis.register_script(webhook_scripts.DELIVERY_RECORD)

    def join(self) -> None:
        """The consumer group, made once at the stream's end (earlier ends were never promised a webhook)."""
        try:
            self.redis.xgroup_create(keys.EVENTS, GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, block_ms: int, count: int = 100, stale: bool = True, ack: Sequence[str] = ()
             ) -> tuple[list[Event], int | None]:
        """Events this consumer is to handle: first those a dead consumer left (if `stale`: a look every few seconds
        is enough for entries idle a minute), else new ones (waiting block_ms). In the same round trip as the read,
        the events of `ack` (handled last time) are acknowledged and next_due_ms() is answered, as of before it."""
        try:
            entries = []
            if stale:
                _, left, *_ = self.redis.xautoclaim(keys.EVENTS, GROUP, consumer, CLAIM_IDLE_MS, count=count)
                entries = [entry for entry in left if entry[1]]  # trimmed away meanwhile: no fields
            with self.redis.pipeline(transaction=False) as pipe:
                if ack:
                    pipe.xack(keys.EVENTS, GROUP, *ack)
                pipe.zrange(keys.WEBHOOK_DUE, 0, 0, withscores=True)
                if not entries:
                    pipe.xreadgroup(GROUP, consumer, {keys.EVENTS: ">"}, count=count, block=block_ms)
                replies = pipe.execute()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.join()  # the stream was deleted (Redis emptied): start again
            return [], None
        first = replies[1 if ack else 0]
        if not entries:
            answer = cast(list[Any], replies[-1])
            entries = answer[0][1] if answer else []
        return [decode(raw_id, raw) for raw_id, raw in entries], int(first[0][1]) if first else None

    def leave(self, consumer: str) -> None:
        """A stopping reader leaves the group if it holds no unacknowledged end (deleting it would drop those)."""
        if not self.redis.xpending_range(keys.EVENTS, GROUP, "-", "+", 1, consumername=consumer):
            self.redis.xgroup_delconsumer(keys.EVENTS, GROUP, consumer)

    def done(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            self.redis.xack(keys.EVENTS, GROUP, *event_ids)

    def notified(self, task_ids: list[int]) -> list[bool]:
        """Which of the tasks have a `notify` of their own, in one round trip (most have none: no read of theirs)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hexists(keys.record("task", task_id), "notify")
            return [bool(found) for found in pipe.execute()]

    def add(self, delivery_id: str, record: dict[str, Any], now_ms: int, keep: int) -> bool:
        """Store a delivery due now, once; the oldest beyond `keep` are dropped."""
        fields = {name: json.dumps(value, separators=(",", ":")) for name, value in record.items()}
        added = self._add(keys=[keys.webhook_delivery(delivery_id), keys.WEBHOOK_DELIVERIES, keys.WEBHOOK_DUE],
                          args=[delivery_id, now_ms, json.dumps(fields), keep, keys.webhook_delivery("")])
        return bool(added)

    def claim(self, now_ms: int, lease_ms: int, count: int) -> list[str]:
        """Due deliveries, each held for lease_ms (then due again unless its outcome was recorded)."""
        return [raw.decode() for raw in self._claim(keys=[keys.WEBHOOK_DUE], args=[now_ms, lease_ms, count])]

    def next_due_ms(self) -> int | None:
        first = cast(list[Any], self.redis.zrange(keys.WEBHOOK_DUE, 0, 0, withscores=True))
        return int(first[0][1]) if first else None

    def get(self, delivery_id: str) -> dict[str, Any] | None:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(keys.webhook_delivery(delivery_id)))
        return {name.decode(): json.loads(value) for name, value in raw.items()} or None

    def record(self, delivery_id: str, changes: dict[str, Any], next_ms: int | None) -> None:
        """An attempt's outcome; due again at next_ms, or done with (delivered, given up) without."""
        fields = {name: json.dumps(value, separators=(",", ":")) for name, value in changes.items()}
        self._record(keys=[keys.webhook_delivery(delivery_id), keys.WEBHOOK_DUE],
                     args=[json.dumps(fields), "" if next_ms is None else next_ms, delivery_id])

    def page(self, page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        """Deliveries newest first."""
        start = (page - 1) * page_size
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.WEBHOOK_DELIVERIES)
            pipe.zrevrange(keys.WEBHOOK_DELIVERIES, start, start + page_size - 1)
            count, ids = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for raw_id in ids:
                pipe.hgetall(keys.webhook_delivery(raw_id.decode()))
            records = pipe.execute()
        return count, [{name.decode(): json.loads(value) for name, value in raw.items()} for raw in records if raw]
