"""/wsexec/commands: the fixed, allow-listed commands (operator to run them), for cron jobs and monitors."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify
from flask.views import MethodView

from wsexec import context, quotas
from wsexec.auth import current_user
from wsexec.blueprint import Blueprint
from wsexec.commands import service
from wsexec.commands.schemas import COMMANDS_SCHEMA, OUTPUT_HEADERS, CommandRunSchema
from wsexec.idempotency import idempotent
from wsexec.roles import Role
from wsexec.tasks.schemas import TaskSchema
from wsexec.waits import WaitArgs

blp = Blueprint("commands", __name__, write_role=Role.OPERATOR,
                description="Fixed commands, configured in WSEXEC_COMMANDS")


@blp.route("")
class Commands(MethodView):
    @blp.response(200, COMMANDS_SCHEMA)
    def get(self) -> Response:
        """The commands that can run: name -> command line."""
        return jsonify(context.settings().commands)


@blp.route("/<name>")
class Command(MethodView):
    @idempotent
    @blp.arguments(CommandRunSchema)
    @blp.arguments(WaitArgs, location="query", as_kwargs=True)
    @blp.response(202, TaskSchema, description="the task, queued (without ?wait)")
    @blp.alt_response(200, schema={"type": "string"}, content_type="text/plain", headers=OUTPUT_HEADERS, success=True,
                      description="with ?wait: the command's stdout once it is done (its rc in X-Wsexec-Rc)")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(502, response="BAD_GATEWAY")
    @blp.alt_response(504, response="GATEWAY_TIMEOUT")
    def post(self, body: dict[str, Any], name: str, wait: int | None = None) -> Any:
        """Run a configured command on an instance; with ?wait=SECONDS answer its output as text/plain."""
        with quotas.wait_slot(wait):
            options = {key: body[key] for key in ("env", "run_as") if key in body}
            task = service.start(name, service.command_line(name), body["instance"], body.get("user"),
                                 current_user().name, **options)
            if wait is None:
                return task, 202
            task = service.finished(task["id"], wait)
        headers = {"X-Wsexec-Task": str(task["id"]), "X-Wsexec-Rc": str(task.get("rc"))}
        return current_app.response_class(service.stdout(task["id"]), mimetype="text/plain", headers=headers)
