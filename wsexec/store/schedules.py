"""Recurring schedules: their records, the zset of when each is due, and the claim that makes each fire happen once
whatever the number of schedulers (schedule_scripts.FIRE_SCHEDULE). Times are Redis's (TIME), so skewed clocks agree."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from wsexec.cron import Due
from wsexec.store import keys, schedule_scripts
from wsexec.store.records import SCHEDULE, TASK, Records, as_ints
from wsexec.store.states import TaskState
from wsexec.store.tasks import Tasks


@dataclass
class Fired:
    """What one claim did: outcome 'created', 'skipped', 'error' or 'missed'; '' when another scheduler had it."""

    outcome: str
    tasks: list[dict[str, Any]] = field(default_factory=list)
    after: dict[int, list[str]] = field(default_factory=dict)
    error: str = ""


class Schedules:
    def __init__(self, redis: Redis, tasks: Tasks) -> None:
        self.redis, self.tasks = redis, tasks
        self.records = Records(redis, SCHEDULE)
        self._create = redis.register_script(schedule_scripts.CREATE_SCHEDULE)
        self._update = redis.register_script(schedule_scripts.UPDATE_SCHEDULE)
        self._fire = redis.register_script(schedule_scripts.FIRE_SCHEDULE)

    def now(self) -> float:
        """Redis's clock, the one every scheduler and web process goes by."""
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        _, ids = self._create(keys=[SCHEDULE.counter_key, keys.SCHEDULES_DUE], args=self.records.create_args([fields]))
        return self.get(int(ids[0]))

    def get(self, schedule_id: int) -> dict[str, Any]:
        return self.records.get(schedule_id)

    def page(self, page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        return self.records.page({}, page, page_size)

    def update(self, schedule_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change fields (None removes one; next_run None takes it out of the due zset) and count the revision."""
        outcome = self._update(keys=[SCHEDULE.key(schedule_id), keys.SCHEDULES_DUE],
                               args=self.records.update_args(schedule_id, changes, ()))
        self.records.outcome(schedule_id, outcome)
        return self.get(schedule_id)

    def delete(self, schedule_id: int) -> None:
        self.records.delete(schedule_id)
        self.forget(schedule_id)

    def forget(self, schedule_id: int) -> None:
        """Out of the due zset (a schedule deleted between its record and its entry there)."""
        self.redis.zrem(keys.SCHEDULES_DUE, schedule_id)

    def due(self, now: float, limit: int = 100) -> list[int]:
        """The schedules whose next_run has come, the longest due first."""
        return as_ints(self.redis.zrangebyscore(keys.SCHEDULES_DUE, "-inf", now, start=0, num=limit))

    def fire(self, schedule: dict[str, Any], due: Due, records: list[dict[str, Any]], error: str,
             audit: dict[str, Any], audit_keep: tuple[int, int], now: float, job_prefix: str, tasks_per_job: int
             ) -> Fired:
        """Claim the schedule's fire (it must still be as read) and, in the same step, store its tasks (unless
        skipped: see schedule_scripts.FIRE_SCHEDULE), record the outcome and the audit entry (audit_keep: at most
        so many entries, so many bytes); the caller queues the tasks."""
        schedule_id = schedule["id"]
        claim: dict[str, Any] = {
            "schedule": SCHEDULE.key(schedule_id), "due": keys.SCHEDULES_DUE, "id": str(schedule_id),
            "expected": str(schedule["next_run"]), "revision": str(schedule.get("revision", 0)),
            "next": str(due.next_run), "missed": due.missed, "overlap": schedule["overlap"],
            "running": {"tasks": TASK.index_key("schedule", schedule_id),
                        "init": TASK.index_key("state", TaskState.INIT),
                        "current": TASK.index_key("state", TaskState.CURRENT)},
            "audit": {"key": keys.AUDIT, "bytes": keys.AUDIT_BYTES, "keep": audit_keep[0], "max_bytes": audit_keep[1],
                      "entry": audit},
        }
        if due.fire is not None:
            claim["fire"] = str(due.fire)
        if error:
            claim["error"] = error
        _, create_keys, args = self.tasks.create_call(records, now, job_prefix, tasks_per_job)
        outcome = self._fire(keys=create_keys, args=[*args, json.dumps(claim)])
        if outcome[0] == b"claimed":
            return Fired("")
        _, kind, ids, waits, message = outcome
        after = {int(i): wait.decode().split() for i, wait in zip(ids, waits, strict=True) if wait}
        return Fired(kind.decode(), self.tasks.records.get_many(ids), after, message.decode())
