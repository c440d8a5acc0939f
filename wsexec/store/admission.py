"""What POST /tasks reads before it stores anything, in one round trip: the instances its items name (and the ACTIVE
ones of its targets' tags), how many tasks the user has queued or running (the quota), and its ?wait's slot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.store.connection import execute_scripted
from wsexec.store.instances import Instances
from wsexec.store.limits import Limits
from wsexec.store.tasks import Tasks


@dataclass
class WaitLease:
    """A wait slot asked for: Limits.acquire_wait()'s arguments, with the lease id chosen beforehand."""

    lease: str
    user: str
    seconds: float
    limit: int


@dataclass
class Admitted:
    by_id: dict[int, dict[str, Any]]  # the instances asked for that exist
    by_tag: dict[str, list[dict[str, Any]]]  # the ACTIVE instances of each tag asked for
    active: int  # the user's tasks INIT or CURRENT
    lease: str | None  # the wait's slot (None: refused, or none asked for)
    retry_after: int  # when refused: seconds until one of the user's slots ends


class Admission:
    def __init__(self, redis: Redis, instances: Instances, tasks: Tasks, limits: Limits) -> None:
        self.redis, self.instances, self.tasks, self.limits = redis, instances, tasks, limits

    def check(self, instance_ids: list[int], tags: list[str], user: str, wait: WaitLease | None) -> Admitted:
        """All of it in one round trip (and one more for the members of the tags, as Instances.lookup)."""
        ids, tags = sorted(set(instance_ids)), sorted(set(tags))

        counts = 0

        def queue(pipe: Pipeline) -> None:
            nonlocal counts
            if wait is not None:
                self.limits.queue_acquire_wait(wait.lease, wait.user, wait.seconds, wait.limit, pipe)
            counts = self.tasks.queue_active(pipe, "created_by", user)
            self.instances.queue_lookup(pipe, ids, tags)

        replies = execute_scripted(self.redis, queue, transaction=False)
        lease, retry_after = (None, 0) if wait is None else self.limits.acquired(wait.lease, replies.pop(0))
        by_id, by_tag = self.instances.looked_up(ids, tags, replies[counts:])
        return Admitted(by_id, by_tag, sum(int(count) for count in replies[:counts]), lease, retry_after)
