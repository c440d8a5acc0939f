"""The floor: plain paramiko with TCP_NODELAY and host keys checked against known_hosts, nothing else."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import paramiko

from bench.lab import Lab
from wsexec.testing import SshServer

TIMEOUT = 10.0


class RawParamiko:
    """One thread per host; warm runs reuse one open connection per host, cold runs open new ones."""

    name = "paramiko"

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.pkey = paramiko.PKey.from_path(lab.key)
        self.threads = ThreadPoolExecutor(max_workers=len(lab.servers))
        self.warm: dict[SshServer, paramiko.SSHClient] = {}

    def connect(self, server: SshServer) -> paramiko.SSHClient:
        """A verified connection on a socket with Nagle off (paramiko leaves it on: ~40 ms per command)."""
        sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.lab.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(server.host, server.port, username=self.lab.user, pkey=self.pkey, sock=sock,
                       timeout=TIMEOUT, allow_agent=False, look_for_keys=False)
        return client

    @staticmethod
    def run_true(client: paramiko.SSHClient) -> None:
        """`true` on a new channel of the client's transport, as wsexec's worker does."""
        channel = client.get_transport().open_session(timeout=TIMEOUT)  # type: ignore[union-attr]
        channel.exec_command("true")
        status = channel.recv_exit_status()
        channel.close()
        if status != 0:
            raise RuntimeError(f"`true` exited {status}")

    def _connect_and_run(self, server: SshServer) -> paramiko.SSHClient:
        client = self.connect(server)
        self.run_true(client)
        return client

    def prepare(self, servers: list[SshServer], warm: bool) -> None:
        """Warm: open the connections now, outside the timing (kept for every later run)."""
        if warm:
            for server in servers:
                if server not in self.warm:
                    self.warm[server] = self.connect(server)

    def fanout(self, servers: list[SshServer], warm: bool) -> float:
        start = time.perf_counter()
        if warm:
            list(self.threads.map(self.run_true, [self.warm[s] for s in servers]))
            return time.perf_counter() - start
        clients = list(self.threads.map(self._connect_and_run, servers))
        elapsed = time.perf_counter() - start
        for client in clients:
            client.close()
        return elapsed

    def sequential(self, server: SshServer, count: int, warm: bool) -> float:
        client = self.warm[server]
        start = time.perf_counter()
        for _ in range(count):
            self.run_true(client)
        return time.perf_counter() - start

    def close(self) -> None:
        self.threads.shutdown()
        for client in self.warm.values():
            client.close()
        self.warm.clear()
