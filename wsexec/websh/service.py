"""Terminal sessions: who may open, see and change one, its one-time ticket and URLs, the Origin check, and the
asciicast v2 recording as a player reads it."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import request

from wsexec import audit, context
from wsexec.auth import Principal
from wsexec.exceptions import Conflict, Forbidden, NotFound
from wsexec.roles import Role
from wsexec.tasks.expand import allowed_logins

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def base_url() -> str:
    """WSEXEC_PUBLIC_URL, else the URL the request came to (https behind nginx: ProxyFix and X-Forwarded-Proto)."""
    return (context.settings().public_url or request.host_url).rstrip("/") + request.script_root


def with_urls(session: dict[str, Any], ticket: str | None = None) -> dict[str, Any]:
    base = base_url()
    api = f"{base}/wsexec/websh/sessions/{session['id']}"
    urls = {"api": api, "recording": f"{api}/recording"}
    if ticket is not None:
        scheme, _, rest = api.partition("://")
        urls["websocket"] = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/connect?ticket={ticket}"
    return {**session, **urls}


def create(fields: dict[str, Any], user: Principal) -> dict[str, Any]:
    """A PENDING session and its one-time websocket URL; 404 for an unknown instance, 403 for a login user the
    instance does not allow (the same rule as tasks)."""
    store, settings = context.store(), context.settings()
    try:
        instance = store.get_instance(fields["instance"])
    except NotFound:
        raise NotFound(f"instance {fields['instance']} not found") from None
    login = fields.get("user") or instance.get("user")
    allowed = allowed_logins(settings, instance)
    if not login or login not in allowed:
        raise Forbidden(f"user {login!r} may not log in to instance {instance['id']}; allowed: "
                        f"{', '.join(allowed) or 'none (set its user or login_users)'}",
                        {"instance": instance["id"], "user": login, "allowed": allowed})
    ticket = secrets.token_urlsafe(32)
    session = store.websh.create(
        {"instance": instance["id"], "user": login, "owner": user.name, "role": user.role.label,
         "rows": fields["rows"], "cols": fields["cols"], "ip": request.remote_addr},
        digest(ticket), settings.websh_ticket_ttl)
    audit.record("websh.create", f"websh:{session['id']}",
                 {"instance": instance["id"], "user": login, "rows": fields["rows"], "cols": fields["cols"]})
    return with_urls(session, ticket)


def visible(session_id: int, user: Principal) -> dict[str, Any]:
    """The session, for its owner or an admin; others get 404 (whose sessions exist is nobody else's business)."""
    session = context.store().websh.get(session_id)
    if session["owner"] != user.name and user.role < Role.ADMIN:
        raise NotFound(f"session {session_id} not found")
    return session


def listed(user: Principal) -> list[dict[str, Any]]:
    sessions = context.store().websh.all(None if user.role >= Role.ADMIN else user.name)
    return [with_urls(session) for session in sessions]


def resize(session_id: int, size: dict[str, int], user: Principal) -> dict[str, Any]:
    """New rows and cols: kept for a session not yet connected, sent to the PTY of an open one."""
    sessions = context.store().websh
    session = visible(session_id, user)
    if session["state"] not in ("PENDING", "ACTIVE"):
        raise Conflict(f"session {session_id} is {session['state']}", {"state": session["state"]})
    sessions.update(session_id, size)
    if session["state"] == "ACTIVE":
        sessions.tell(session_id, {"op": "resize", **size})
    return with_urls(sessions.get(session_id))


def end(session_id: int, user: Principal) -> None:
    """Close the session: its web process closes the websocket and the SSH connection. One nobody serves any more
    (never connected, or its web process died) is ended here."""
    sessions = context.store().websh
    session = visible(session_id, user)
    if session["state"] == "ENDED":
        return
    served = session["state"] == "ACTIVE" and sessions.tell(session_id, {"op": "end", "by": user.name}) > 0
    if not served:
        sessions.finish(session_id, {"close_reason": f"ended by {user.name}", "end": time.time()})
    audit.record("websh.delete", f"websh:{session_id}", {"instance": session["instance"], "state": session["state"]})


def recording(session_id: int) -> bytes:
    """asciicast v2: the header (from the session record, so it says whether the recording was cut), then the
    events as they were stored. Admins only (its blueprint says so): an admin sees every session."""
    session = context.store().websh.get(session_id)
    header: dict[str, Any] = {
        "version": 2,
        "width": session.get("width") or session["cols"],
        "height": session.get("height") or session["rows"],
        "timestamp": int(session.get("start") or session["created_at"]),
        "title": f"websh {session_id}: {session['user']}@instance {session['instance']} by {session['owner']}",
        "env": {"TERM": "xterm-256color"},
    }
    if session.get("recording_truncated"):
        cap = context.settings().websh_recording_max
        header["title"] += f" (recording truncated at {cap} bytes)"
        header["truncated"] = True
    return json.dumps(header).encode() + b"\n" + context.store().websh.recording(session_id)


def origin_allowed(origin: str | None) -> bool:
    """Browsers always send Origin on a websocket: it must be this server (scheme, host, port) or one listed in
    WSEXEC_WEBSH_ORIGINS. Without one the client is no browser, so no other site can be riding on it; the ticket
    (from an authenticated POST) is what lets it in."""
    if origin is None:
        return True
    own = {_origin(request.host_url)} | {_origin(o) for o in context.settings().websh_origins.split()}
    if context.settings().public_url:
        own.add(_origin(context.settings().public_url))
    return _origin(origin) in own


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower().replace("ws", "http", 1) if parts.scheme.lower().startswith("ws") \
            else parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None


def admit(session_id: int) -> dict[str, Any]:
    """Before the websocket handshake: the one-time ticket (used up by any attempt), then the Origin."""
    origin = request.headers.get("Origin")
    refusal = None if origin_allowed(origin) else f"refused: websocket Origin {(origin or '')[:60]!r} not allowed"
    ticket = request.args.get("ticket", "")
    outcome = context.store().websh.admit(session_id, digest(ticket), refusal) if ticket else "ticket"
    if outcome == "ticket":
        raise Forbidden("ticket unknown, already used or expired: POST /wsexec/websh/sessions for a new one")
    if outcome == "origin":
        raise Forbidden("websocket Origin not allowed: the session is closed, POST for a new one",
                        {"origin": origin})
    if outcome != "ok":
        raise Forbidden(f"session {session_id} is {outcome}", {"state": outcome})
    return context.store().websh.get(session_id)
