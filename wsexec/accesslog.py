"""gunicorn's access log without forged lines: the user is the one wsexec authenticated (not whatever name a client
put in its Authorization header), and every value a client chose is escaped, so a newline or an ESC cannot start a
fake entry or drive the terminal of whoever reads the log. Imports nothing but gunicorn: the master loads it.

Only the atoms the format names are made: gunicorn's own atoms() builds and escapes some 60 (every environ entry,
every header) for the 9 of its default format, a tenth of the CPU of a GET one task (`make bench-http`).
"""

from __future__ import annotations

import functools
import os
import re
import time
import traceback
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

USER_ENVIRON_KEY = "wsexec.user"  # the app sets it in the WSGI environ once credentials are verified
TICKET = re.compile(r"([?&]?ticket=)[^&\s]*")  # websh's one-time websocket tickets (used up, but still secrets)
ATOM = re.compile(r"%\(([^)]*)\)")  # the names in an access_log_format, e.g. %(h)s, %({x-forwarded-for}i)s


def escape(text: str) -> str:
    """Printable characters as they are; backslashes and control or invisible characters as escapes.

    Quotes are escaped after this, as gunicorn's SafeAtoms does: each " becomes \\".
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


@functools.lru_cache(maxsize=8)
def names(log_format: str) -> tuple[str, ...]:
    """The atoms a format uses, as it spells them (SafeAtoms finds {Header}i in any case: _atom lowercases it)."""
    return tuple(dict.fromkeys(ATOM.findall(log_format)))


class AccessLogger(Logger):
    """gunicorn's Logger with the authenticated user and escaped atoms (gunicorn.conf.py's logger_class)."""

    _second, _stamp = -1, ""

    def _get_user(self, environ: MutableMapping[str, Any]) -> str | None:
        return environ.get(USER_ENVIRON_KEY)

    def access(self, resp: Any, req: Any, environ: MutableMapping[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        log_format = self.cfg.access_log_format
        try:
            self.access_log.info(log_format, self.line_atoms(names(log_format), resp, req, environ, request_time))
        except Exception:
            self.error(traceback.format_exc())

    def line_atoms(self, wanted: tuple[str, ...], resp: Any, req: Any, environ: MutableMapping[str, Any],
                   request_time: timedelta) -> dict[str, Any]:
        """The wanted atoms with gunicorn's values ("-" for unknown ones), strings escaped, then their quotes."""
        atoms: dict[str, Any] = {"l": "-"}  # never empty: logging formats only a non-empty mapping
        for name in wanted:
            value = self._atom(name, resp, req, environ, request_time)
            atoms[name] = escape(value).replace('"', '\\"') if isinstance(value, str) else value
        return atoms

    def _atom(self, name: str, resp: Any, req: Any, environ: MutableMapping[str, Any], request_time: timedelta) -> Any:
        if name.startswith("{"):
            key, kind = name[1:-2].lower(), name[-1:]
            if kind == "i":
                return _header(req.headers, key)
            if kind == "o":
                return _header(resp.headers, key)
            found = next((v for k, v in environ.items() if k.lower() == key), "-") if kind == "e" else "-"
            return found if isinstance(found, str) else str(found)  # gunicorn formats it with %s anyway
        made = self._simple(name, resp, environ, request_time)
        return "-" if made is None and name not in ("B", "m", "U", "q", "H") else made

    def _simple(self, name: str, resp: Any, environ: MutableMapping[str, Any], request_time: timedelta) -> Any:
        """gunicorn's atoms of the same names (glogging.Logger.atoms), each made only when asked for."""
        seconds, micros = request_time.seconds, request_time.microseconds
        match name:
            case "h":
                return environ.get("REMOTE_ADDR", "-")
            case "u":
                return self._get_user(environ) or "-"
            case "t":
                return self._now()
            case "r":
                return redact(f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}")
            case "s":
                status = resp.status
                return status.split(None, 1)[0] if isinstance(status, str) else status
            case "m" | "U" | "H":
                return environ.get({"m": "REQUEST_METHOD", "U": "PATH_INFO", "H": "SERVER_PROTOCOL"}[name])
            case "q":
                query = environ.get("QUERY_STRING")
                return redact(query) if isinstance(query, str) else query
            case "b" | "B":
                sent = getattr(resp, "sent", None)
                return sent if name == "B" else ("-" if sent is None else str(sent))
            case "f" | "a":
                return environ.get("HTTP_REFERER" if name == "f" else "HTTP_USER_AGENT", "-")
            case "T":
                return seconds
            case "D":
                return seconds * 1_000_000 + micros
            case "M":
                return seconds * 1000 + micros // 1000
            case "L":
                return f"{seconds}.{micros:06d}"
            case "p":
                return f"<{os.getpid()}>"
        return None

    def _now(self) -> str:
        """gunicorn's %(t)s, formatted once a second, not once a request."""
        second = int(time.time())
        if second != self._second:
            self._second, self._stamp = second, self.now()
        return self._stamp


def _header(headers: Any, name: str) -> str:
    """The last value of a header (gunicorn's atoms keep the last of repeated ones), "-" if absent."""
    found = "-"
    for key, value in headers.items() if hasattr(headers, "items") else headers:
        if key.lower() == name:
            found = value
    return found
