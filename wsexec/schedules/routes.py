"""/wsexec/schedules: recurring tasks (admins manage them, viewers read them); the workers fire them."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from wsexec import audit, context
from wsexec.auth import current_user
from wsexec.blueprint import Blueprint
from wsexec.pagination import PageArgs, envelope, page_schema
from wsexec.roles import Role
from wsexec.schedules import service
from wsexec.schedules.schemas import ScheduleSchema, ScheduleUpdateSchema
from wsexec.tasks import environment

blp = Blueprint(
    "schedules", __name__, read_role=Role.VIEWER, write_role=Role.ADMIN,
    description="Recurring tasks: a cron expression in a time zone, or an interval, and the task each fire creates. "
                "Every worker runs a scheduler; each fire time is claimed once in Redis, so it runs exactly once "
                "whatever the number of workers. Tasks it creates carry its id in `schedule` (GET "
                "/wsexec/tasks?schedule=ID).",
)


def audited(schedule: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a change: the fields given, the template's script by its length only and its env
    by its names."""
    detail = dict(changes)
    if "template" in detail:
        template = environment.redacted(detail["template"])
        template["script"] = f"{len(str(template.get('script', '')).encode())} bytes"
        detail["template"] = template
    return detail | {"next_run": schedule.get("next_run")}


@blp.route("")
class Schedules(MethodView):
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, page_schema(ScheduleSchema))
    def get(self, page: int, page_size: int) -> dict[str, Any]:
        """The schedules, newest first, with their next_run and how their last fire went."""
        count, schedules = context.store().schedules.page(page, page_size)
        return envelope(count, schedules, page, page_size)

    @blp.arguments(ScheduleSchema)
    @blp.response(201, ScheduleSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    def post(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a schedule (422 for a template POST /tasks would refuse, a bad cron expression or time zone)."""
        schedule = service.create(fields, current_user().name)
        audit.record("schedule.create", f"schedule:{schedule['id']}", audited(schedule, fields))
        return schedule


@blp.route("/<int:schedule_id>")
class Schedule(MethodView):
    @blp.response(200, ScheduleSchema)
    def get(self, schedule_id: int) -> dict[str, Any]:
        """One schedule."""
        return context.store().schedules.get(schedule_id)

    @blp.arguments(ScheduleUpdateSchema)
    @blp.response(200, ScheduleSchema)
    @blp.alt_response(403, response="FORBIDDEN")
    def patch(self, changes: dict[str, Any], schedule_id: int) -> dict[str, Any]:
        """Change any of its fields (PUT does the same); next_run follows a new timing, enabling starts from now."""
        schedule = service.update(schedule_id, changes, current_user().name)
        audit.record("schedule.update", f"schedule:{schedule_id}", audited(schedule, changes))
        return schedule

    put = patch

    @blp.response(204)
    def delete(self, schedule_id: int) -> None:
        """Remove a schedule; the tasks it made stay."""
        context.store().schedules.delete(schedule_id)
        audit.record("schedule.delete", f"schedule:{schedule_id}")
