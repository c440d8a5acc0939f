"""Per-instance concurrency: an instance's max_concurrent slots, taken by the claim (scripts.TRANSITION), given back
by the task's end, and the tasks waiting in INIT for one, woken oldest first as slots free (scripts.WAKE).

A slot is held as long as its task is CURRENT and held by a live worker, judged by the task's own lease and its
worker's heartbeat (no clock of its own): a dead worker's slots free themselves when those expire.
"""

from __future__ import annotations

from redis import Redis

from wsexec.store import keys, scripts
from wsexec.store.records import as_ints

WAKE_MOST = 1000  # tasks woken by one call (each gets a job): a limit removed from a long queue wakes it in rounds


class Slots:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._wake = redis.register_script(scripts.WAKE)

    def wake(self, instance_id: int, again_seconds: float, most: int = WAKE_MOST) -> list[int]:
        """The waiting tasks given a freed slot (to be given a job), and those woken again after again_seconds."""
        return as_ints(self._wake(args=[instance_id, keys.SLOT_TEMPLATES, int(again_seconds * 1000), most]))

    def instances_waiting(self) -> list[int]:
        """Instances some task waits for: what the workers' backstop wakes (in case a wake was lost)."""
        return as_ints(self.redis.smembers(keys.WAITERS))

    def in_use(self, instance_id: int) -> list[int]:
        """The tasks holding the instance's slots (including any whose worker died and whose lease is not yet out)."""
        return sorted(as_ints(self.redis.smembers(keys.slots(instance_id))))
