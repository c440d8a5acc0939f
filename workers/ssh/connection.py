"""One SSH connection, shaped like fabric's: opened on demand, verified, a context manager, with channel slots."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import paramiko

from workers.ssh.errors import SshError, classify
from workers.ssh.options import Endpoint, SshOptions
from workers.ssh.trust import trusting_client

CONNECT_ATTEMPTS = 6
# paramiko asks to rekey after 512 MiB received, and that rekey can stall for good while a task's output is
# streaming (the reader's window adjust waits on a key exchange that never completes; seen on 1 GB outputs).
# Leave rekeying to sshd (RekeyLimit) and a fresh connection per idle period.
NO_CLIENT_REKEY = 2**40


class Connection:
    """A verified connection to one endpoint and the channel slots sshd's MaxSessions leaves it."""

    def __init__(self, endpoint: Endpoint, pkey: paramiko.PKey, known_hosts: str, options: SshOptions) -> None:
        self.endpoint = endpoint
        self.pkey = pkey
        self.known_hosts = known_hosts
        self.options = options
        self.client: paramiko.SSHClient | None = None
        self.transport: paramiko.Transport | None = None
        self.capacity = options.channels_per_connection
        self.in_use = 0
        self.opened = 0  # channels opened on it so far (see SshOptions.channels_before_renewal)
        self._slots = threading.Condition()
        self.last_used = time.monotonic()

    @property
    def is_connected(self) -> bool:
        """True while the SSH transport is up (fabric's `transport.active`)."""
        return self.transport is not None and self.transport.is_active()

    @property
    def worn(self) -> bool:
        """It has opened as many channels as a connection should: new work goes to a new one."""
        return self.opened >= self.options.channels_before_renewal

    @property
    def idle(self) -> bool:
        """No channel is in use, so closing the connection interrupts no task."""
        with self._slots:
            return self.in_use == 0

    def open(self, gate: AbstractContextManager[Any] | None = None) -> Connection:
        """Connect with TCP_NODELAY (paramiko leaves Nagle on: ~40 ms per command), retrying sshd's drops.

        `gate` bounds the connects in flight to one host (sshd's MaxStartups); it is not held while backing off.
        """
        if self.is_connected:
            return self
        timeout = self.options.connect_timeout
        for attempt in range(CONNECT_ATTEMPTS):
            client = trusting_client(self.endpoint, self.known_hosts)
            try:
                with gate or nullcontext():
                    client.connect(
                        self.endpoint.host,
                        self.endpoint.port,
                        username=self.endpoint.user,
                        pkey=self.pkey,
                        sock=self._socket(),
                        timeout=timeout,
                        banner_timeout=timeout,
                        auth_timeout=timeout,
                        allow_agent=False,
                        look_for_keys=False,
                    )
            except Exception as exc:
                client.close()
                error = classify(exc, self.endpoint, timeout)
                if error.reason != "dropped" or attempt == CONNECT_ATTEMPTS - 1:
                    raise error from exc
                time.sleep(0.05 * 2**attempt)  # MaxStartups dropped us before the banner: back off and retry
                continue
            transport: paramiko.Transport = client.get_transport()  # type: ignore[assignment]
            transport.set_keepalive(self.options.keepalive)
            transport.packetizer.REKEY_BYTES = transport.packetizer.REKEY_PACKETS = NO_CLIENT_REKEY
            self.client, self.transport = client, transport
            return self
        raise AssertionError("unreachable")

    def _socket(self) -> socket.socket:
        sock = socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=self.options.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        """Close the connection (and every channel on it); a no-op if it never opened."""
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> Connection:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def acquire(self) -> None:
        """Take a channel slot, waiting while all of them are in use."""
        with self._slots:
            while self.in_use >= self.capacity:
                self._slots.wait()
            self.in_use += 1

    def release(self) -> None:
        """Give a channel slot back and wake one waiter."""
        with self._slots:
            self.in_use -= 1
            self.last_used = time.monotonic()
            self._slots.notify()

    def session(self, command: str, timeout: float | None = None) -> paramiko.Channel:
        """A new channel executing `command`; the caller holds a slot. Raises paramiko's errors as they come."""
        if self.transport is None:
            raise paramiko.SSHException(f"connection to {self.endpoint} is not open")
        channel = self.transport.open_session(timeout=timeout or self.options.connect_timeout)
        self.opened += 1
        channel.exec_command(command)
        return channel

    def sftp(self, timeout: float) -> paramiko.SFTPClient:
        """A new SFTP session whose requests give up after `timeout` s; the caller holds a slot. SshError("sftp")
        when the host has no SFTP subsystem; paramiko's errors as they come otherwise."""
        if self.transport is None:
            raise paramiko.SSHException(f"connection to {self.endpoint} is not open")
        channel = self.transport.open_session(timeout=self.options.connect_timeout)
        self.opened += 1
        try:
            channel.invoke_subsystem("sftp")
            channel.settimeout(timeout)
            return paramiko.SFTPClient(channel)
        except paramiko.SSHException as exc:
            channel.close()
            if self.is_connected:  # refused, not lost: retrying cannot help
                raise SshError("sftp", f"{self.endpoint} has no SFTP subsystem (sshd_config: Subsystem sftp "
                                       f"internal-sftp): {exc}") from exc
            raise
