"""GET /wsexec/health: liveness for load balancers and monitors, the one route without credentials."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields
from redis.exceptions import RedisError
from rq import Worker

from wsexec import context

blp = Blueprint("health", __name__, description="Liveness")
blp.public = True  # type: ignore[attr-defined]


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok, or degraded when Redis or the workers are missing"})
    redis = fields.Boolean()
    workers = fields.Integer(metadata={"description": "RQ workers registered on the queue"})


@blp.route("")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="Redis unreachable or no worker alive")
def health() -> tuple[dict, int]:
    """Redis reachable and workers seen."""
    try:
        context.store().redis.ping()
        workers = Worker.count(queue=context.queue())
    except RedisError:
        return {"status": "degraded", "redis": False, "workers": 0}, 503
    status = "ok" if workers else "degraded"
    return {"status": status, "redis": True, "workers": workers}, 200 if workers else 503
