"""gunicorn's access log without forged lines: the user is the one wsexec authenticated (not whatever name a client
put in its Authorization header), and every value a client chose is escaped, so a newline or an ESC cannot start a
fake entry or drive the terminal of whoever reads the log. Imports nothing but gunicorn: the master loads it."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from gunicorn.glogging import Logger

USER_ENVIRON_KEY = "wsexec.user"  # the app sets it in the WSGI environ once credentials are verified
TICKET = re.compile(r"([?&]?ticket=)[^&\s]*")  # websh's one-time websocket tickets (used up, but still secrets)


def escape(text: str) -> str:
    """Printable characters as they are; backslashes and control or invisible characters as escapes.

    Quotes are left to gunicorn's SafeAtoms, which turns each " into \\".
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def redact(text: str) -> str:
    """The request line or query string without the value of a websh ticket."""
    return TICKET.sub(r"\1REDACTED", text)


class AccessLogger(Logger):
    """gunicorn's Logger with the authenticated user and escaped atoms (gunicorn.conf.py's logger_class)."""

    def _get_user(self, environ: dict[str, Any]) -> str | None:
        return environ.get(USER_ENVIRON_KEY)

    def atoms(self, resp: Any, req: Any, environ: MutableMapping[str, Any], request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q"):  # the request line and the query string
            value = atoms.get(key)
            if isinstance(value, str):
                atoms[key] = redact(value)
        return {key: escape(value) if isinstance(value, str) else value for key, value in atoms.items()}
