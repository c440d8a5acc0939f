"""One remote command, like fabric's Remote: start it on a pooled connection, stream its output, stop it."""

from __future__ import annotations

import select
import shlex
import time
from collections.abc import Callable
from typing import Protocol

import paramiko

from workers.ssh.connection import Connection
from workers.ssh.errors import SshError, Stopped
from workers.ssh.options import Endpoint

OutputCallback = Callable[[bytes], None]
StopCheck = Callable[[], "str | None"]

READ_SIZE = 64 * 1024
STOP_POLL_SECONDS = 0.2
CHANNEL_ATTEMPTS = 50


class Connections(Protocol):
    """Where a Remote gets its connections (the pool): the open one for an endpoint, and rid of a dead one."""

    def connection(self, endpoint: Endpoint) -> Connection: ...

    def discard(self, endpoint: Endpoint, connection: Connection) -> None: ...


class Remote:
    """Runs one script: splits the PID line off stdout, streams the rest, kills the process group when stopped."""

    def __init__(
        self, pool: Connections, endpoint: Endpoint, on_stdout: OutputCallback, on_stderr: OutputCallback
    ) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.pid: int | None = None
        self._head: bytes | None = b""

    def run(self, script: str, timeout: float, should_stop: StopCheck) -> int:
        """Run `script` with /bin/sh on the host and return its exit status; raise Stopped or SshError."""
        # The login shell prints its PID (its process group) first, so a stop can kill the whole group. Stdin is
        # /dev/null: a script that reads it gets EOF (sending our own EOF races with a fast command's close, and
        # sshd drops the whole connection for an EOF on a channel it has already freed).
        command = f"echo $$; exec /bin/sh -c {shlex.quote(script)} </dev/null"
        connection, channel = self._start(command)
        try:
            return self._wait(connection, channel, timeout, should_stop)
        finally:
            try:
                channel.close()
            except (paramiko.SSHException, EOFError, OSError):
                pass  # the connection died under us; the pool replaces it on next use
            connection.release()

    def _start(self, command: str) -> tuple[Connection, paramiko.Channel]:
        """Open a channel and exec; retry sshd's MaxSessions refusals and replace a connection that died.

        Retrying is safe: a command whose exec request failed never started.
        """
        reconnects = 0
        for attempt in range(CHANNEL_ATTEMPTS):
            connection = self.pool.connection(self.endpoint)
            connection.acquire()
            try:
                return connection, connection.session(command)
            except paramiko.ChannelException:
                connection.release()
            except (paramiko.SSHException, EOFError, OSError) as exc:
                connection.release()
                if not connection.is_connected:
                    self.pool.discard(self.endpoint, connection)
                    reconnects += 1
                    if reconnects > 2:
                        raise SshError("ssh", f"connection to {self.endpoint} keeps failing: {exc}") from exc
            time.sleep(0.005 * (attempt + 1))  # sshd frees a session slot a little after the exit status
        raise SshError("channels", f"{self.endpoint} refused {CHANNEL_ATTEMPTS} channel opens (MaxSessions)")

    def _stdout(self, data: bytes) -> None:
        if self._head is not None:
            self._head += data
            line, newline, rest = self._head.partition(b"\n")
            if not newline:
                return
            self._head = None
            if line.strip().isdigit():
                self.pid = int(line)
                data = rest
            else:
                data = line + newline + rest
        if data:
            self.on_stdout(data)

    def _drain(self, channel: paramiko.Channel) -> None:
        while channel.recv_ready():
            self._stdout(channel.recv(READ_SIZE))
        while channel.recv_stderr_ready():
            self.on_stderr(channel.recv_stderr(READ_SIZE))

    def _wait(self, connection: Connection, channel: paramiko.Channel, timeout: float, should_stop: StopCheck) -> int:
        deadline = time.monotonic() + timeout
        next_stop_check = time.monotonic() + STOP_POLL_SECONDS
        while True:
            select.select([channel], [], [], STOP_POLL_SECONDS)
            self._drain(channel)
            # The end is EOF, not the exit status: sshd may send the status before the last output under load.
            finished = channel.eof_received or channel.closed
            if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
                if self._head:  # output without a newline before exit
                    self.on_stdout(self._head)
                return channel.recv_exit_status()
            now = time.monotonic()
            if now >= deadline:
                self._kill(connection)
                raise Stopped(f"timeout after {timeout:g} s")
            if now >= next_stop_check:
                next_stop_check = now + STOP_POLL_SECONDS
                reason = should_stop()
                if reason:
                    self._kill(connection)
                    raise Stopped(reason)

    def _kill(self, connection: Connection) -> None:
        """TERM then KILL the remote process group: closing the channel alone leaves the process running."""
        if self.pid is None:
            return
        group = f"-{self.pid}"
        command = f"kill -TERM -- {group} 2>/dev/null; (sleep 1; kill -KILL -- {group} 2>/dev/null) >/dev/null 2>&1 &"
        try:
            killer = connection.session(command, timeout=5)
            killer.recv_exit_status()
            killer.close()
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the connection is gone, and with it (no pty, but sshd closes the session) nothing more to do
