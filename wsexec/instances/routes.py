"""/wsexec/instances: the servers tasks run on (admin to change them)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from wsexec import audit, context, jobs, quotas
from wsexec.auth import current_user
from wsexec.blueprint import Blueprint
from wsexec.instances import facts
from wsexec.instances.schemas import InstanceFilterSchema, InstanceSchema, InstanceUpdateSchema
from wsexec.pagination import PageArgs, envelope, page_schema
from wsexec.roles import Role

blp = Blueprint("instances", __name__, write_role=Role.ADMIN, description="Servers that tasks run on")


@blp.route("")
class Instances(MethodView):
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.arguments(InstanceFilterSchema, location="query", as_kwargs=True)
    @blp.response(200, page_schema(InstanceSchema))
    def get(self, page: int, page_size: int, **filters: Any) -> dict[str, Any]:
        """List instances, newest first."""
        count, items = context.store().list_instances(filters, page, page_size)
        return envelope(count, items, page, page_size)

    @blp.arguments(InstanceSchema)
    @blp.response(201, InstanceSchema)
    def post(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Declare an instance."""
        instance = context.store().create_instance(fields)
        audit.record("instance.create", f"instance:{instance['id']}", fields)
        return instance


@blp.route("/<int:instance_id>")
class Instance(MethodView):
    @blp.response(200, InstanceSchema)
    def get(self, instance_id: int) -> dict[str, Any]:
        """One instance."""
        return context.store().get_instance(instance_id)

    @blp.arguments(InstanceUpdateSchema)
    @blp.response(200, InstanceSchema)
    def patch(self, changes: dict[str, Any], instance_id: int) -> dict[str, Any]:
        """Change the given fields of an instance (PUT does the same)."""
        instance = context.store().update_instance(instance_id, changes)
        audit.record("instance.update", f"instance:{instance_id}", changes)
        if "max_concurrent" in changes:  # raised or removed: the tasks waiting for a slot that is now free start
            jobs.wake_waiters(context.store(), context.queue(), instance_id, context.settings().reconcile_grace)
        return instance

    put = patch

    @blp.response(204)
    @blp.alt_response(409, response="CONFLICT")
    def delete(self, instance_id: int) -> None:
        """Remove an instance (409 while it has INIT or CURRENT tasks)."""
        context.store().delete_instance(instance_id)
        audit.record("instance.delete", f"instance:{instance_id}")


@blp.route("/<int:instance_id>/facts")
class Facts(MethodView):
    @blp.arguments(facts.FactsArgs, location="query", as_kwargs=True)
    @blp.response(200, InstanceSchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(502, response="BAD_GATEWAY")
    @blp.alt_response(504, response="GATEWAY_TIMEOUT")
    def post(self, instance_id: int, wait: int) -> dict[str, Any]:
        """Gather os, kernel, cpu cores, memory, disks and uptime over SSH (one task) and store them as facts."""
        with quotas.wait_slot(wait):
            return facts.gather(instance_id, wait, current_user().name)
