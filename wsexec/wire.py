"""gunicorn's HTTP/1 response with its headers in the same send as the body's first bytes.

gunicorn sends the headers, then the body: two sends, two packets, and nginx woken twice for one small JSON answer.
A send is the gevent worker's costliest call (py-spy during `make bench-http`: the headers' send alone was 11% of a
GET one task). gunicorn.conf.py installs this in every worker; chunked and HTTP/2 answers are written as before.
Imports nothing but gunicorn: the master loads it.
"""

from __future__ import annotations

from typing import Any

from gunicorn.http import wsgi


class _Joined:
    """The socket during one write(): the first sendall (the headers) waits and leaves with the next (the body)."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.held = sock, b""

    def sendall(self, data: bytes) -> None:
        if not self.held:
            self.held = bytes(data)
            return
        joined, self.held = self.held + data, b""
        self.sock.sendall(joined)

    def flush(self) -> None:
        """Headers with no body after them (HEAD, 204, 304): on their own, as gunicorn sends them."""
        if self.held:
            held, self.held = self.held, b""
            self.sock.sendall(held)


class Response(wsgi.Response):
    def write(self, arg: bytes) -> None:
        if self.headers_sent or self.chunked:
            super().write(arg)
            return
        sock = self.sock
        self.sock = joined = _Joined(sock)  # type: ignore[assignment]  # send_headers and _emit_body only sendall
        try:
            super().write(arg)
        finally:
            self.sock = sock
            joined.flush()


def install() -> None:
    """Make gunicorn's workers build their HTTP/1 responses with this class (gunicorn.http.wsgi.create's default)."""
    wsgi.Response = Response  # type: ignore[misc]
