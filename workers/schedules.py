"""The scheduler loop of every worker process (WSEXEC_SCHEDULER=1): just after each second of Redis's clock, the
schedules whose next_run has come are fired, each through one atomic claim (wsexec.store.schedules), so however many
workers on however many machines run the loop, each fire time is handled once; a worker that dies holds nothing (no
lock to expire), the others go on.

What a fire is (the latest due fire time, runs within WSEXEC_SCHEDULE_GRACE of its time or when the schedule catches
up, the earlier ones are missed) is wsexec.cron.due's rule; the tasks are made as POST /tasks makes them
(wsexec.tasks.expand) and queued with RQ once the claim has stored them.
"""

from __future__ import annotations

import logging
from typing import Any

from rq import Queue

from workers.loop import Loop
from wsexec import jobs
from wsexec.config import Settings
from wsexec.cron import Due, due
from wsexec.exceptions import NotFound, WsexecError
from wsexec.schedules.template import created_by, task_item, timetable
from wsexec.store import Store
from wsexec.store.schedules import Fired
from wsexec.tasks import expand

log = logging.getLogger(__name__)

TICK_MARGIN = 0.005  # seconds past each whole second of Redis's clock that a tick comes (its fires are due by then)
AUDIT_USER = "scheduler"


class ScheduleLoop(Loop):
    name = "schedules"

    def __init__(self, store: Store, queue: Queue, settings: Settings, name: str) -> None:
        super().__init__()
        self.store, self.queue, self.settings, self.worker = store, queue, settings, name

    def step(self) -> float:
        """A tick, then a pause until just after the next second of Redis's clock."""
        return 1.0 - self.tick() % 1.0 + TICK_MARGIN

    def tick(self, now: float | None = None) -> float:
        """Fire every schedule due at `now` (default: Redis's clock); the time it went by."""
        now = self.store.schedules.now() if now is None else now
        for schedule_id in self.store.schedules.due(now):
            self.fire(schedule_id, now)
        return now

    def fire(self, schedule_id: int, now: float) -> Fired | None:
        """One due schedule: decide, claim and store in one step, then queue what it created."""
        try:
            schedule = self.store.schedules.get(schedule_id)
        except NotFound:  # deleted between its record and its entry in the due zset
            self.store.schedules.forget(schedule_id)
            return None
        if schedule.get("next_run") is None or schedule["next_run"] > now:  # fired (or disabled) since due() read it
            return None
        decision = due(timetable(schedule), schedule["next_run"], now, self.settings.schedule_grace,
                       schedule.get("catch_up", False))
        records, error = [], ""
        if decision.fire is not None:
            try:
                records = self._records(schedule, decision.fire)
            except WsexecError as exc:  # as POST /tasks would answer now: the instance went, the user is refused...
                error = exc.message
        audit_keep = (self.settings.audit_max, self.settings.audit_max_bytes)
        fired = self.store.schedules.fire(schedule, decision, records, error, self._audit(schedule, decision, now),
                                          audit_keep, now, jobs.JOB_PREFIX, self.settings.tasks_per_job)
        if fired.tasks:
            self._enqueue(fired, now)
        if fired.outcome in ("error", "missed"):
            log.warning("schedule %d: %s%s", schedule_id, fired.outcome, f" ({fired.error})" if fired.error else "")
        return fired

    def _records(self, schedule: dict[str, Any], fire: int) -> list[dict[str, Any]]:
        """Its template's tasks now, checked as POST /tasks checks them, counted against WSEXEC_USER_TASKS_MAX."""
        records = expand.records(self.store, self.settings, 0, task_item(schedule), False)
        by = created_by(schedule["id"])
        active, limit = self.store.tasks.active_count(by), self.settings.user_tasks_max
        if active + len(records) > limit:
            raise WsexecError(f"{active} of its tasks are queued or running; {len(records)} more would exceed "
                              f"WSEXEC_USER_TASKS_MAX ({limit})")
        return [{**record, "created_by": by, "schedule": schedule["id"], "fire_time": fire} for record in records]

    def _enqueue(self, fired: Fired, now: float) -> None:
        """Queue the stored tasks; those RQ refuses end ABORT saying so (they stay visible: a fire is not re-run)."""
        try:
            jobs.enqueue(self.queue, expand.plans(fired.tasks, fired.after, self.settings.worker_threads), now,
                         self.store)
        except Exception as exc:
            log.exception("schedule tasks %s could not be queued", [task["id"] for task in fired.tasks])
            for task in fired.tasks:
                self.store.abort_queued(task["id"], f"never queued: RQ refused its job ({exc})")

    def _audit(self, schedule: dict[str, Any], decision: Due, now: float) -> dict[str, Any]:
        """The fire's audit entry; the claim adds its outcome, tasks and error and writes it in the same step."""
        return {"time": now, "user": AUDIT_USER, "role": "admin", "action": "schedule.fire",
                "target": f"schedule:{schedule['id']}", "ip": None,
                "detail": {"fire_time": decision.fire, "latest": decision.latest, "missed": decision.missed,
                           "worker": self.worker}}
