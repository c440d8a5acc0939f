"""Task fields as the API reads and writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from wsexec import notify, validators
from wsexec.schemas import ApiSchema
from wsexec.store import TaskState
from wsexec.tasks import environment

RESULT_FIELDS = ("stdout", "stderr", "rc", "start", "end", "error", "worker", "stdout_dropped", "stderr_dropped")
FIXED_FIELDS = ("id", "instance", "script", "user", "timeout", "scheduled_at", "run_after", "created_by", "target",
                "notify", "env", "run_as")
KINDS = ("script", "upload", "fetch")


FOLLOW_TIMEOUT_MAX = 86400
MAX_OFFSET = 2**63 - 1  # Redis's GETRANGE answers an error beyond a signed 64-bit offset
WHEN = [{"type": "number"}, {"type": "string", "format": "date-time"}]  # what Timestamp accepts, documented


class Timestamp(fields.Field):
    """A unix timestamp, or an ISO 8601 date-time with its UTC offset."""

    INVALID = "expected a unix timestamp or an ISO 8601 date-time, between 1970 and 9999"
    LAST = datetime(9999, 12, 31, tzinfo=UTC).timestamp()  # RQ's scheduler turns it back into a datetime

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float:
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValidationError(self.INVALID) from exc
            if parsed.tzinfo is None:
                raise ValidationError("give the UTC offset, e.g. 2026-01-01T03:00:00+00:00")
            value = parsed
        try:
            when = value.timestamp() if isinstance(value, datetime) else float(value)
        except (TypeError, ValueError, OverflowError):
            when = None
        if isinstance(value, bool) or when is None or not 0 <= when <= self.LAST:  # also refuses NaN
            raise ValidationError(self.INVALID)
        return when

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> float | None:
        return value


def _written(data: Any) -> dict[str, list[str]]:
    """Fields a new task may not set, with why."""
    if not isinstance(data, dict):
        return {}
    written = {f: ["read-only: written by the worker that runs the task"] for f in RESULT_FIELDS if f in data}
    if "state" in data:
        written["state"] = ["a new task is always INIT; cancel with PATCH {\"state\": \"ABORT\"}"]
    return written


def _env_name(name: str) -> None:
    problem = environment.name_problem(name)
    if problem:
        raise ValidationError(problem)


def _env_value(value: str) -> None:
    problem = environment.value_problem(value)
    if problem:
        raise ValidationError(problem)


def env_field(**kwargs: Any) -> fields.Dict:
    """`env` as POST takes it (tasks, fixed commands, schedule templates): written, never read back."""
    return fields.Dict(
        keys=fields.String(validate=_env_name), values=fields.String(validate=_env_value),
        validate=validate.Length(max=environment.COUNT_MAX), load_only=True, metadata={
            "description": "exported to the script (names: shell variables, not PATH, IFS, HOME, USER, LD_*, SUDO_*, "
                           f"WSEXEC_* and the like; at most {environment.COUNT_MAX}, each value at most "
                           f"{environment.VALUE_MAX} bytes, no NUL); values arrive byte for byte, never expanded, and "
                           "are never shown again: the task shows env_names",
            "example": {"RELEASE": "2026.12", "DB_PASSWORD": "s3cret"}}, **kwargs)


def run_as_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=validators.posix_user, metadata={
        "description": "run the script as this user through `sudo -n -u USER` on the host (a NOPASSWD sudo rule for "
                       "the login user is needed: else the task ends ABORT at once, saying so)"}, **kwargs)


class TargetSchema(Schema):
    tag = fields.String(required=True, validate=validators.tag)


class NotifySchema(Schema):
    """A webhook for the task's end (a fan-out's: once, when all its tasks have ended)."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=notify.URL_MAX), metadata={
        "description": "http(s) URL under a prefix of WSEXEC_WEBHOOK_ALLOW (else 422); POSTed JSON signed with "
                       f"HMAC-SHA256 ({notify.SIGNATURE_HEADER}: sha256=<hex> over '<{notify.TIMESTAMP_HEADER}>.<body>'"
                       f"), {notify.DELIVERY_HEADER} the same on retries; redirects are not followed",
        "example": "https://hooks.example.com/wsexec"})
    on = fields.List(fields.String(validate=validate.OneOf(notify.OUTCOMES)), load_default=list(notify.OUTCOMES),
                     validate=validate.Length(min=1), metadata={
                         "description": "which ends: DONE (rc 0), FAILED (DONE with rc != 0), ABORT; default all"})


