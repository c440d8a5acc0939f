"""Instances: the servers tasks run on; one with INIT or CURRENT tasks cannot be deleted, its notes go with it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis import Redis
from redis.client import Pipeline

from wsexec.exceptions import Conflict
from wsexec.store.records import INSTANCE, NOTE, TASK, Records, as_ints
from wsexec.store.states import RUNNING_STATES, InstanceState


class Instances:
    """The instance records."""

    def __init__(self, redis: Redis) -> None:
        self.records = Records(redis, INSTANCE)

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        (instance_id,) = self.records.create([fields])
        return self.get(instance_id)

    def get(self, instance_id: int) -> dict[str, Any]:
        return self.records.get(instance_id)

    def page(self, filters: dict[str, Any], page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        return self.records.page(filters, page, page_size)

    def active_with_tag(self, tag: str) -> list[dict[str, Any]]:
        ids = self.records.ids_in([INSTANCE.index_key("tag", tag), INSTANCE.index_key("state", InstanceState.ACTIVE)])
        return self.records.get_many(ids)

    def lookup(self, ids: Iterable[int], tags: Iterable[str]
               ) -> tuple[dict[int, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """The instances with these ids (those that exist) and the ACTIVE ones of these tags, however many: one round
        trip, and a second one for the members of the tags, so a POST array costs the same as one task."""
        ids, tags = sorted(set(ids)), sorted(set(tags))
        with self.records.redis.pipeline(transaction=False) as pipe:
            self.queue_lookup(pipe, ids, tags)
            return self.looked_up(ids, tags, pipe.execute())

    @staticmethod
    def queue_lookup(pipe: Pipeline, ids: list[int], tags: list[str]) -> None:
        """lookup()'s first round trip on a pipeline (ids and tags sorted, unique); looked_up() takes its replies."""
        active = INSTANCE.index_key("state", InstanceState.ACTIVE)
        for instance_id in ids:
            pipe.hgetall(INSTANCE.key(instance_id))
        for tag in tags:
            pipe.zinter([INSTANCE.index_key("tag", tag), active])

    def looked_up(self, ids: list[int], tags: list[str], answers: list[Any]
                  ) -> tuple[dict[int, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        by_id = {i: INSTANCE.decode(raw) for i, raw in zip(ids, answers[:len(ids)], strict=True) if raw}
        members = [sorted(as_ints(found)) for found in answers[len(ids):]]
        known = {instance["id"]: instance for instance in self.records.get_many(
            sorted({i for found in members for i in found} - set(by_id)))} | by_id
        by_tag = {tag: [known[i] for i in found if i in known] for tag, found in zip(tags, members, strict=True)}
        return by_id, by_tag

    def update(self, instance_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        self.records.update(instance_id, changes)
        return self.get(instance_id)

    def delete(self, instance_id: int) -> None:
        busy = [TASK.index_key("instance", instance_id)] + [TASK.index_key("state", s) for s in RUNNING_STATES]
        status, _ = self.records.delete(instance_id, busy=busy, dependents=[(NOTE, "instance")])
        if status == "busy":
            raise Conflict(f"instance {instance_id} has INIT or CURRENT tasks")
