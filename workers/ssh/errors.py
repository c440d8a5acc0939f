"""Why a task could not run on its host: SshError with a short reason, and classify() for connect failures."""

from __future__ import annotations

import errno
import socket

import paramiko

from workers.ssh.keys import fingerprint
from workers.ssh.options import Endpoint


class SshError(Exception):
    """The task could not run on its host; `reason` is a short label (for metrics), str() the full story."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Stopped(Exception):
    """The remote process was killed because of a deadline or a stop request; args[0] says which."""


def classify(exc: BaseException, endpoint: Endpoint, timeout: float) -> SshError:
    """What a failed connect means for the task; only reason "dropped" (sshd's MaxStartups) is worth a retry."""
    where = f"{endpoint.host}:{endpoint.port}"
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
        return SshError("timeout", f"connect timeout after {timeout:g} s to {where}")
    if isinstance(exc, ConnectionRefusedError):
        return SshError("refused", f"connection refused by {where}")
    if isinstance(exc, socket.gaierror):
        return SshError("dns", f"cannot resolve {endpoint.host}: {exc.strerror}")
    dropped = isinstance(exc, (ConnectionResetError, EOFError)) or (
        isinstance(exc, paramiko.SSHException) and "banner" in str(exc)
    )
    if dropped or (isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE)):
        return SshError("dropped", f"connection to {where} dropped by the server: {exc}")
    return SshError("ssh", f"ssh to {endpoint} failed: {exc}")
