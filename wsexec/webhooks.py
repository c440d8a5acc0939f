"""GET /wsexec/webhooks/deliveries: each webhook delivery (a task's `notify`, a batch's, WSEXEC_WEBHOOKS) and how it
went, for admins; the workers make and send them (workers/webhooks.py)."""

from __future__ import annotations

import json
from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from wsexec import context, notify
from wsexec.blueprint import Blueprint
from wsexec.pagination import PageArgs, envelope, page_schema
from wsexec.roles import Role

blp = Blueprint("webhooks", __name__, read_role=Role.ADMIN,
                description="Webhook deliveries when tasks and batches end, newest first (admins only)")

STATES = ("pending", "delivered", "failed")


class DeliverySchema(Schema):
    id = fields.String(metadata={"description": f"sent as {notify.DELIVERY_HEADER}, the same on every attempt"})
    url = fields.String()
    event = fields.String(metadata={"enum": ["task.finished", "batch.finished"]})
    outcome = fields.String(metadata={"enum": list(notify.OUTCOMES)})
    task = fields.Integer(allow_none=True, metadata={"description": "the task it reports (null for a batch)"})
    batch = fields.String(allow_none=True)
    schedule = fields.Integer(allow_none=True, metadata={"description": "the schedule that made the task, if one did"})
    state = fields.String(validate=validate.OneOf(STATES), metadata={
        "description": "pending (to be tried, again), delivered (a 2xx came), failed (given up)", "enum": list(STATES)})
    attempts = fields.Integer()
    statuses = fields.List(fields.Integer(allow_none=True), metadata={
        "description": "each attempt's HTTP status; null: none came (refused, timed out), 0: not sent"})
    last_error = fields.String(allow_none=True)
    created = fields.Float(metadata={"description": "unix time"})
    last_attempt = fields.Float(allow_none=True)
    next_attempt = fields.Float(allow_none=True, metadata={"description": "when it is tried again, if pending"})
    delivered_at = fields.Float(allow_none=True)
    payload = fields.Raw(metadata={"description": "the JSON body POSTed"})


@blp.route("/deliveries")
class Deliveries(MethodView):
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, page_schema(DeliverySchema))
    def get(self, page: int, page_size: int) -> dict[str, Any]:
        """Deliveries newest first with attempts, statuses and last error (WSEXEC_WEBHOOK_DELIVERIES_MAX kept)."""
        count, records = context.store().webhooks.page(page, page_size)
        results = [{**record, "payload": json.loads(record.pop("body"))} for record in records]
        return envelope(count, results, page, page_size)
