"""Opening a channel on a pooled connection: take a slot, retry sshd's MaxSessions refusals, replace a dead connection.

Shared by what runs over a channel (remote.Remote, sftp.Sftp). Retrying is safe: a channel whose request failed
started nothing on the host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import paramiko

from workers.ssh.connection import Connection
from workers.ssh.errors import SshError
from workers.ssh.options import Endpoint

CHANNEL_ATTEMPTS = 50
T = TypeVar("T")


class Connections(Protocol):
    """Where channels get their connections (the pool): the open one for an endpoint, and rid of a dead one."""

    def connection(self, endpoint: Endpoint) -> Connection: ...

    def discard(self, endpoint: Endpoint, connection: Connection) -> None: ...


def open_channel(pool: Connections, endpoint: Endpoint, start: Callable[[Connection], T]) -> tuple[Connection, T]:
    """`start(connection)` on a connection with a slot taken for it; the caller releases the slot when done."""
    reconnects = 0
    for attempt in range(CHANNEL_ATTEMPTS):
        connection = pool.connection(endpoint)
        connection.acquire()
        try:
            return connection, start(connection)
        except paramiko.ChannelException:
            connection.release()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            connection.release()
            if not connection.is_connected:
                pool.discard(endpoint, connection)
                reconnects += 1
                if reconnects > 2:
                    raise SshError("ssh", f"connection to {endpoint} keeps failing: {exc}") from exc
        except BaseException:
            connection.release()
            raise
        time.sleep(0.005 * (attempt + 1))  # sshd frees a session slot a little after the exit status
    raise SshError("channels", f"{endpoint} refused {CHANNEL_ATTEMPTS} channel opens (MaxSessions)")
