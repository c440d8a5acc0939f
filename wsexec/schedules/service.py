"""Schedule operations behind the thin views: the template checked as POST /tasks would check it, next_run by Redis's
clock, the revision that makes a fire prepared from old fields fail."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from wsexec import context
from wsexec.exceptions import Forbidden, Unprocessable
from wsexec.schedules.schemas import ScheduleSchema
from wsexec.schedules.template import task_item, timetable
from wsexec.tasks import expand

INPUT_FIELDS = tuple(name for name, f in ScheduleSchema._declared_fields.items() if not f.dump_only)
TIMING_FIELDS = ("cron", "interval", "timezone", "enabled")


def check_template(schedule: dict[str, Any]) -> None:
    """Refuse a template POST /tasks would refuse now (unknown instance, no ACTIVE instance with the tag, a login user
    the instance does not allow, too long a script or timeout): 422 or 403, under "template"."""
    try:
        expand.records(context.store(), context.settings(), 0, task_item(schedule), False)
    except Unprocessable as error:
        raise Unprocessable(f"template: {error.message}", {"template": error.detail}) from None
    except Forbidden as error:
        raise Forbidden(f"template: {error.message}", error.detail) from None


def timing(schedule: dict[str, Any], now: float, anchor: int | None = None) -> dict[str, Any]:
    """next_run by Redis's clock (None while disabled) and an interval's anchor (kept when given, else now)."""
    fields: dict[str, Any] = {"anchor": int(now) if anchor is None else anchor} if schedule.get("interval") else {
        "anchor": None}
    fields["next_run"] = timetable({**schedule, **fields}).next_after(int(now)) if schedule["enabled"] else None
    return fields


def create(fields: dict[str, Any], user: str) -> dict[str, Any]:
    check_template(fields)
    store = context.store().schedules
    now = store.now()
    record = {**fields, **timing(fields, now), "created_by": user, "created_at": now, "updated_by": user,
              "updated_at": now}
    return store.create(record)


def update(schedule_id: int, changes: dict[str, Any], user: str) -> dict[str, Any]:
    """The fields given, checked whole with the stored ones; next_run again when the timing changed."""
    store = context.store().schedules
    stored = store.get(schedule_id)
    merged = {name: stored[name] for name in INPUT_FIELDS if name in stored} | changes
    for one, other in (("cron", "interval"), ("interval", "cron")):
        if one in changes:
            merged.pop(other, None)
    try:
        schedule = ScheduleSchema().load(merged)
    except ValidationError as error:
        raise Unprocessable("validation failed", error.messages) from None
    if "template" in changes:
        check_template(schedule)
    now = store.now()
    written = {name: schedule.get(name) for name in INPUT_FIELDS if name in changes or name in ("cron", "interval")}
    if any(name in changes for name in TIMING_FIELDS):
        same_interval = schedule.get("interval") is not None and schedule.get("interval") == stored.get("interval")
        written |= timing(schedule, now, stored.get("anchor") if same_interval else None)
    return store.update(schedule_id, {**written, "updated_by": user, "updated_at": now})
