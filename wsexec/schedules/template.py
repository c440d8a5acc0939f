"""What a schedule's fire makes and when it next fires, without Flask: the web side and workers/schedules.py agree."""

from __future__ import annotations

from typing import Any

from wsexec.cron import Cron, Every, Timetable

DEFAULT_TAG = "schedule"  # the tasks' tag when the template gives none


def timetable(schedule: dict[str, Any]) -> Timetable:
    """Its cron expression in its zone, or its interval from its anchor."""
    if schedule.get("cron"):
        return Cron.parse(schedule["cron"], schedule.get("timezone") or "UTC")
    return Every(int(schedule["interval"]), int(schedule["anchor"]))


def task_item(schedule: dict[str, Any]) -> dict[str, Any]:
    """The POST /tasks item its template stands for: named after the schedule unless the template names it."""
    template = schedule["template"]
    return {**template, "name": template.get("name") or schedule["name"], "tag": template.get("tag") or DEFAULT_TAG}


def created_by(schedule_id: int) -> str:
    """Who its tasks say made them (and whose WSEXEC_USER_TASKS_MAX they count against)."""
    return f"schedule:{schedule_id}"
