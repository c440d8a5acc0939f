"""GET /wsexec/batches/{id}: how a fan-out (POST /wsexec/tasks with "target") is doing, in one call."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields

from wsexec import context, quotas
from wsexec.blueprint import Blueprint
from wsexec.exceptions import NotFound
from wsexec.store import RUNNING_STATES, TaskState
from wsexec.tasks import service
from wsexec.waits import WaitArgs

blp = Blueprint("batches", __name__, description="Tasks created together by a fan-out to a tag")


class BatchSchema(Schema):
    id = fields.String()
    total = fields.Integer(metadata={"description": "tasks in the batch"})
    finished = fields.Boolean(metadata={"description": "no task is INIT or CURRENT any more"})
    states = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "state -> number of tasks"}
    )
    rc = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(allow_none=True),
        metadata={"description": "instance id -> its task's exit code, null until it ends (or if it was aborted)"},
    )
    tasks = fields.List(fields.Integer(), metadata={"description": "the task ids, oldest first"})


def summary(batch: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    states = {state.value: 0 for state in TaskState}
    for task in tasks:
        states[task["state"]] += 1
    return {
        "id": batch,
        "total": len(tasks),
        "finished": not any(states[s.value] for s in RUNNING_STATES),
        "states": states,
        "rc": {str(task["instance"]): task.get("rc") for task in tasks},
        "tasks": [task["id"] for task in tasks],
    }


@blp.route("/<batch_id>")
class Batch(MethodView):
    @blp.arguments(WaitArgs, location="query", as_kwargs=True)
    @blp.response(200, BatchSchema)
    def get(self, batch_id: str, wait: int | None = None) -> dict[str, Any]:
        """Counts per state, each instance's exit code, and the task ids of a batch; ?wait=SECONDS: once finished."""
        tasks = context.store().batch_tasks(batch_id)
        if not tasks:
            raise NotFound(f"batch {batch_id} not found")
        if wait is not None:
            with quotas.wait_slot(wait):
                tasks = service.wait_finished([task["id"] for task in tasks], wait)
        return summary(batch_id, tasks)
