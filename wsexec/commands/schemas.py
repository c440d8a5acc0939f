"""What POST /wsexec/commands/{name} accepts: the instance (and a login), never a script."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from wsexec import validators
from wsexec.tasks.schemas import env_field, run_as_field

COMMANDS_SCHEMA = {  # GET /wsexec/commands: a plain object, name -> command line
    "type": "object",
    "additionalProperties": {"type": "string"},
    "example": {"uptime": "uptime", "df": "df -P"},
}
OUTPUT_HEADERS = {
    "X-Wsexec-Task": {"schema": {"type": "integer"}, "description": "the task that ran the command"},
    "X-Wsexec-Rc": {"schema": {"type": "integer"}, "description": "the command's exit status"},
}


class CommandRunSchema(Schema):
    """Only these fields: the script is the configured command line (unknown fields are refused, 422)."""

    instance = validators.Integer(required=True, validate=validate.Range(min=1))
    user = fields.String(validate=validators.posix_user, metadata={"description": "default: the instance's user"})
    # the caller's, as on a task: whoever may run a command may POST /tasks with any script and these same fields
    env = env_field()
    run_as = run_as_field()
