"""GET /wsexec/health: liveness for load balancers and monitors, the one route without credentials."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields
from redis.exceptions import RedisError

from wsexec import context, jobs
from wsexec.blueprint import Blueprint
from wsexec.errors import error_response

blp = Blueprint("health", __name__, public=True, description="Liveness")


class HealthErrorSchema(Schema):
    error = fields.String(metadata={"description": "what is missing"})
    detail = fields.Nested(lambda: HealthSchema())


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok, or degraded when Redis or the workers are missing"})
    redis = fields.Boolean()
    workers = fields.Integer(metadata={"description": "worker processes on the queue (each runs several jobs)"})


@blp.route("")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthErrorSchema, description="Redis unreachable or no worker alive")
def health() -> Any:
    """Redis reachable and workers seen; a 503 has the error shape of every other failure."""
    try:
        context.store().ping()
        workers = jobs.workers_seen(context.queue())
    except RedisError:
        return error_response(503, "Redis unreachable", {"status": "degraded", "redis": False, "workers": 0})
    if not workers:
        return error_response(503, "no worker seen", {"status": "degraded", "redis": True, "workers": 0})
    return {"status": "ok", "redis": True, "workers": workers}
