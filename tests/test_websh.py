"""websh: browser terminals against real gunicorn (gevent), sshd and Redis, driven with websocket-client as a
browser would: POST a session, open its one-time websocket, type, read the PTY's bytes back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
import websocket

from tests.helpers import PASSWORDS, wait_for
from wsexec.testing import SshServer

AUTH = {user: (user, password) for user, password in PASSWORDS.items()}


class Terminal:
    """One open websocket terminal: type into it, read what it printed."""

    def __init__(self, url: str, **options: Any) -> None:
        self.ws = websocket.create_connection(url, timeout=20, **options)
        self.output = b""

    def type(self, text: str) -> None:
        self.ws.send(text)

    def read_until(self, wanted: bytes) -> bytes:
        """Everything printed so far, once `wanted` is in it (websocket-client's timeout: 20 s per frame)."""
        while wanted not in self.output:
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise AssertionError(f"closed before {wanted!r}: {data!r}; printed {self.output!r}")
            assert opcode == websocket.ABNF.OPCODE_BINARY, opcode
            self.output += data
        return self.output

    def closed(self) -> tuple[int, str]:
        """Read until the server closes: its close code and reason."""
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                return self.ws.status or 0, ""
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big"), data[2:].decode()
            self.output += data

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def base(gunicorn_url: str) -> str:
    return f"{gunicorn_url}/wsexec"


@pytest.fixture
def instance(base: str, sshd: SshServer, ssh_user: str) -> dict[str, Any]:
    response = requests.post(f"{base}/instances", auth=AUTH["admin"], timeout=10,
                             json={"ip": sshd.host, "port": sshd.port, "tag": "websh", "user": ssh_user})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def open_session(base: str, instance: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    def open_(user: str = "operator", **fields: Any) -> dict[str, Any]:
        body = {"instance": instance["id"], "rows": 24, "cols": 80, **fields}
        response = requests.post(f"{base}/websh/sessions", json=body, auth=AUTH[user], timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    return open_


def test_echo_round_trip_and_the_session_record(base: str, open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session()
    assert session["state"] == "PENDING" and session["websocket"].startswith("ws://")
    assert session["websocket"].startswith(f"{session['api']}/connect?ticket=".replace("http://", "ws://"))
    terminal = Terminal(session["websocket"])
    terminal.type("echo h''i\n")  # the echo of the typed line reads h''i: only the output has "hi" alone
    assert b"hi\r\n" in terminal.read_until(b"hi\r\n")
    active = requests.get(session["api"], auth=AUTH["operator"], timeout=10).json()
    assert active["state"] == "ACTIVE" and active["start"] >= active["created_at"]
    terminal.type("exit\n")
    assert terminal.closed()[0] == 1000
    ended = wait_for(lambda: (s := requests.get(session["api"], auth=AUTH["operator"], timeout=10).json())
                     ["state"] == "ENDED" and s)
    assert ended["close_code"] == 1000 and ended["bytes_in"] == len("echo h''i\nexit\n")
    assert ended["bytes_out"] >= len("hi\r\n") and ended["end"] >= ended["start"]
