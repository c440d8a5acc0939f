"""Instances: the servers tasks run on; one with INIT or CURRENT tasks cannot be deleted, its notes go with it."""

from __future__ import annotations

from typing import Any

from redis import Redis

from wsexec.exceptions import Conflict
from wsexec.store.records import INSTANCE, NOTE, TASK, Records
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

    def update(self, instance_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        self.records.update(instance_id, changes)
        return self.get(instance_id)

    def delete(self, instance_id: int) -> None:
        busy = [TASK.index_key("instance", instance_id)] + [TASK.index_key("state", s) for s in RUNNING_STATES]
        status, _ = self.records.delete(instance_id, busy=busy, dependents=[(NOTE, "instance")])
        if status == "busy":
            raise Conflict(f"instance {instance_id} has INIT or CURRENT tasks")
