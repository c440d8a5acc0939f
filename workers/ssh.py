"""Everything paramiko: verified connections with TCP_NODELAY, a pool that reuses them, and remote execution
that streams output, honours a deadline and a stop request, and kills the remote process group when it stops.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

OutputCallback = Callable[[bytes], None]
StopCheck = Callable[[], "str | None"]

READ_SIZE = 64 * 1024
STOP_POLL_SECONDS = 0.2
CONNECT_ATTEMPTS = 6
CHANNEL_ATTEMPTS = 50


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to log in; host_key pins the server key (a public-key line or a SHA256: fingerprint)."""

    host: str
    port: int
    user: str
    host_key: str | None = None

    @property
    def pool_key(self) -> tuple[str, int, str, str | None]:
        """The pin is part of the key: a connection verified under one pin must not serve another."""
        return (self.host, self.port, self.user, self.host_key)

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class SshOptions:
    connect_timeout: float = 10.0
    keepalive: int = 15
    idle_seconds: int = 300
    channels_per_connection: int = 9
    connects_per_host: int = 8


class SshError(Exception):
    """The task could not run on its host; `reason` is a short label (for metrics), str() the full story."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Stopped(Exception):
    """The remote process was killed because of a deadline or a stop request; args[0] says which."""


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_host_key(line: str) -> paramiko.PKey:
    """An OpenSSH public-key line ('ssh-ed25519 AAAA... [comment]') as a paramiko key."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError("expected '<type> <base64 key>'")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1], validate=True))
    except (binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"not a valid {parts[0]} public key: {exc}") from exc


class _FingerprintPolicy(paramiko.MissingHostKeyPolicy):
    """Accept only the server key whose SHA256 fingerprint was pinned."""

    def __init__(self, expected: str) -> None:
        self.expected = expected.rstrip("=")

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if fingerprint(key) != self.expected:
            got = fingerprint(key)
            raise SshError("host_key", f"host key changed for {hostname}: got {got}, pinned {self.expected}; refusing")


