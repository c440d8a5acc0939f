"""wsexec.wire: a small answer's headers and body leave gunicorn in one send; what has no body, or is chunked, is
written as gunicorn writes it. Real gunicorn requests and responses over a real socket pair."""

from __future__ import annotations

import gc
import runpy
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http import get_parser, wsgi

from wsexec import wire


class CountedSocket:
    """The server's end of the pair, counting its sends."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.sends = sock, 0

    def sendall(self, data: bytes) -> None:
        self.sends += 1
        self.sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    yield client, server
    client.close()
    server.close()


def answer(pair: tuple[socket.socket, socket.socket], method: str, headers: list[tuple[str, str]],
           body: list[bytes]) -> tuple[int, bytes]:
    """One request through gunicorn's parser and wire.Response: its sends, and what the client received."""
    client, server = pair
    client.sendall(f"{method} /wsexec/tasks/1 HTTP/1.1\r\nHost: wsexec\r\n\r\n".encode())
    cfg = Config()
    request = next(get_parser(cfg, server, ("127.0.0.1", 40000)))
    counted = CountedSocket(server)
    response = wire.Response(request, counted, cfg)
    response.start_response("200 OK", headers)
    for chunk in body:
        response.write(chunk)
    response.close()
    server.shutdown(socket.SHUT_WR)
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return counted.sends, received


def test_headers_and_body_leave_in_one_send(pair: tuple[socket.socket, socket.socket]) -> None:
    sends, received = answer(pair, "GET", [("Content-Type", "application/json"), ("Content-Length", "14")],
                             [b'{"id": 1, "x"', b"}"])
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 14\r\n" in received
    assert received.endswith(b'\r\n\r\n{"id": 1, "x"}')
    assert sends == 2  # headers with the first bytes, then the second write (gunicorn: 3 sends)


def test_headers_without_a_body_are_still_sent(pair: tuple[socket.socket, socket.socket]) -> None:
    sends, received = answer(pair, "HEAD", [("Content-Type", "application/json"), ("Content-Length", "2")], [b"{}"])
    assert sends == 1 and received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"\r\n\r\n")


def test_chunked_answers_are_framed_as_gunicorn_frames_them(pair: tuple[socket.socket, socket.socket]) -> None:
    sends, received = answer(pair, "GET", [("Content-Type", "text/plain")], [b"first", b"second"])
    assert b"Transfer-Encoding: chunked\r\n" in received
    assert received.endswith(b"\r\n\r\n5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n")


def test_install_makes_it_gunicorns_response(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsgi, "Response", wsgi.Response)  # undone after the test
    wire.install()
    assert wsgi.Response is wire.Response


def test_gunicorn_conf_installs_it_and_freezes_the_loaded_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn.conf.py as gunicorn runs it: this Response, and gc.freeze() once a worker has loaded the app."""
    monkeypatch.setattr(wsgi, "Response", wsgi.Response)
    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
    assert wsgi.Response is wire.Response
    try:
        conf["post_worker_init"](None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
