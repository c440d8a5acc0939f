"""The worker's SSH connections: one per endpoint, reused by every task, opened a few at a time, evicted when idle,
renewed when worn (their tasks finish on the old one, which closes once idle)."""

from __future__ import annotations

import threading
import time

import paramiko

from workers.ssh.connection import Connection
from workers.ssh.options import Endpoint, SshOptions
from workers.ssh.remote import OutputCallback, PidCallback, Remote, StopCheck

PoolKey = tuple[str, int, str, str | None]


class ConnectionPool:
    """Per-process SSH connections keyed by (host, port, user, pin): lookup, a per-host open limit, idle eviction."""

    def __init__(self, key_path: str, known_hosts: str, options: SshOptions | None = None) -> None:
        self.pkey = paramiko.PKey.from_path(key_path)
        self.known_hosts = known_hosts
        self.options = options or SshOptions()
        self._connections: dict[PoolKey, Connection] = {}
        self._lock = threading.Lock()
        self._open_locks: dict[PoolKey, threading.Lock] = {}
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        self._retiring: list[Connection] = []  # worn connections replaced while channels were still open on them

    def connection(self, endpoint: Endpoint) -> Connection:
        """The open connection for the endpoint; one thread opens it while the others wait to share it."""
        key = endpoint.pool_key
        self._evict_idle()
        with self._lock:
            opening = self._open_locks.setdefault(key, threading.Lock())
            gate = self._gates.setdefault(endpoint.host, threading.BoundedSemaphore(self.options.connects_per_host))
        with opening:
            connection = self._connections.get(key)
            if connection is None or not connection.is_connected or connection.worn:
                if connection is not None:
                    self._retire(connection)
                connection = Connection(endpoint, self.pkey, self.known_hosts, self.options).open(gate)
                self._connections[key] = connection
        connection.last_used = time.monotonic()
        return connection

    def discard(self, endpoint: Endpoint, connection: Connection) -> None:
        """Drop a connection that failed, unless another thread already replaced it."""
        with self._lock:
            key = endpoint.pool_key
            if self._connections.get(key) is connection:
                del self._connections[key]
        connection.close()

    def _retire(self, connection: Connection) -> None:
        """Close a replaced connection now if no task uses it, else once its last task is done (_evict_idle)."""
        if connection.idle or not connection.is_connected:
            connection.close()
        else:
            with self._lock:
                self._retiring.append(connection)

    def _evict_idle(self) -> None:
        limit = time.monotonic() - self.options.idle_seconds
        with self._lock:
            stale = [key for key, c in self._connections.items() if c.last_used < limit and c.idle]
            for key in stale:
                self._connections.pop(key).close()
            done = [c for c in self._retiring if c.idle or not c.is_connected]
            for connection in done:
                self._retiring.remove(connection)
                connection.close()

    def close(self) -> None:
        with self._lock:
            for connection in [*self._connections.values(), *self._retiring]:
                connection.close()
            self._connections.clear()
            self._retiring.clear()

    def run(
        self,
        endpoint: Endpoint,
        script: str,
        on_stdout: OutputCallback,
        on_stderr: OutputCallback,
        timeout: float,
        should_stop: StopCheck,
        on_pid: PidCallback | None = None,
        run_as: str | None = None,
    ) -> int:
        """Run `script` with /bin/sh on the host (as `run_as`, through sudo) and return its exit status; raise Stopped
        or SshError."""
        return Remote(self, endpoint, on_stdout, on_stderr, on_pid).run(script, timeout, should_stop, run_as)

    def kill(self, endpoint: Endpoint, pid: int, run_as: str | None = None) -> str:
        """Kill the remote process group `pid` that a worker now gone started, as a stop would; say how it went."""
        remote = Remote(self, endpoint, _ignore, _ignore)
        remote.pid, remote.run_as = pid, run_as
        return remote.kill()


def _ignore(data: bytes) -> None:
    """Output of a Remote that runs nothing (it only kills)."""
