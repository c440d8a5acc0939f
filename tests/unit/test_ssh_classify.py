"""classify() without sshd: each way a connect fails maps to one reason, and only MaxStartups drops are retried."""

from __future__ import annotations

import errno
import socket

import paramiko
import pytest

from workers.ssh import Endpoint, SshError, classify, parse_host_key

ENDPOINT = Endpoint("127.0.9.9", 2222, "deploy")
# two fixed ed25519 public keys (any 32 bytes make a valid key)
KEY_A = parse_host_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
KEY_B = parse_host_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB")


def banner_timeout() -> paramiko.SSHException:
    """What paramiko raises for a server that accepts TCP but never greets: the timeout is its context."""
    exc = paramiko.SSHException("Error reading SSH protocol banner")
    exc.__context__ = TimeoutError("timed out")
    return exc


CASES = [
    pytest.param(paramiko.BadHostKeyException("[127.0.9.9]:2222", KEY_A, KEY_B), "host_key",
                 "host key changed for [127.0.9.9]:2222", id="changed-host-key"),
    pytest.param(paramiko.AuthenticationException("no"), "auth", "authentication failed for deploy@127.0.9.9:2222",
                 id="auth"),
    pytest.param(TimeoutError("timed out"), "timeout", "connect timeout after 3 s to 127.0.9.9:2222",
                 id="tcp-timeout"),
    pytest.param(banner_timeout(), "timeout", "connect timeout", id="silent-server"),
    pytest.param(paramiko.SSHException("No existing session"), "timeout", "connect timeout", id="connect-wait-ran-out"),
    pytest.param(ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused",
                 "connection refused by 127.0.9.9:2222", id="refused"),
    pytest.param(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns",
                 "cannot resolve 127.0.9.9: Name or service not known", id="dns"),
    pytest.param(ConnectionResetError(errno.ECONNRESET, "reset"), "dropped", "dropped by the server", id="reset"),
    pytest.param(EOFError(), "dropped", "dropped by the server", id="eof"),
    pytest.param(paramiko.SSHException("Error reading SSH protocol banner[Errno 104] Connection reset by peer"),
                 "dropped", "dropped by the server", id="banner-reset"),
    pytest.param(OSError(errno.EPIPE, "Broken pipe"), "dropped", "dropped by the server", id="broken-pipe"),
    pytest.param(paramiko.SSHException("Incompatible ssh peer"), "ssh", "ssh to deploy@127.0.9.9:2222 failed",
                 id="other"),
]


@pytest.mark.parametrize(("exc", "reason", "message"), CASES)
def test_classify(exc: BaseException, reason: str, message: str) -> None:
    error = classify(exc, ENDPOINT, 3.0)
    assert (error.reason, isinstance(error, SshError)) == (reason, True)
    assert message in str(error)


def test_changed_host_key_names_both_fingerprints() -> None:
    error = str(classify(paramiko.BadHostKeyException("h", KEY_A, KEY_B), ENDPOINT, 3.0))
    assert error.count("SHA256:") == 2 and error.endswith("refusing")


def test_an_ssh_error_passes_through_unchanged() -> None:
    original = SshError("host_key", "unknown host key")
    assert classify(original, ENDPOINT, 3.0) is original
