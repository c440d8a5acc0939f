"""Server-Sent Events of the task lifecycle: framing, the per-process cap on open streams, and the read loop.

The loop reads with XREAD BLOCK (a blocked greenlet under gunicorn's gevent worker, one Redis connection each),
so an idle stream costs nothing but its heartbeat; nothing here sleeps.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response, current_app, request
from redis.exceptions import RedisError

from wsexec.exceptions import Saturated
from wsexec.store import Event
from wsexec.store.events import Events

RETRY_MS = 3000  # what the stream tells EventSource clients to wait before reconnecting
STREAMS_RETRY_AFTER = 5  # seconds: streams end at their clients' pace; a hint, not a promise


LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what an SSE parser takes for the end of a line
KEEPALIVE = ": keepalive\n\n"


def frame_text(event: str, text: str, event_id: str | None = None) -> str:
    """One SSE event whose data is `text`: one data line per line, so the client rebuilds it (line breaks as \\n)."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head + "".join(f"data: {line}\n" for line in LINE_BREAK.split(text)) + "\n"


def frame(event: str, data: Any, event_id: str | None = None) -> str:
    """One SSE event: its name, optional id, and JSON data on one line."""
    return frame_text(event, json.dumps(data, separators=(',', ':')), event_id)


class StreamSlots:
    """A per-process cap on open streams: each holds a greenlet and a Redis connection while it is open."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open = limit, 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.open -= 1


def client_gone(sock: socket.socket) -> bool:
    """The client hung up (EOF or reset waiting on its connection); never blocks."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def while_connected(body: Iterable[Any], sock: socket.socket | None) -> Iterator[Any]:
    """The body's items until its client hangs up, looked at before each one (a heartbeat at the latest).

    A write to a connection the client closed still succeeds once (the kernel takes it; the reset comes back
    after): without this look a stream would notice only at its second heartbeat.
    """
    iterator = iter(body)
    try:
        for item in iterator:
            if sock is not None and client_gone(sock):
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close:
            close()


def respond(body: Iterable[str] | Iterable[bytes], mimetype: str, slots: StreamSlots) -> Response:
    """A streamed answer holding one of this process's stream slots until it closes (503 when none is free)."""
    if not slots.acquire():
        raise Saturated(f"this process already serves {slots.limit} streams (WSEXEC_EVENTS_STREAMS_MAX)",
                        STREAMS_RETRY_AFTER, {"limit": slots.limit})
    body = while_connected(body, request.environ.get("gunicorn.socket"))  # gunicorn's; other servers: writes fail
    response = current_app.response_class(body, mimetype=mimetype,
                                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(slots.release)
    return response


def matches(event: Event, filters: dict[str, Any]) -> bool:
    return all(event.fields.get(name) == value for name, value in filters.items())


def follow(events: Events, after: str | None, filters: dict[str, Any], heartbeat: float,
           seconds: int | None) -> Iterator[str]:
    """The events after `after` (default: from now on) that match every filter, until `seconds` run out (if given).

    A gap event first if some of them were trimmed away; an error event, then the end, if Redis stays unreachable
    beyond the client's retries (the client reconnects with its Last-Event-ID and loses nothing still kept).
    """
    yield f"retry: {RETRY_MS}\n\n"  # also sends the headers at once
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        if after is None:
            position = events.position()
        else:
            position = after
            oldest = events.lost_after(after)
            if oldest:
                yield frame("gap", {"after": after, "oldest": oldest,
                                    "detail": "events after this id were dropped from the window "
                                              "(WSEXEC_EVENTS_WINDOW); the stream goes on from the oldest kept"})
        sent = time.monotonic()
        while True:
            remaining = heartbeat if deadline is None else deadline - time.monotonic()
            block = max(1, int(min(heartbeat, remaining) * 1000)) if remaining > 0 else None
            batch = events.read(position, block)
            for event in batch:
                position = event.id
                if matches(event, filters):
                    yield frame(event.type, event.fields, event.id)
                    sent = time.monotonic()
            if remaining <= 0 and not batch:
                return
            if time.monotonic() - sent >= heartbeat:
                yield KEEPALIVE
                sent = time.monotonic()
    except RedisError as exc:
        yield frame("error", {"error": "Redis unreachable: the stream ends; reconnect with Last-Event-ID",
                              "detail": str(exc)})
