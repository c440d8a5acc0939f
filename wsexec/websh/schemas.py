"""Terminal session fields as the API reads and writes them."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from wsexec import validators
from wsexec.schemas import ApiSchema

ROWS_MAX, COLS_MAX = 1000, 1000
STATES = ["PENDING", "ACTIVE", "ENDED", "EXPIRED"]


def rows_field(**kwargs: object) -> validators.Integer:
    return validators.Integer(validate=validate.Range(min=1, max=ROWS_MAX), metadata={"description": "lines"},
                              **kwargs)  # type: ignore[arg-type]


def cols_field(**kwargs: object) -> validators.Integer:
    return validators.Integer(validate=validate.Range(min=1, max=COLS_MAX), metadata={"description": "columns"},
                              **kwargs)  # type: ignore[arg-type]


class SessionCreateSchema(Schema):
    instance = validators.Integer(required=True, validate=validate.Range(min=1), metadata={"description": "its id"})
    user = fields.String(validate=validators.posix_user,
                         metadata={"description": "login user; default: the instance's user"})
    rows = rows_field(required=True)
    cols = cols_field(required=True)


class ResizeSchema(Schema):
    rows = rows_field(required=True)
    cols = cols_field(required=True)


class SessionSchema(ApiSchema):
    id = fields.Integer()
    websocket = fields.String(metadata={"description": "ws:// or wss:// URL with a one-time ticket; only in the answer "
                                                       "to the POST that made it, valid WSEXEC_WEBSH_TICKET_TTL s"})
    api = fields.String(metadata={"description": "this session's URL: GET, PATCH {rows, cols}, DELETE"})
    recording = fields.String(metadata={"description": "URL of its asciicast v2 recording (admins)"})
    instance = fields.Integer()
    user = fields.String(metadata={"description": "the login user on the instance"})
    owner = fields.String(metadata={"description": "who opened it"})
    rows = fields.Integer()
    cols = fields.Integer()
    state = fields.String(metadata={"enum": STATES, "description": "PENDING until its websocket connects; EXPIRED "
                                                                   "if its ticket ran out first"})
    created_at = fields.Float()
    expires_at = fields.Float(metadata={"description": "when its ticket runs out"})
    start = fields.Float(metadata={"description": "when its websocket connected"})
    end = fields.Float()
    bytes_in = fields.Integer(metadata={"description": "keystroke bytes sent to the shell"})
    bytes_out = fields.Integer(metadata={"description": "output bytes sent to the browser"})
    close_code = fields.Integer(metadata={"description": "the websocket close code: 1000 shell exited or ended, "
                                                         "1001 web process stopping, 1008 a limit or refusal, 1011 "
                                                         "SSH failed; the client's own code when it closed"})
    close_reason = fields.String()
    error = fields.String(metadata={"description": "why the shell could not be opened"})
    recording_bytes = fields.Integer()
    recording_truncated = fields.Boolean(metadata={"description": "the recording reached WSEXEC_WEBSH_RECORDING_MAX "
                                                                  "and stopped there"})
