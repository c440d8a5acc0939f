"""Registration fields as the API reads and writes them, and what a registering server sends."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from wsexec import validators
from wsexec.schemas import ApiSchema

USES_MAX = 10_000
EXPIRES_MAX = 30 * 86400  # seconds: a registration token is for a rollout, not a standing credential
NAME_MAX = 253


class RegistrationSchema(ApiSchema):
    id = fields.Integer(dump_only=True)
    tag = fields.String(required=True, validate=validators.tag, metadata={"description": "the instances' tag"})
    user = fields.String(required=True, validate=validators.posix_user,
                         metadata={"description": "the instances' login user: the one who runs register.sh"})
    port = validators.Integer(allow_none=True, validate=validate.Range(min=1, max=65535),
                              metadata={"description": "the instances' SSH port unless a server says (default 22)"})
    uses = validators.Integer(load_default=1, validate=validate.Range(min=1, max=USES_MAX),
                              metadata={"description": "how many servers the token may register"})
    uses_left = fields.Integer(dump_only=True)
    expires_in = validators.Integer(load_default=86400, load_only=True, validate=validate.Range(min=1, max=EXPIRES_MAX),
                                    metadata={"description": "seconds the token is valid for"})
    expires_at = fields.Float(dump_only=True, metadata={"description": "unix timestamp"})
    activate = fields.Boolean(load_default=False, metadata={
        "description": "true: servers start ACTIVE; false: DEACTIVATE until an admin activates them"})
    instances = fields.List(fields.Integer(), dump_only=True, metadata={"description": "the instances it registered"})
    created_by = fields.String(dump_only=True)
    created_at = fields.Float(dump_only=True)


class IssuedRegistrationSchema(RegistrationSchema):
    """POST's answer: the only time the token is shown (only its SHA-256 is kept)."""

    token = fields.String(dump_only=True, metadata={"description": "the registration token, shown this once"})
    command = fields.String(dump_only=True, metadata={"description": "what to run on a new server, as its user"})


def printable(value: str) -> None:
    if not value.isprintable():
        raise ValidationError("contains control or invisible characters")


class RegisterSchema(Schema):
    """What register.sh sends (POST /wsexec/register, with the registration token)."""

    name = fields.String(validate=[validate.Length(min=1, max=NAME_MAX), printable],
                         metadata={"description": "the server's host name (kept in the audit log)"})
    address = fields.String(validate=validators.host, metadata={
        "description": "where wsexec reaches its sshd (default: the address this request comes from)"})
    port = validators.Integer(validate=validate.Range(min=1, max=65535),
                              metadata={"description": "its sshd's port (default: the registration's, else 22)"})
    host_key = fields.String(required=True, validate=validators.host_key,
                             metadata={"description": "its sshd's public host key, 'ssh-ed25519 AAAA...'"})
