"""One open terminal in the web process: the websocket, a PTY shell over its own verified SSH connection, and the
greenlets between them (gunicorn's gevent worker makes each a greenlet, so 50 terminals cost no thread pool).

The session ends once, by whichever comes first: the shell exits (1000), the browser closes (its code), a limit
(1008: idle, total time), a DELETE (1000), SSH failing (1008 for a refused host key, 1011 otherwise), or the web
process stopping (1001, once gunicorn's graceful timeout kills its greenlets). The SSH connection is closed with it,
which hangs up the shell on the host.
"""

from __future__ import annotations

import codecs
import functools
import json
import logging
import threading
import time
from typing import Any

import paramiko
from redis.client import PubSub
from simple_websocket import ConnectionClosed, Server

from workers.ssh import Connection, Endpoint, SshError, SshOptions
from wsexec.config import Settings
from wsexec.store.websh import Sessions

log = logging.getLogger(__name__)

NORMAL, GOING_AWAY, NO_STATUS, POLICY, FAILED = 1000, 1001, 1005, 1008, 1011
READ_SIZE = 32 * 1024
CONTROL_POLL = 5.0  # seconds: the control listener's backstop wake-up (a "stop" message wakes it at once)
_gates: dict[str, threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def service_key(path: str) -> paramiko.PKey:
    return paramiko.PKey.from_path(path)


def connect_gate(host: str, size: int) -> threading.BoundedSemaphore:
    """At most `size` logins in flight to one host from this process, as the worker's pool does (MaxStartups)."""
    with _gates_lock:
        return _gates.setdefault(host, threading.BoundedSemaphore(size))


def short(reason: str, limit: int = 120) -> str:
    """A websocket close reason fits in 123 bytes of UTF-8."""
    encoded = reason.encode()
    return reason if len(encoded) <= limit else encoded[: limit - 3].decode(errors="ignore") + "..."


class SerialSocket:
    """The websocket's socket with whole, one-at-a-time writes: simple-websocket calls send() (which under gevent may
    write part of a frame) from its ping thread and from ours; sendall under a lock keeps frames whole and apart."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Terminal:
    """One session's websocket and shell, and the ending it came to (outcome: the close code and reason)."""

    def __init__(self, ws: Server, session: dict[str, Any], instance: dict[str, Any] | None, settings: Settings,
                 sessions: Sessions) -> None:
        self.ws, self.session, self.instance, self.settings, self.sessions = ws, session, instance, settings, sessions
        self.id: int = session["id"]
        self.ws.sock = SerialSocket(ws.sock)
        self.started = time.time()
        self.last_input = time.monotonic()
        self.outcome: tuple[int, str] | None = None
        self.error: str | None = None
        self._end_lock = threading.Lock()
        self.channel: paramiko.Channel | None = None
        self.connection: Connection | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def run(self) -> None:
        """Serve the session until it ends (then `ending` has the fields its record ends with)."""
        control: PubSub | None = None
        try:
            control = self.sessions.listen(self.id)  # before reading the size: no resize is missed
            current = self.sessions.get(self.id)
            rows, cols = current["rows"], current["cols"]
            if self._open_shell(rows, cols):
                self.sessions.update(self.id, {"width": cols, "height": rows})
                threading.Thread(target=self._pump_output, name=f"websh-{self.id}-out", daemon=True).start()
                threading.Thread(target=self._listen, args=(control,), name=f"websh-{self.id}-ctl",
                                 daemon=True).start()
                control = None  # the listener owns it now
                self._pump_input()
        except Exception as exc:  # a bug or Redis lost: the browser gets a reason, the record its end
            log.exception("websh %s failed", self.id)
            self.end(FAILED, f"internal error: {type(exc).__name__}")
        except BaseException:  # GreenletExit, SystemExit: the web process is stopping
            self.end(GOING_AWAY, "the web process is stopping")
            raise
        finally:
            if control is not None:
                control.close()
            self._close_ssh()
            try:
                self.sessions.tell(self.id, {"op": "stop"})  # wakes the listener, which then closes its channel
            except Exception:  # Redis gone: the listener's own poll ends it
                log.warning("websh %s: could not stop its control listener at once", self.id)

    @property
    def ending(self) -> dict[str, Any]:
        code, reason = self.outcome or (NORMAL, "closed")
        return {"end": time.time(), "close_code": code, "close_reason": reason, "error": self.error}

    def _open_shell(self, rows: int, cols: int) -> bool:
        """Log in with the service key under the task's host-key rules (pinned or known_hosts, never learned)."""
        instance, settings = self.instance, self.settings
        if instance is None:
            self.error = f"instance {self.session['instance']} no longer exists"
            self.end(FAILED, self.error)
            return False
        endpoint = Endpoint(instance["ip"], instance["port"], self.session["user"], instance.get("host_key"))
        try:
            key = service_key(settings.ssh_key)
            self.connection = Connection(endpoint, key, settings.known_hosts, SshOptions.from_settings(settings))
            self.connection.open(connect_gate(endpoint.host, settings.connects_per_host))
            transport = self.connection.transport
            assert transport is not None
            channel = transport.open_session(timeout=settings.connect_timeout)
            channel.get_pty(term="xterm-256color", width=cols, height=rows)
            channel.invoke_shell()
        except SshError as exc:
            self.error = str(exc)
            self.end(POLICY if exc.reason == "host_key" else FAILED, f"ssh: {exc}")
            return False
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self.error = f"ssh to {endpoint} failed: {exc}"
            self.end(FAILED, self.error)
            return False
        self.channel = channel
        return True

    def end(self, code: int, reason: str) -> None:
        """The first end wins: close the websocket with its code and wake the input loop."""
        with self._end_lock:
            if self.outcome is not None:
                return
            self.outcome = (code, short(reason))
        try:
            self.ws.close(code, self.outcome[1])
        except (ConnectionClosed, OSError):
            pass
        self.ws.event.set()  # receive() returns at once: the socket is no longer connected

    def _elapsed(self) -> float:
        return round(time.time() - self.started, 6)

    def _pump_input(self) -> None:
        """Keystrokes to the shell until the session ends; the idle and total limits are checked as it waits."""
        settings, channel = self.settings, self.channel
        assert channel is not None
        total_deadline = time.monotonic() + settings.websh_max
        while self.outcome is None:
            now = time.monotonic()
            idle_deadline = self.last_input + settings.websh_idle
            if now >= total_deadline:
                self.end(POLICY, f"time limit: open for {settings.websh_max:g} s (WSEXEC_WEBSH_MAX)")
                break
            if now >= idle_deadline:
                self.end(POLICY, f"idle for {settings.websh_idle:g} s (WSEXEC_WEBSH_IDLE)")
                break
            try:
                data = self.ws.receive(timeout=min(total_deadline, idle_deadline) - now)
            except ConnectionClosed:
                code = int(self.ws.close_reason or NORMAL)
                if code == NO_STATUS and not self.ws.pong_received:  # simple-websocket gave up on its pings
                    self.end(POLICY, "the client stopped answering pings (WSEXEC_WEBSH_PING)")
                else:
                    self.end(code, "closed by the client")
                break
            if data is None:
                continue
            raw = data.encode() if isinstance(data, str) else bytes(data)
            self.last_input = time.monotonic()
            try:
                channel.sendall(raw)
            except OSError as exc:
                if channel.exit_status_ready():
                    continue  # typed as the shell exited: the output pump ends the session with its status
                self.end(FAILED, f"ssh channel lost: {exc}")
                break
            self.sessions.count_input(self.id, len(raw))

    def _pump_output(self) -> None:
        """Shell output to the browser as binary frames, and into the recording."""
        channel = self.channel
        assert channel is not None
        cap = self.settings.websh_recording_max
        try:
            while True:
                data = channel.recv(READ_SIZE)
                if not data:
                    break
                self.ws.send(data)
                self.sessions.record(self.id, [self._elapsed(), "o", self._decoder.decode(data)], cap, len(data))
        except ConnectionClosed:
            return  # the browser left: the input loop ends the session
        except Exception as exc:  # the SSH side or Redis failed under us: end rather than hang
            log.warning("websh %s: output stopped: %s", self.id, exc)
            self.end(FAILED, f"output stopped: {exc}")
            return
        status = channel.recv_exit_status() if channel.exit_status_ready() else None
        self.end(NORMAL, "shell exited" + (f" with status {status}" if status not in (None, -1) else ""))

    def _listen(self, control: Any) -> None:
        """Resizes and ends sent by PATCH and DELETE, from whichever web process answered them."""
        try:
            while self.outcome is None:
                self.sessions.served(self.id)
                message = control.get_message(timeout=CONTROL_POLL)
                if message is None:
                    continue
                order = json.loads(message["data"])
                if order.get("op") == "resize" and self.channel is not None:
                    self.channel.resize_pty(width=order["cols"], height=order["rows"])
                    self.sessions.record(self.id, [self._elapsed(), "r", f"{order['cols']}x{order['rows']}"],
                                         self.settings.websh_recording_max)
                elif order.get("op") == "end":
                    self.end(NORMAL, f"ended by {order.get('by', 'an admin')}")
        except Exception as exc:
            log.warning("websh %s: control channel lost: %s", self.id, exc)
        finally:
            control.close()

    def _close_ssh(self) -> None:
        """Closing the connection closes the channel and hangs up the shell (sshd closes its PTY)."""
        if self.channel is not None:
            self.channel.close()
        if self.connection is not None:
            self.connection.close()
