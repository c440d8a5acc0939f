"""/wsexec/websh/sessions: browser terminals. The API (operators open them; owners and admins see and change
theirs) and the websocket itself, which takes no credentials: its one-time ticket is checked before the handshake."""

from __future__ import annotations

from typing import Any

from flask import Response, g, request
from flask.views import MethodView
from flask_sock import Sock
from simple_websocket import Server

from wsexec import audit, context
from wsexec.auth import Principal, current_user
from wsexec.blueprint import Blueprint
from wsexec.exceptions import NotFound
from wsexec.pagination import PageArgs, envelope, page_schema
from wsexec.roles import Role
from wsexec.websh import service
from wsexec.websh.schemas import ResizeSchema, SessionCreateSchema, SessionSchema
from wsexec.websh.terminal import Terminal

blp = Blueprint(
    "websh", __name__, write_role=Role.OPERATOR,
    description="Browser terminals: a PTY shell over SSH on an instance, carried by a websocket, recorded in "
                "asciicast v2. Operators and admins open them; a session is its owner's and the admins'.",
)
recordings_blp = Blueprint(
    "websh_recordings", __name__, read_role=Role.ADMIN,
    description="Terminal sessions as they were recorded (asciicast v2): admins only, like the audit log.",
)
connect_blp = Blueprint(
    "websh_connect", __name__, public=True,
    description="The websocket of a terminal session: no credentials, its one-time ticket (from the POST that made "
                "the session) in the URL.",
)
sock = Sock()


@blp.route("/sessions")
class Sessions(MethodView):
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, page_schema(SessionSchema))
    def get(self, page: int, page_size: int) -> dict[str, Any]:
        """Sessions kept, newest first: an admin's are everyone's, anyone else's only their own."""
        sessions = service.listed(current_user())
        start = (page - 1) * page_size
        return envelope(len(sessions), sessions[start:start + page_size], page, page_size)

    @blp.arguments(SessionCreateSchema)
    @blp.response(201, SessionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Open a terminal: answers its one-time websocket URL (valid WSEXEC_WEBSH_TICKET_TTL s) and its URL."""
        return service.create(fields, current_user())


@blp.route("/sessions/<int:session_id>")
class Session(MethodView):
    @blp.response(200, SessionSchema)
    def get(self, session_id: int) -> dict[str, Any]:
        """One session (its owner or an admin): state, times, bytes each way, how it ended."""
        return service.with_urls(service.visible(session_id, current_user()))

    @blp.arguments(ResizeSchema)
    @blp.response(200, SessionSchema)
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, size: dict[str, int], session_id: int) -> dict[str, Any]:
        """Resize its terminal (its owner or an admin); 409 once it has ended."""
        return service.resize(session_id, size, current_user())

    @blp.response(204)
    def delete(self, session_id: int) -> None:
        """End it: the websocket closes (1000) and the shell is hung up. The record stays (retention)."""
        service.end(session_id, current_user())


@recordings_blp.route("/sessions/<int:session_id>/recording")
@recordings_blp.doc(responses={"200": {"description": "asciicast v2: a JSON header line, then [time, code, data] lines",
                            "content": {"application/x-asciicast": {"schema": {"type": "string"}}}}})
def recording(session_id: int) -> Response:
    """Its asciicast v2 recording, as far as WSEXEC_WEBSH_RECORDING_MAX allowed (admins only)."""
    body = service.recording(session_id)
    return Response(body, mimetype="application/x-asciicast")


@connect_blp.before_request
def admit() -> None:
    """Origin and ticket before the handshake, so a refusal is a plain HTTP 403 the client can read."""
    g.websh_session = service.admit(int((request.view_args or {})["session_id"]))


@sock.route("/sessions/<int:session_id>/connect", bp=connect_blp)
@connect_blp.alt_response(403, response="FORBIDDEN")
@connect_blp.alt_response(400, response="BAD_REQUEST")
@connect_blp.doc(
    parameters=[{"in": "query", "name": "ticket", "required": True, "schema": {"type": "string"},
                 "description": "the one-time ticket of the session's websocket URL"}],
    responses={"101": {"description": "the websocket: binary frames from the server are the PTY's output; "
                                      "binary or text frames from the client are keystrokes"}},
)
def connect(ws: Server, session_id: int) -> None:
    """The terminal's websocket (GET with Upgrade: websocket), opened once with the ticket of its URL."""
    session = g.websh_session
    store, settings = context.store(), context.settings()
    try:
        instance = store.get_instance(session["instance"])
    except NotFound:  # deleted since the POST
        instance = None
    terminal = Terminal(ws, session, instance, settings, store.websh)
    try:
        terminal.run()
    finally:  # also when the web process stops under it: the record ends, the audit log has it
        if store.websh.finish(session_id, terminal.ending):
            final = store.websh.get(session_id)
            owner = Principal(session["owner"], Role[session["role"].upper()])
            audit.record("websh.session", f"websh:{session_id}", {
                key: final.get(key) for key in ("instance", "user", "start", "end", "bytes_in", "bytes_out",
                                                "close_code", "close_reason", "error", "recording_bytes",
                                                "recording_truncated")
            }, user=owner)