class _Refuse(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise SshError(
            "host_key",
            f"unknown host key for {hostname} ({fingerprint(key)}): not in known_hosts and not pinned; refusing",
        )


class Connection:
    """One open SSH connection and the channel slots sshd's MaxSessions leaves us."""

    def __init__(self, client: paramiko.SSHClient, channels: int) -> None:
        self.client = client
        self.transport: paramiko.Transport = client.get_transport()  # type: ignore[assignment]
        self.capacity = channels
        self.slots = threading.BoundedSemaphore(channels)
        self.last_used = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.transport.is_active()

    def close(self) -> None:
        self.client.close()


class ConnectionPool:
    """Per-process SSH connections keyed by (host, port, user), opened on demand and reused by every task."""

    def __init__(self, key_path: str, known_hosts: str, options: SshOptions | None = None) -> None:
        self.pkey = paramiko.PKey.from_path(key_path)
        self.known_hosts = known_hosts
        self.options = options or SshOptions()
        self._connections: dict[tuple[str, int, str, str | None], Connection] = {}
        self._lock = threading.Lock()
        self._open_locks: dict[tuple[str, int, str, str | None], threading.Lock] = {}
        self._connect_slots: dict[str, threading.BoundedSemaphore] = {}

    # -- connections ---------------------------------------------------------------------------------

    def _client(self, endpoint: Endpoint) -> paramiko.SSHClient:
        """A client that trusts only the pinned key, or else the known_hosts file; never auto-adds."""
        client = paramiko.SSHClient()
        pinned = (endpoint.host_key or "").strip()
        if pinned.startswith("SHA256:"):
            client.set_missing_host_key_policy(_FingerprintPolicy(pinned))
            return client
        if pinned:
            key = parse_host_key(pinned)
            client.get_host_keys().add(endpoint.known_hosts_name, key.get_name(), key)
        else:
            try:
                client.load_system_host_keys(self.known_hosts)
            except FileNotFoundError:
                pass
        client.set_missing_host_key_policy(_Refuse())
        return client

    def _open(self, endpoint: Endpoint) -> Connection:
        """Connect with TCP_NODELAY (paramiko leaves Nagle on: ~40 ms per command), retrying sshd's drops."""
        timeout = self.options.connect_timeout
        with self._lock:
            slots = self._connect_slots.setdefault(
                endpoint.host, threading.BoundedSemaphore(self.options.connects_per_host)
            )
        for attempt in range(CONNECT_ATTEMPTS):
            client = self._client(endpoint)
            try:
                with slots:
                    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    client.connect(
                        endpoint.host,
                        endpoint.port,
                        username=endpoint.user,
                        pkey=self.pkey,
                        sock=sock,
                        timeout=timeout,
                        banner_timeout=timeout,
                        auth_timeout=timeout,
                        allow_agent=False,
                        look_for_keys=False,
                    )
            except Exception as exc:
                client.close()
                error = self._connect_error(endpoint, exc)
                if error.reason != "dropped" or attempt == CONNECT_ATTEMPTS - 1:
                    raise error from exc
                time.sleep(0.05 * 2**attempt)  # MaxStartups dropped us before the banner: back off and retry
                continue
            transport: paramiko.Transport = client.get_transport()  # type: ignore[assignment]
            transport.set_keepalive(self.options.keepalive)
            # paramiko asks to rekey after 512 MiB received, and that rekey can stall for good while a task's
            # output is streaming (the reader's window adjust waits on a key exchange that never completes; seen
            # on 1 GB outputs). Leave rekeying to sshd (RekeyLimit) and a fresh connection per idle period.
            transport.packetizer.REKEY_BYTES = transport.packetizer.REKEY_PACKETS = 2**40
            return Connection(client, self.options.channels_per_connection)
        raise AssertionError("unreachable")

    def _connect_error(self, endpoint: Endpoint, exc: Exception) -> SshError:
        timeout = self.options.connect_timeout
        if isinstance(exc, SshError):
            return exc
        if isinstance(exc, paramiko.BadHostKeyException):
            return SshError(
                "host_key",
                f"host key changed for {endpoint.known_hosts_name}: got {fingerprint(exc.key)}, "
                f"expected {fingerprint(exc.expected_key)}; refusing",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return SshError("auth", f"authentication failed for {endpoint}")
        # paramiko reports a silent server as a banner error caused by a timeout, or as "No existing session"
        # when connect()'s own wait ran out first: a timeout either way, not a MaxStartups drop to retry.
        silent = isinstance(exc, paramiko.SSHException) and (
            isinstance(exc.__context__, (socket.timeout, TimeoutError)) or str(exc) == "No existing session"
        )
        if silent or isinstance(exc, (socket.timeout, TimeoutError)):
            return SshError("timeout", f"connect timeout after {timeout:g} s to {endpoint.host}:{endpoint.port}")
        if isinstance(exc, ConnectionRefusedError):
            return SshError("refused", f"connection refused by {endpoint.host}:{endpoint.port}")
        if isinstance(exc, socket.gaierror):
            return SshError("dns", f"cannot resolve {endpoint.host}: {exc.strerror}")
        dropped = isinstance(exc, (ConnectionResetError, EOFError)) or (
            isinstance(exc, paramiko.SSHException) and "banner" in str(exc)
        )
        if dropped or (isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE)):
            return SshError("dropped", f"connection to {endpoint.host}:{endpoint.port} dropped by the server: {exc}")
        return SshError("ssh", f"ssh to {endpoint} failed: {exc}")

    def _connection(self, endpoint: Endpoint) -> Connection:
        """The pooled connection for the endpoint; one thread opens it while the others wait to share it."""
        key = endpoint.pool_key
        self._evict_idle()
        with self._lock:
            opening = self._open_locks.setdefault(key, threading.Lock())
        with opening:
            connection = self._connections.get(key)
            if connection is None or not connection.alive:
                if connection is not None:
                    connection.close()
                connection = self._connections[key] = self._open(endpoint)
        connection.last_used = time.monotonic()
        return connection

    def _discard(self, endpoint: Endpoint, connection: Connection) -> None:
        """Drop a connection that failed, unless another thread already replaced it."""
        with self._lock:
            key = endpoint.pool_key
            if self._connections.get(key) is connection:
                del self._connections[key]
        connection.close()

    def _evict_idle(self) -> None:
        limit = time.monotonic() - self.options.idle_seconds
        with self._lock:
            stale = [k for k, c in self._connections.items() if c.last_used < limit and c.slots._value == c.capacity]
            for key in stale:
                self._connections.pop(key).close()

    def close(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()

    # -- execution ---------------------------------------------------------------------------------

    def _start(self, endpoint: Endpoint, command: str) -> tuple[Connection, paramiko.Channel]:
        """Open a channel and exec; retry sshd's MaxSessions refusals and replace a connection that died.

        Retrying is safe: a command whose exec request failed never started.
        """
        reconnects = 0
        for attempt in range(CHANNEL_ATTEMPTS):
            connection = self._connection(endpoint)
            connection.slots.acquire()
            try:
                channel = connection.transport.open_session(timeout=self.options.connect_timeout)
                channel.exec_command(command)
                return connection, channel
            except paramiko.ChannelException:
                connection.slots.release()
            except (paramiko.SSHException, EOFError, OSError) as exc:
                connection.slots.release()
                if not connection.alive:
                    self._discard(endpoint, connection)
                    reconnects += 1
                    if reconnects > 2:
                        raise SshError("ssh", f"connection to {endpoint} keeps failing: {exc}") from exc
            time.sleep(0.005 * (attempt + 1))  # sshd frees a session slot a little after the exit status
        raise SshError("channels", f"{endpoint} refused {CHANNEL_ATTEMPTS} channel opens (MaxSessions)")

    def run(
        self,
        endpoint: Endpoint,
        script: str,
        on_stdout: OutputCallback,
        on_stderr: OutputCallback,
        timeout: float,
        should_stop: StopCheck,
    ) -> int:
        """Run `script` with /bin/sh on the host and return its exit status; raise Stopped or SshError."""
        # The login shell prints its PID (its process group) first, so a stop can kill the whole group. Stdin is
        # /dev/null: a script that reads it gets EOF (sending our own EOF races with a fast command's close, and
        # sshd drops the whole connection for an EOF on a channel it has already freed).
        command = f"echo $$; exec /bin/sh -c {shlex.quote(script)} </dev/null"
        connection, channel = self._start(endpoint, command)
        try:
            return _Execution(channel, on_stdout, on_stderr).wait(connection, timeout, should_stop)
        finally:
            try:
                channel.close()
            except (paramiko.SSHException, EOFError, OSError):
                pass  # the connection died under us; the pool replaces it on next use
            connection.slots.release()
            connection.last_used = time.monotonic()


class _Execution:
    """One remote command: splits the PID line off stdout, streams the rest, stops it on request."""

    def __init__(self, channel: paramiko.Channel, on_stdout: OutputCallback, on_stderr: OutputCallback) -> None:
        self.channel = channel
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.pid: int | None = None
        self._head = b""

    def _stdout(self, data: bytes) -> None:
        if self.pid is None and self._head is not None:
            self._head += data
            line, newline, rest = self._head.partition(b"\n")
            if not newline:
                return
            self._head = None  # type: ignore[assignment]
            if line.strip().isdigit():
                self.pid = int(line)
                data = rest
            else:
                data = line + newline + rest
        if data:
            self.on_stdout(data)

    def _drain(self) -> None:
        channel = self.channel
        while channel.recv_ready():
            self._stdout(channel.recv(READ_SIZE))
        while channel.recv_stderr_ready():
            self.on_stderr(channel.recv_stderr(READ_SIZE))

    def wait(self, connection: Connection, timeout: float, should_stop: StopCheck) -> int:
        channel = self.channel
        deadline = time.monotonic() + timeout
        next_stop_check = time.monotonic() + STOP_POLL_SECONDS
        while True:
            select.select([channel], [], [], STOP_POLL_SECONDS)
            self._drain()
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
            killer = connection.transport.open_session(timeout=5)
            killer.exec_command(command)
            killer.recv_exit_status()
            killer.close()
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the connection is gone, and with it (no pty, but sshd closes the session) nothing more to do
