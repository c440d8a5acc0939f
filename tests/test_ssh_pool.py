"""The SSH pool on its own, in-process against real sshd daemons: reuse, TCP_NODELAY, sshd's limits, eviction."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from workers.ssh import ConnectionPool, Endpoint, SshOptions
from wsexec.testing import SshServer


def run(pool: ConnectionPool, endpoint: Endpoint, script: str) -> tuple[int, str]:
    out = bytearray()
    rc = pool.run(endpoint, script, out.extend, lambda _: None, timeout=30, should_stop=lambda: None)
    return rc, out.decode()


@pytest.fixture
def endpoint(sshd: SshServer, ssh_user: str) -> Endpoint:
    return Endpoint(sshd.host, sshd.port, ssh_user)


@pytest.fixture
def pool(client_key: Path, known_hosts: Path) -> ConnectionPool:
    pool = ConnectionPool(str(client_key), str(known_hosts))
    yield pool
    pool.close()


def test_one_connection_is_reused_with_tcp_nodelay(pool: ConnectionPool, endpoint: Endpoint) -> None:
    clients = {run(pool, endpoint, "echo $SSH_CLIENT")[1] for _ in range(10)}
    assert len(clients) == 1  # same source port: the same TCP connection every time
    (connection,) = pool._connections.values()
    assert connection.transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert connection.transport.packetizer._Packetizer__keepalive_interval == pool.options.keepalive


def test_more_commands_at_once_than_sshd_allows_sessions(pool: ConnectionPool, endpoint: Endpoint) -> None:
    with ThreadPoolExecutor(max_workers=30) as threads:
        results = list(threads.map(lambda i: run(pool, endpoint, f"sleep 0.2; echo {i}"), range(60)))
    assert results == [(0, f"{i}\n") for i in range(60)]
    assert len(pool._connections) == 1


def test_idle_connections_are_evicted(client_key: Path, known_hosts: Path, endpoint: Endpoint) -> None:
    pool = ConnectionPool(str(client_key), str(known_hosts), SshOptions(idle_seconds=0))
    first, second = (run(pool, endpoint, "echo $SSH_CLIENT")[1] for _ in range(2))
    pool.close()
    assert first != second


def test_a_worn_connection_is_renewed_and_closed_once_its_tasks_end(
    client_key: Path, known_hosts: Path, endpoint: Endpoint, gate: Path
) -> None:
    """paramiko keeps every channel id a connection opened: past channels_before_renewal (here 1) a new connection
    takes new work, while a task still running on the worn one finishes there, and the worn one closes after it."""
    pool = ConnectionPool(str(client_key), str(known_hosts), SshOptions(channels_before_renewal=1))
    try:
        first = run(pool, endpoint, "echo $SSH_CLIENT")[1]
        with ThreadPoolExecutor(max_workers=1) as thread:
            waits = f"echo $SSH_CLIENT; while [ ! -e {gate} ]; do sleep 0.05; done"
            running = thread.submit(run, pool, endpoint, waits)
            while not (busy := next(iter(pool._connections.values()))).opened or not busy.in_use:  # its channel open
                time.sleep(0.01)
            second = run(pool, endpoint, "echo $SSH_CLIENT")[1]  # the busy connection is worn: a new one
            assert pool._retiring == [busy] and busy.is_connected  # kept open for the task still on it
            gate.touch()
            rc, long_task = running.result(timeout=30)
        third = run(pool, endpoint, "echo $SSH_CLIENT")[1]  # this call's eviction pass closes the worn one
        assert rc == 0 and len({first, long_task, second, third}) == 4  # four connections, four source ports
        assert pool._retiring == [] and not busy.is_connected
    finally:
        pool.close()


def test_a_connection_the_server_dropped_is_replaced(
    make_sshd, ssh_user: str, client_key: Path, tmp_path: Path
) -> None:
    server = make_sshd("127.0.1.60")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line + "\n")
    pool = ConnectionPool(str(client_key), str(known_hosts))
    endpoint = Endpoint(server.host, server.port, ssh_user)
    assert run(pool, endpoint, "echo one") == (0, "one\n")
    server.stop()  # the host reboots: every session and connection is gone
    server.start()
    assert run(pool, endpoint, "echo two") == (0, "two\n")
    pool.close()
