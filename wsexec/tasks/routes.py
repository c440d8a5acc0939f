"""/wsexec/tasks: create, follow, rename, cancel and delete tasks (operator to change them)."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import ValidationError

from wsexec import audit, context, quotas, sse
from wsexec.auth import current_user
from wsexec.blueprint import Blueprint
from wsexec.exceptions import Unprocessable
from wsexec.idempotency import idempotent
from wsexec.pagination import PageArgs, envelope, page_schema
from wsexec.roles import Role
from wsexec.tasks import follow as follow_output
from wsexec.tasks import service
from wsexec.tasks.schemas import (
    OUTPUT_LAST_EVENT_ID,
    OUTPUT_STREAMS,
    OutputArgs,
    OutputSchema,
    TaskFilterSchema,
    TaskSchema,
    TaskUpdateSchema,
)
from wsexec.waits import WAIT_ARGS

blp = Blueprint("tasks", __name__, write_role=Role.OPERATOR, description="Scripts to run on instances")

MAX_TASKS_PER_REQUEST = 1000
# made once (they keep no state between calls): building one per request was ~10% of a POST's CPU
TASK_SCHEMAS = {False: TaskSchema(), True: TaskSchema(many=True)}
ONE_OR_MANY = {  # POST's body and answer, for the OpenAPI document
    "oneOf": [TaskSchema, {"type": "array", "items": TaskSchema, "minItems": 1, "maxItems": MAX_TASKS_PER_REQUEST}]
}


def load_new_tasks(body: Any) -> list[dict[str, Any]]:
    """One task object or an array of them; an invalid item refuses the whole request, naming its index."""
    many = isinstance(body, list)
    if not isinstance(body, (dict, list)) or (many and not body):
        raise Unprocessable("expected a task object or a non-empty array of them")
    if many and len(body) > MAX_TASKS_PER_REQUEST:
        raise Unprocessable(f"at most {MAX_TASKS_PER_REQUEST} tasks per request")
    try:
        loaded = TASK_SCHEMAS[many].load(body)
    except ValidationError as error:
        if many:
            first = min(error.messages)
            raise Unprocessable(f"item {first} is invalid; nothing was created", error.messages) from None
        raise Unprocessable("validation failed", error.messages) from None
    return loaded if many else [loaded]


def creation_audit(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [task["id"] for task in tasks]
    batches = sorted({task["batch"] for task in tasks if task.get("batch")})
    return audit.entry("task.create", audit.target("task", ids), {"ids": ids, "batches": batches})


@blp.route("")
class Tasks(MethodView):
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.arguments(TaskFilterSchema, location="query", as_kwargs=True)
    @blp.response(200, page_schema(TaskSchema))
    def get(self, page: int, page_size: int, **filters: Any) -> dict[str, Any]:
        """List tasks, newest first (without their output: GET one task or its /output for that)."""
        count, tasks = context.store().list_tasks(filters, page, page_size)
        return envelope(count, tasks, page, page_size)

    @idempotent
    @blp.arguments(WAIT_ARGS, location="query", as_kwargs=True)
    @blp.doc(requestBody={"content": {"application/json": {"schema": ONE_OR_MANY}}, "required": True})
    @blp.alt_response(201, schema=ONE_OR_MANY, description="the task; an array for an array or a target tag; with "
                                                            "?wait, as they are once finished or the wait is over, "
                                                            "output included")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, wait: int | None = None) -> Any:
        """Create and enqueue a task, an array of tasks (all or nothing), or one task per instance of a tag."""
        body = request.get_json()
        with quotas.WaitSlot(wait) as slot:
            try:
                items = load_new_tasks(body)
            except Unprocessable:
                slot.take()  # a 429 before the 422: the slot is asked for first
                raise
            created = service.add(items, current_user().name, creation_audit, slot)
            tasks = created.tasks
            if wait is not None:
                tasks = service.wait_finished([task["id"] for task in tasks], wait, output=True,
                                              created=created.position, slot=slot)
        many = isinstance(body, list) or "target" in body
        return TASK_SCHEMAS[many].dump(tasks if many else tasks[0]), 201


@blp.route("/<int:task_id>")
class Task(MethodView):
    @blp.arguments(WAIT_ARGS, location="query", as_kwargs=True)
    @blp.response(200, TaskSchema)
    def get(self, task_id: int, wait: int | None = None) -> dict[str, Any]:
        """One task with its output; with ?wait=SECONDS, once it has finished (or as it is when the wait is over)."""
        if wait is None:
            return service.task_with_output(task_id)
        context.store().get_task(task_id)  # 404 before a wait slot is taken
        with quotas.wait_slot(wait) as slot:
            return service.wait_finished([task_id], wait, output=True, slot=slot)[0]

    @blp.arguments(TaskUpdateSchema)
    @blp.response(200, TaskSchema)
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, changes: dict[str, Any], task_id: int) -> dict[str, Any]:
        """Rename or retag a task, or cancel it with {"state": "ABORT"} (PUT does the same)."""
        store = context.store()
        if changes.pop("state", None):
            service.cancel(task_id, current_user().name)
            audit.record("task.cancel", f"task:{task_id}")
        if changes:
            store.update_task(task_id, changes)
            audit.record("task.update", f"task:{task_id}", changes)
        return service.task_with_output(task_id)

    put = patch

    @blp.response(204)
    @blp.alt_response(409, response="CONFLICT")
    def delete(self, task_id: int) -> None:
        """Remove a finished task and its output (409 while INIT or CURRENT)."""
        context.store().delete_task(task_id)
        audit.record("task.delete", f"task:{task_id}")


@blp.route("/<int:task_id>/output")
class Output(MethodView):
    @blp.arguments(OutputArgs, location="query", as_kwargs=True)
    @blp.doc(parameters=[OUTPUT_LAST_EVENT_ID], responses={200: {"content": OUTPUT_STREAMS}})
    @blp.response(200, OutputSchema, description="the output since the offsets (JSON); with follow, a stream")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self, task_id: int, stdout_offset: int, stderr_offset: int, follow: bool,
            timeout: int | None = None) -> Any:
        """The output added since the given byte offsets; with ?follow=true, streamed live until the task ends."""
        if not follow:
            return service.output_since(task_id, stdout_offset, stderr_offset)
        context.store().get_task(task_id)  # 404 before the stream starts
        offsets = service.resume_offsets(request.headers.get("Last-Event-ID"), stdout_offset, stderr_offset)
        args = (context.store(), task_id, offsets, context.settings().events_heartbeat, timeout)
        if request.accept_mimetypes["text/event-stream"] > request.accept_mimetypes["text/plain"]:
            return sse.respond(follow_output.events(*args), "text/event-stream", context.streams())
        return sse.respond(follow_output.text(*args), "text/plain", context.streams())
