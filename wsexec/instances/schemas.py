"""Instance fields as the API reads and writes them."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_load, pre_load, validate

from wsexec import validators
from wsexec.schemas import ApiSchema
from wsexec.store import InstanceState

STATES = [s.value for s in InstanceState]
LOGIN_USERS_MAX = 32


class InstanceSchema(ApiSchema):
    id = fields.Integer(dump_only=True)
    ip = fields.String(required=True, validate=validators.host, metadata={"description": "IPv4, IPv6 or DNS name"})
    port = validators.Integer(load_default=22, validate=validate.Range(min=1, max=65535))
    tag = fields.String(required=True, validate=validators.tag)
    state = fields.String(load_default=InstanceState.ACTIVE.value, validate=validate.OneOf(STATES))
    user = fields.String(allow_none=True, validate=validators.posix_user, metadata={"description": "default login"})
    login_users = fields.List(
        fields.String(validate=validators.posix_user),
        allow_none=True,
        validate=validate.Length(max=LOGIN_USERS_MAX),
        metadata={"description": "other login users tasks may ask for (default: WSEXEC_LOGIN_USERS; null: default)"},
    )
    host_key = fields.String(
        allow_none=True,
        validate=validators.host_key,
        metadata={"description": "pinned server key: 'ssh-ed25519 AAAA...' or 'SHA256:...'"},
    )
    max_concurrent = validators.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "tasks it runs at once, over all workers (1: exclusive; null or absent: no limit); "
                                 "the others wait in INIT"},
    )
    facts = fields.Dict(dump_only=True)
    facts_at = fields.Float(dump_only=True)

    @pre_load
    def old_state_spelling(self, data: Any, **kwargs: Any) -> Any:
        """Accept the original wsexec's DEACTIVE."""
        if isinstance(data, dict) and data.get("state") == "DEACTIVE":
            return {**data, "state": InstanceState.DEACTIVATE.value}
        return data


class InstanceUpdateSchema(InstanceSchema):
    """PUT and PATCH: the same fields, none required, no defaults filled in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"partial": True, **kwargs})  # marshmallow has no Meta.partial

    port = validators.Integer(validate=validate.Range(min=1, max=65535))
    state = fields.String(validate=validate.OneOf(STATES))


class InstanceFilterSchema(Schema):
    tag = fields.String()
    state = fields.String(validate=validate.OneOf([*STATES, "DEACTIVE"]))

    @post_load
    def old_state_spelling(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """?state=DEACTIVE finds what the original wsexec's clients call so."""
        if data.get("state") == "DEACTIVE":
            data["state"] = InstanceState.DEACTIVATE.value
        return data
