"""`instances add --scan`: the server's host key as ssh-keyscan fetches it (a key exchange, no login)."""

from __future__ import annotations

import base64
import hashlib
import socket

import paramiko

from wsexec.cli.client import ApiError

TIMEOUT = 10.0


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256:... fingerprint."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def scan(host: str, port: int) -> tuple[str, str]:
    """The host key line ('ssh-ed25519 AAAA...') and its fingerprint."""
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
    except OSError as exc:
        raise ApiError(f"cannot scan {host}:{port}: {exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=TIMEOUT)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ApiError(f"cannot scan {host}:{port}: {exc or type(exc).__name__}") from None
    finally:
        transport.close()
    return f"{key.get_name()} {key.get_base64()}", fingerprint(key)
