"""The audit log: who changed what, when and from where. Views call record(); admins read GET /wsexec/audit."""

from __future__ import annotations

import time
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import Schema, fields

from wsexec import context
from wsexec.auth import Principal, current_user
from wsexec.blueprint import Blueprint
from wsexec.pagination import PageArgs, envelope, page_schema
from wsexec.roles import Role

blp = Blueprint("audit", __name__, read_role=Role.ADMIN, description="Who changed what, newest first (admins only)")

ACTIONS = (
    "instance.create", "instance.update", "instance.delete",
    "task.create", "task.update", "task.cancel", "task.delete",
    "command.run",
    "note.create", "note.update", "note.delete",
    "file.upload", "file.fetch",
    "schedule.create", "schedule.update", "schedule.delete",
    "schedule.fire",  # by a worker's scheduler (user "scheduler"): detail has the outcome, fire_time, tasks, worker
    "registration.create", "registration.delete",
    "websh.create", "websh.delete",
    "websh.session",  # a terminal session's end (user: its owner): instance, user, start, end, bytes_in, bytes_out
    "instance.register",  # by a server with a registration token (user "registration:ID", the issuing admin's role)
)


def record(action: str, target: str, detail: Any = None, user: Principal | None = None) -> None:
    """Log a change the current request made (call it once the change succeeded); detail must be JSON.

    user: who made it, when that is not the authenticated user (a registration token is none).
    """
    settings = context.settings()
    context.store().add_audit(entry(action, target, detail, user), settings.audit_max, settings.audit_max_bytes)


def entry(action: str, target: str, detail: Any = None, user: Principal | None = None) -> dict[str, Any]:
    """What record() logs, for a store call that logs it together with the change (Audit.add_with)."""
    user = user or current_user()
    return {
        "time": time.time(),
        "user": user.name,
        "role": user.role.label,
        "action": action,
        "target": target,
        "detail": detail,
        "ip": request.remote_addr,
    }


def target(kind: str, ids: list[int]) -> str:
    """"task:7" for one record, "task:7-9" for several created together."""
    return f"{kind}:{ids[0]}" if len(ids) == 1 else f"{kind}:{min(ids)}-{max(ids)}"


class AuditEntrySchema(Schema):
    time = fields.Float(metadata={"description": "unix timestamp"})
    user = fields.String()
    role = fields.String(metadata={"enum": [role.label for role in Role]})
    action = fields.String(metadata={"description": "one of " + ", ".join(ACTIONS)})
    target = fields.String(metadata={"description": "what was changed: task:7, task:7-9, instance:2, note:3..."})
    detail = fields.Raw(allow_none=True, metadata={"description": "the fields given, the ids created..."})
    ip = fields.String(allow_none=True, metadata={"description": "the client's address (behind nginx: the real one)"})


@blp.route("")
class Audit(MethodView):
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, page_schema(AuditEntrySchema))
    def get(self, page: int, page_size: int) -> dict[str, Any]:
        """The audit log, newest first (the oldest entries beyond WSEXEC_AUDIT_MAX are dropped)."""
        count, entries = context.store().audit_page(page, page_size)
        return envelope(count, entries, page, page_size)