class TaskSchema(ApiSchema):
    """A task as stored and shown; the load side is what POST accepts."""

    class Meta:
        openapi = {"oneOf": [{"required": ["instance"]}, {"required": ["target"]}]}  # one_destination, documented

    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    tag = fields.String(required=True, validate=validators.tag)
    instance = validators.Integer(validate=validate.Range(min=1))
    target = fields.Nested(TargetSchema, load_only=True, metadata={"description": "fan out to ACTIVE instances"})
    script = fields.String(required=True, validate=[validate.Length(min=1), validators.script], metadata={
        "description": "run by /bin/sh as written: UTF-8, at most WSEXEC_SCRIPT_MAX bytes, no NUL byte (else 422)",
        "pattern": "^[^\\u0000]+$"})
    user = fields.String(validate=validators.posix_user, metadata={"description": "default: the instance's user"})
    timeout = validators.Integer(validate=validate.Range(min=1), metadata={"description": "seconds"})
    scheduled_at = Timestamp(allow_none=True, metadata={"description": "unix time or ISO 8601", "anyOf": WHEN})
    run_after = fields.List(validators.Integer(validate=validate.Range(min=1)), validate=validate.Length(max=100))
    notify = fields.Nested(NotifySchema)
    env = env_field()
    run_as = run_as_field()
    env_names = fields.Function(environment.shown_names, dump_only=True, metadata={
        "type": "array", "items": {"type": "string"}, "description": "the names of its env (never the values)"})
    state = fields.String(dump_only=True, metadata={"enum": [s.value for s in TaskState]})
    created_by = fields.String(dump_only=True)
    created_at = fields.Float(dump_only=True)
    start = fields.Float(dump_only=True)
    end = fields.Float(dump_only=True)
    rc = fields.Integer(dump_only=True, allow_none=True)
    error = fields.String(dump_only=True)
    stdout = fields.String(dump_only=True)
    stderr = fields.String(dump_only=True)
    stdout_dropped = fields.Integer(dump_only=True, metadata={"description": "bytes beyond the cap, not kept"})
    stderr_dropped = fields.Integer(dump_only=True)
    batch = fields.String(dump_only=True)
    job = fields.String(dump_only=True, metadata={"description": "the RQ job that runs it"})
    worker = fields.String(dump_only=True)
    schedule = fields.Integer(dump_only=True, metadata={"description": "the schedule that created it, if one did"})
    fire_time = fields.Integer(dump_only=True, metadata={"description": "the schedule's fire time it was created for"})
    # what kind of task it is; uploads and fetches (POST /wsexec/files, /wsexec/files/fetch) also have these
    kind = fields.String(dump_only=True, dump_default="script", metadata={"enum": list(KINDS)})
    path = fields.String(dump_only=True, metadata={"description": "upload, fetch: the file on the instance"})
    mode = fields.String(dump_only=True, metadata={"description": "upload: the file's mode, octal"})
    overwrite = fields.Boolean(dump_only=True, metadata={"description": "upload: may replace an existing file"})
    size = fields.Integer(dump_only=True, metadata={"description": "upload, fetch: the file's size in bytes"})
    sha256 = fields.String(dump_only=True, metadata={"description": "upload, fetch: the file's SHA-256, hex"})
    waiting = fields.String(dump_only=True, metadata={
        "description": "why an INIT task has not started: 'instance N at max_concurrent M' (it starts when one ends)"})

    @pre_load(pass_collection=True)
    def refuse_result_fields(self, data: Any, many: bool, **kwargs: Any) -> Any:
        """Per item, keyed by index for an array (marshmallow loses the index when a per-item pre_load raises)."""
        if many and isinstance(data, list):
            errors: dict[Any, Any] = {index: written for index, item in enumerate(data) if (written := _written(item))}
        else:
            errors = _written(data)
        if errors:
            raise ValidationError(errors)
        return data

    @validates_schema
    def one_destination(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("instance" in data) == ("target" in data):
            raise ValidationError("give either instance (an id) or target ({\"tag\": ...})", "instance")


class TaskUpdateSchema(Schema):
    """PUT/PATCH: rename, retag, or {"state": "ABORT"} to cancel."""

    name = fields.String(validate=validate.Length(min=1, max=200))
    tag = fields.String(validate=validators.tag)
    state = fields.String(validate=validate.OneOf([TaskState.ABORT.value], error="only ABORT can be set (cancel)"))

    @pre_load
    def refuse_other_fields(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict):
            errors = {f: ["read-only: written by the worker that runs the task"] for f in RESULT_FIELDS if f in data}
            errors.update({f: ["cannot change after creation"] for f in FIXED_FIELDS if f in data})
            if errors:
                raise ValidationError(errors)
        return data


class OutputArgs(Schema):
    stdout_offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    stderr_offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    follow = fields.Boolean(load_default=False, metadata={
        "description": "stream the output from the offsets on as it arrives, until the task ends: Server-Sent "
                       "Events with `Accept: text/event-stream`, else text/plain"})
    timeout = validators.Integer(validate=validate.Range(min=0, max=FOLLOW_TIMEOUT_MAX), metadata={
        "description": "with follow: end the stream after this many seconds even if the task runs on (0: only the "
                       "output already there); default: until the task ends"})


OUTPUT_LAST_EVENT_ID = {
    "in": "header", "name": "Last-Event-ID", "required": False,
    "schema": {"type": "string", "pattern": r"^\d{1,19}\.\d{1,19}$"},
    "description": "with follow: resume after this event id (stdout and stderr byte offsets; overrides them)",
}
OUTPUT_STREAMS = {  # ?follow=true's answers, next to the JSON one
    "text/event-stream": {"schema": {
        "type": "object",
        "description": "`stdout` and `stderr` events (data: the new text, one data line per line), then one `end` "
                       "event (data: JSON with state, rc, error); every id is `<stdout offset>.<stderr offset>`, the "
                       "bytes sent so far, for Last-Event-ID; `error` if Redis is lost; `: keepalive` comments while "
                       "idle",
        "properties": {"event": {"type": "string", "enum": ["stdout", "stderr", "end", "error"]},
                       "id": {"type": "string"}, "data": {"type": "string"}, "retry": {"type": "integer"}},
        "example": {"event": "end", "id": "12.0", "data": '{"state":"DONE","rc":0,"error":null}'},
    }},
    "text/plain": {"schema": {"type": "string", "description": "the raw output bytes as they arrive, until the task "
                                                               "ends (each stream in order; see README)"}},
}


class OutputSchema(Schema):
    id = fields.Integer()
    state = fields.String()
    finished = fields.Boolean()
    stdout = fields.String(metadata={"description": "new output since stdout_offset"})
    stderr = fields.String()
    stdout_offset = fields.Integer(metadata={"description": "pass back as stdout_offset for what follows"})
    stderr_offset = fields.Integer()
    rc = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)


class TaskFilterSchema(Schema):
    state = fields.String(validate=validate.OneOf([s.value for s in TaskState]))
    instance = validators.Integer()
    tag = fields.String()
    name = fields.String()
    batch = fields.String()
    kind = fields.String(validate=validate.OneOf(KINDS))
    schedule = validators.Integer()
