"""GET /wsexec/events: task lifecycle events (created, started, finished) as Server-Sent Events, for any viewer."""

from __future__ import annotations

import re
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from wsexec import context, sse, validators
from wsexec.blueprint import Blueprint
from wsexec.exceptions import Unprocessable

blp = Blueprint("events", __name__, description="Task lifecycle events, as Server-Sent Events")

EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
TIMEOUT_MAX = 86400
LAST_EVENT_ID = {
    "in": "header", "name": "Last-Event-ID", "required": False,
    "schema": {"type": "string", "pattern": EVENT_ID.pattern},
    "description": "resume after this event id (EventSource sends it when it reconnects)",
}
EVENT_TYPES = ["created", "started", "finished", "gap", "error"]
STREAM = {  # one Server-Sent Event (how schemathesis and SSE-aware tools read a text/event-stream schema)
    "type": "object",
    "description": "each event: `created`, `started`, `finished` (with `id`, the event id to resume after); `gap` "
                   "when events after Last-Event-ID are no longer kept; `error` before the stream ends when Redis is "
                   "lost. `: keepalive` comments while idle",
    "properties": {
        "event": {"type": "string", "enum": EVENT_TYPES},
        "id": {"type": "string", "pattern": EVENT_ID.pattern},
        "data": {"type": "string", "description": "a JSON object: task, batch, tag, instance, state, and rc and "
                                                  "error once set (gap: after, oldest; error: error, detail)"},
        "retry": {"type": "integer"},
    },
    "required": ["event", "data"],
    "example": {"event": "finished", "id": "1764746400000-0",
                "data": '{"task":7,"tag":"web","instance":2,"state":"DONE","rc":0}'},
}


class EventArgs(Schema):
    batch = fields.String(validate=validate.Length(min=1, max=64), metadata={"description": "only this batch's"})
    tag = fields.String(validate=validators.tag, metadata={"description": "only tasks with this tag"})
    instance = validators.Integer(validate=validate.Range(min=1), metadata={"description": "only this instance's"})
    timeout = validators.Integer(
        validate=validate.Range(min=0, max=TIMEOUT_MAX),
        metadata={"description": "end the stream after this many seconds (0: only the events already there); "
                                 "default: open until the client leaves"},
    )
    last_event_id = fields.String(validate=validate.Regexp(EVENT_ID),
                                  metadata={"description": "as the Last-Event-ID header, for clients that cannot "
                                                           "send it (the header wins)"})


@blp.route("")
class Events(MethodView):
    @blp.arguments(EventArgs, location="query", as_kwargs=True)
    @blp.doc(parameters=[LAST_EVENT_ID])
    @blp.response(200, STREAM, content_type="text/event-stream", description="the events, as they happen")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self, timeout: int | None = None, last_event_id: str | None = None, **filters: Any) -> Any:
        """Follow tasks as they are created, start and finish; resumable with Last-Event-ID."""
        after = request.headers.get("Last-Event-ID") or last_event_id
        if after is not None and not EVENT_ID.fullmatch(after):
            raise Unprocessable("Last-Event-ID: not an event id", {"Last-Event-ID": ["expected MILLISECONDS-SEQUENCE"]})
        body = sse.follow(context.store().events, after, filters, context.settings().events_heartbeat, timeout)
        return sse.respond(body, "text/event-stream", context.streams())
