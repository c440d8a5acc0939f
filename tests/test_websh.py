"""websh: browser terminals against real gunicorn (gevent), sshd and Redis, driven with websocket-client as a
browser would: POST a session, open its one-time websocket, type, read the PTY's bytes back."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.helpers import PASSWORDS, wait_for
from wsexec.config import Settings
from wsexec.testing import SshServer

AUTH = {user: (user, password) for user, password in PASSWORDS.items()}


class Terminal:
    """One open websocket terminal: type into it, read what it printed."""

    def __init__(self, url: str, **options: Any) -> None:
        self.ws = websocket.create_connection(url, timeout=20, **options)
        self.output = b""

    def type(self, text: str) -> None:
        self.ws.send(text)

    def _more(self, wanted: object) -> None:
        """One more frame of output (websocket-client's timeout: 20 s per frame)."""
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise AssertionError(f"closed before {wanted!r}: {data!r}; printed {self.output!r}")
        assert opcode == websocket.ABNF.OPCODE_BINARY, opcode
        self.output += data

    def read_until(self, wanted: bytes) -> bytes:
        """Everything printed so far, once `wanted` is in it."""
        while wanted not in self.output:
            self._more(wanted)
        return self.output

    def read_match(self, pattern: bytes) -> re.Match[bytes]:
        """The first match of pattern in what is printed, once there is one."""
        while (found := re.search(pattern, self.output)) is None:
            self._more(pattern)
        return found

    def closed(self) -> tuple[int, str]:
        """Read until the server closes: its close code and reason."""
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return 1006, ""  # no close frame: the connection just dropped
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big"), data[2:].decode()
            self.output += data

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def changes() -> dict[str, Any]:
    """Settings a test changes: `@pytest.mark.parametrize("changes", [{"websh_idle": 1.0}])`."""
    return {}


@pytest.fixture
def settings(settings: Settings, changes: dict[str, Any]) -> Settings:
    return dataclasses.replace(settings, **changes)


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


def get(url: str, user: str = "operator", **kwargs: Any) -> requests.Response:
    return requests.get(url, auth=AUTH[user], timeout=10, **kwargs)


def ended(session: dict[str, Any]) -> dict[str, Any]:
    """The session once its web process has written how it ended."""
    return wait_for(lambda: (s := get(session["api"], "admin").json())["state"] == "ENDED" and s)


def refused(url: str, **options: Any) -> int:
    """The HTTP status a websocket handshake got instead of 101."""
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        websocket.create_connection(url, timeout=20, **options)
    return caught.value.status_code


def test_echo_round_trip_and_the_session_record(base: str, open_session: Callable[..., dict[str, Any]],
                                                tmp_path: Path) -> None:
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
    assert session["websocket"].partition("ticket=")[2] not in (tmp_path / "gunicorn.log").read_text()


def test_the_ticket_opens_once(open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session()
    terminal = Terminal(session["websocket"])
    assert refused(session["websocket"]) == 403  # while the first is open
    terminal.close()
    ended(session)
    assert refused(session["websocket"]) == 403  # and after it ended


@pytest.mark.parametrize("changes", [{"websh_ticket_ttl": 0.5}])
def test_an_expired_ticket_is_refused(open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session()
    wait_for(lambda: get(session["api"]).json()["state"] == "EXPIRED")
    assert refused(session["websocket"]) == 403
    assert get(session["api"]).json()["state"] == "EXPIRED"


@pytest.mark.parametrize("changes", [{"websh_origins": "https://console.example.com"}])
def test_origin_must_be_this_server_or_an_allowed_one(base: str, open_session: Callable[..., dict[str, Any]]) -> None:
    evil = open_session()
    assert refused(evil["websocket"], origin="https://evil.example.com") == 403
    assert refused(evil["websocket"]) == 403  # any attempt uses the ticket up: a URL in an access log opens nothing
    assert get(evil["api"]).json()["close_reason"] == "refused: websocket Origin 'https://evil.example.com' not allowed"
    assert refused(open_session()["websocket"], origin=base.replace("127.0.0.1", "localhost").removesuffix("/wsexec")) \
        == 403
    own = base.removesuffix("/wsexec")
    for origin in (own, "https://console.example.com"):
        terminal = Terminal(open_session()["websocket"], origin=origin)
        terminal.type("echo o''k\n")
        terminal.read_until(b"ok\r\n")
        terminal.close()


def test_resize_reaches_the_pty(open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session(rows=24, cols=80)
    terminal = Terminal(session["websocket"])
    terminal.type("stty size\n")
    terminal.read_until(b"24 80\r\n")
    response = requests.patch(session["api"], json={"rows": 30, "cols": 100}, auth=AUTH["operator"], timeout=10)
    assert response.status_code == 200, response.text
    assert (response.json()["rows"], response.json()["cols"]) == (30, 100)
    # the resize is applied (then recorded) by the process serving the websocket: once recorded, the PTY has it
    wait_for(lambda: b'"r", "100x30"' in get(f"{session['api']}/recording", "admin").content)
    terminal.type("stty size\n")
    terminal.read_until(b"30 100\r\n")
    terminal.close()
    assert requests.patch(session["api"], json={"rows": 1, "cols": 1}, auth=AUTH["operator"],
                          timeout=10).status_code in (200, 409)
    ended(session)
    assert requests.patch(session["api"], json={"rows": 1, "cols": 1}, auth=AUTH["operator"],
                          timeout=10).status_code == 409


def test_closing_the_websocket_ends_the_shell_on_the_host(open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session()
    terminal = Terminal(session["websocket"])
    terminal.type("echo PID=$$'.'\n")  # the typed line echoes as PID=$$'.', the output as PID=1234.
    pid = int(terminal.read_match(rb"PID=(\d+)\.\r\n").group(1))
    assert Path(f"/proc/{pid}").exists()
    terminal.close()
    wait_for(lambda: not Path(f"/proc/{pid}").exists())
    assert ended(session)["close_reason"] == "closed by the client"


def test_delete_ends_an_open_session(open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session()
    terminal = Terminal(session["websocket"])
    terminal.type("echo r''eady\n")
    terminal.read_until(b"ready\r\n")
    assert requests.delete(session["api"], auth=AUTH["operator"], timeout=10).status_code == 204
    assert terminal.closed() == (1000, "ended by operator")
    assert ended(session)["close_code"] == 1000


@pytest.mark.parametrize("changes", [{"websh_idle": 1.0}])
def test_idle_limit_closes_the_terminal(open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session()
    code, reason = Terminal(session["websocket"]).closed()
    assert code == 1008 and reason.startswith("idle for 1 s"), (code, reason)
    assert ended(session)["close_code"] == 1008


def test_unknown_host_key_is_refused(base: str, make_sshd: Callable[..., SshServer], ssh_user: str) -> None:
    stranger = make_sshd("127.0.1.3")  # its host key is in no known_hosts and pinned nowhere
    created = requests.post(f"{base}/instances", auth=AUTH["admin"], timeout=10,
                            json={"ip": stranger.host, "port": stranger.port, "tag": "websh", "user": ssh_user})
    assert created.status_code == 201, created.text
    body = {"instance": created.json()["id"], "rows": 24, "cols": 80}
    session = requests.post(f"{base}/websh/sessions", json=body, auth=AUTH["operator"], timeout=10).json()
    code, reason = Terminal(session["websocket"]).closed()
    assert code == 1008 and "unknown host key" in reason, (code, reason)
    record = ended(session)
    assert "not in known_hosts and not pinned; refusing" in record["error"] and record["bytes_out"] == 0


def test_recording_is_asciicast_for_admins_only(open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session(rows=20, cols=70)
    terminal = Terminal(session["websocket"])
    terminal.type("echo rec''orded\n")
    terminal.read_until(b"recorded\r\n")
    terminal.type("exit\n")
    terminal.closed()
    record = ended(session)
    assert get(f"{session['api']}/recording", "operator").status_code == 403  # its owner, not an admin
    response = get(f"{session['api']}/recording", "admin")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-asciicast"
    header, *lines = response.text.splitlines()
    assert json.loads(header) | {"title": None} == {
        "version": 2, "width": 70, "height": 20, "title": None, "timestamp": int(record["start"]),
        "env": {"TERM": "xterm-256color"}}
    events = [json.loads(line) for line in lines]
    assert all(code == "o" for _, code, _ in events) and [t for t, _, _ in events] == sorted(t for t, _, _ in events)
    assert "recorded\r\n" in "".join(data for _, _, data in events)
    assert record["recording_bytes"] == len(response.content) - len(header) - 1 and not record["recording_truncated"]


@pytest.mark.parametrize("changes", [{"websh_recording_max": 300}])
def test_recording_stops_at_its_cap_and_says_so(open_session: Callable[..., dict[str, Any]]) -> None:
    session = open_session()
    terminal = Terminal(session["websocket"])
    terminal.type("seq 1 2000 | tr -d '\\n'; echo; echo d''one\n")
    terminal.read_until(b"done\r\n")  # the browser got everything
    terminal.close()
    record = ended(session)
    response = get(f"{session['api']}/recording", "admin")
    header = json.loads(response.text.splitlines()[0])
    assert record["recording_truncated"] and header["truncated"] and "truncated at 300 bytes" in header["title"]
    assert record["recording_bytes"] <= 300 and len(response.content) - len(response.text.splitlines()[0]) - 1 <= 300
    assert record["bytes_out"] > 2000


def test_every_session_is_audited(open_session: Callable[..., dict[str, Any]], base: str) -> None:
    session = open_session()
    terminal = Terminal(session["websocket"])
    terminal.type("exit\n")
    terminal.closed()
    record = ended(session)
    entries = get(f"{base}/audit", "admin").json()["results"]
    end = next(e for e in entries if e["action"] == "websh.session" and e["target"] == f"websh:{session['id']}")
    assert end["user"] == "operator" and end["role"] == "operator"
    assert {k: end["detail"][k] for k in ("instance", "user", "start", "end", "bytes_in", "bytes_out")} == \
        {k: record[k] for k in ("instance", "user", "start", "end", "bytes_in", "bytes_out")}
    assert end["detail"]["bytes_in"] == len("exit\n")
    assert any(e["action"] == "websh.create" and e["target"] == f"websh:{session['id']}" for e in entries)


def gunicorn_workers(base: str) -> list[int]:
    """The worker processes of the gunicorn serving base (found by its WSEXEC_BIND, as root may read environs)."""
    bind = f"WSEXEC_BIND={base.removeprefix('http://').removesuffix('/wsexec')}".encode()
    masters = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and (p / "cmdline").exists()
               and b"gunicorn" in (p / "cmdline").read_bytes() and bind in _environ(p)]
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) in masters]


def _environ(proc: Path) -> list[bytes]:
    try:
        return (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_killed_web_process_leaves_no_shell_behind(base: str, open_session: Callable[..., dict[str, Any]]) -> None:
    terminal = Terminal(open_session()["websocket"])
    terminal.type("echo PID=$$'.'\n")
    pid = int(terminal.read_match(rb"PID=(\d+)\.\r\n").group(1))
    workers = gunicorn_workers(base)
    assert len(workers) == 2, workers
    for worker in workers:  # SIGKILL: no code of ours runs, the kernel closes its sockets (SSH's among them)
        os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists())  # sshd saw the connection drop and hung the shell up
    assert terminal.closed() == (1006, "")  # the websocket dropped without a close frame


def test_a_stopping_web_process_closes_its_terminals_going_away(
    base: str, open_session: Callable[..., dict[str, Any]]
) -> None:
    """SIGTERM: gunicorn lets open requests run for its graceful timeout (30 s), then ends them; a terminal then
    closes with 1001 and its record and audit entry are written before the process exits."""
    session = open_session()
    terminal = Terminal(session["websocket"])
    terminal.type("echo r''eady\n")
    terminal.read_until(b"ready\r\n")
    terminal.ws.settimeout(90)  # the graceful timeout, on a loaded machine
    for worker in gunicorn_workers(base):
        os.kill(worker, signal.SIGTERM)
    assert terminal.closed() == (1001, "the web process is stopping")
    record = ended(session)  # answered by the worker gunicorn started in its place
    assert (record["close_code"], record["close_reason"]) == (1001, "the web process is stopping")


@pytest.mark.parametrize("changes", [{"websh_ping": 0.2, "websh_idle": 3.0}])
def test_pings_keep_a_reading_client_and_drop_a_silent_one(open_session: Callable[..., dict[str, Any]]) -> None:
    reading = open_session()
    assert Terminal(reading["websocket"]).closed() == (1008, "idle for 3 s (WSEXEC_WEBSH_IDLE)")  # pinged ~15 times
    silent = open_session()
    terminal = Terminal(silent["websocket"])  # never reads, so never answers a ping
    record = wait_for(lambda: (s := get(silent["api"]).json())["state"] == "ENDED" and s, timeout=60)
    assert (record["close_code"], record["close_reason"]) == (
        1008, "the client stopped answering pings (WSEXEC_WEBSH_PING)")
    assert terminal.closed() in ((1008, "Ping/Pong timeout"), (1006, ""))  # its pongs to queued pings may hit a
    # socket the server has closed already


@pytest.mark.timeout(600)
@pytest.mark.parametrize("changes", [{"websh_ping": 3600.0}])  # the first terminals wait unread while others open
def test_the_api_answers_while_50_terminals_are_open(base: str, open_session: Callable[..., dict[str, Any]],
                                                     instance: dict[str, Any]) -> None:
    """gevent: each terminal is a few greenlets, not one of a few threads, so the API is not starved."""
    sessions, terminals = [], []
    try:
        for number in range(50):
            sessions.append(open_session())
            terminals.append(Terminal(sessions[-1]["websocket"]))
            terminals[-1].type(f"echo open-{number}''.\n")
        for number, terminal in enumerate(terminals):
            terminal.read_until(f"open-{number}.\r\n".encode())
        # all 50 open, each holding its SSH connection and websocket: the API still answers, and correctly
        for _ in range(3):
            assert get(f"{base}/instances/{instance['id']}").json()["ip"] == instance["ip"]
            listed = get(f"{base}/websh/sessions?page_size=100", "admin").json()
            assert listed["count"] == 50 and {s["state"] for s in listed["results"]} == {"ACTIVE"}
            audit = get(f"{base}/audit?page_size=100", "admin").json()["results"]
            assert sum(entry["action"] == "websh.create" for entry in audit) == 50
        for number, terminal in enumerate(terminals):  # and every terminal is still live
            terminal.type(f"echo still-{number}''.\n")
            terminal.read_until(f"still-{number}.\r\n".encode())
    finally:
        for terminal in terminals:
            terminal.close()
    for session in sessions:
        assert ended(session)["close_reason"] == "closed by the client"
