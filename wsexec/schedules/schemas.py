"""Schedule fields as the API reads and writes them; the template is a POST /tasks body, as the tasks' schema has it."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_dump, pre_load, validate, validates_schema

from wsexec import validators
from wsexec.cron import Cron, CronError, zone
from wsexec.schedules.template import DEFAULT_TAG
from wsexec.schemas import ApiSchema
from wsexec.tasks.schemas import TargetSchema, TaskSchema

OVERLAP = ("skip", "allow")
OUTCOMES = ("created", "skipped", "error", "missed")
INTERVAL_MAX = 366 * 86400
NOT_IN_TEMPLATE = ("scheduled_at", "run_after")  # a fire runs at its time, depending on nothing


class TemplateSchema(TaskSchema):
    """What each fire creates, as POST /tasks takes it (instance or target, script, user, timeout...); name and tag
    may be left out (then the schedule's name, and the tag 'schedule')."""

    class Meta(TaskSchema.Meta):
        exclude = (*NOT_IN_TEMPLATE, *(name for name, f in TaskSchema._declared_fields.items()
                                       if f.dump_only and name not in ("name", "tag", "env_names")))

    name = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "default: the "
                                                                                            "schedule's name"})
    tag = fields.String(validate=validators.tag, metadata={"description": f"default: {DEFAULT_TAG!r}"})
    target = fields.Nested(TargetSchema, metadata={"description": "fan out to the ACTIVE instances at each fire"})

    @post_dump
    def fill_nulls(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Only the fields it has: instance or target, as given (which oneOf documents)."""
        return {name: value for name, value in data.items() if value is not None}


class ScheduleSchema(ApiSchema):
    """A schedule as stored and shown; the load side is what POST accepts."""

    class Meta:
        openapi = {"oneOf": [{"required": ["cron"]}, {"required": ["interval"]}]}  # one_timing, documented

    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    cron = fields.String(allow_none=True, validate=validate.Length(min=1, max=200), metadata={
        "description": "5 fields (minute hour day-of-month month day-of-week) or 6 (second first), or @hourly, "
                       "@daily, @weekly, @monthly, @yearly; evaluated in `timezone` (see the README for DST)",
        "example": "30 2 * * *"})
    interval = validators.Integer(allow_none=True, validate=validate.Range(min=1, max=INTERVAL_MAX), metadata={
        "description": "instead of cron: every this many seconds of elapsed time, from its creation"})
    timezone = fields.String(load_default="UTC", validate=validate.Length(min=1, max=64), metadata={
        "description": "IANA name, e.g. Europe/Berlin", "example": "Europe/Berlin"})
    template = fields.Nested(TemplateSchema, required=True)
    enabled = fields.Boolean(load_default=True)
    overlap = fields.String(load_default="skip", validate=validate.OneOf(OVERLAP), metadata={
        "description": "skip: a fire while tasks of this schedule are INIT or CURRENT makes none; allow: it does"})
    catch_up = fields.Boolean(load_default=False, metadata={
        "description": "after the schedulers were away, run the latest missed fire once (never the others)"})
    next_run = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "unix time; null: disabled"})
    last_run = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "the last fire time handled"})
    last_outcome = fields.String(dump_only=True, allow_none=True, metadata={"enum": [*OUTCOMES, None]})
    last_error = fields.String(dump_only=True, allow_none=True, metadata={
        "description": "why the last fire made no tasks (skipped, instance gone, login user refused...)"})
    last_tasks = fields.List(fields.Integer(), dump_only=True, allow_none=True, metadata={
        "description": "the tasks the last fire that made some made (GET /wsexec/tasks?schedule=ID lists all)"})
    missed = fields.Integer(dump_only=True, dump_default=0, metadata={
        "description": "fire times not run because no scheduler ran then (at least this many)"})
    created_by = fields.String(dump_only=True)
    created_at = fields.Float(dump_only=True)
    updated_by = fields.String(dump_only=True)
    updated_at = fields.Float(dump_only=True)

    @post_dump
    def fill_nulls(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Every field, null when unset, except the timing it does not use: cron or interval (which oneOf documents)."""
        data = super().fill_nulls(data, **kwargs)
        return {name: value for name, value in data.items() if name not in ("cron", "interval") or value is not None}

    @pre_load
    def null_is_absent(self, data: Any, **kwargs: Any) -> Any:
        """cron or interval null, as GET shows the one not used, is the same as not given (a GET body PUT back)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (k in ("cron", "interval") and v is None)}
        return data

    @validates_schema
    def one_timing(self, data: dict[str, Any], **kwargs: Any) -> None:
        """cron or interval, and a cron expression that parses in a zone that exists."""
        if ("cron" in data) == ("interval" in data):
            raise ValidationError("give either cron (an expression) or interval (seconds)", "cron")
        try:
            zone(data.get("timezone", "UTC"))
        except CronError as error:
            raise ValidationError(str(error), "timezone") from None
        if "cron" in data:
            try:
                Cron.parse(data["cron"], data.get("timezone", "UTC"))
            except CronError as error:
                raise ValidationError(str(error), "cron") from None


class ScheduleUpdateSchema(Schema):
    """PUT/PATCH: any of POST's fields, checked again with the others as stored (cron replaces interval, and back)."""

    name = fields.String(validate=validate.Length(min=1, max=200))
    cron = fields.String(allow_none=True, validate=validate.Length(min=1, max=200))
    interval = validators.Integer(allow_none=True, validate=validate.Range(min=1, max=INTERVAL_MAX))
    timezone = fields.String(validate=validate.Length(min=1, max=64))
    template = fields.Nested(TemplateSchema)
    enabled = fields.Boolean()
    overlap = fields.String(validate=validate.OneOf(OVERLAP))
    catch_up = fields.Boolean()
