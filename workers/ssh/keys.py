"""Public host keys: OpenSSH key lines to paramiko keys, and the SHA256 fingerprints `ssh-keygen -l` prints."""

from __future__ import annotations

import base64
import binascii
import hashlib

import paramiko


def fingerprint(key: paramiko.PKey) -> str:
    """`SHA256:<base64 without padding>`, so an operator can compare it with `ssh-keygen -l -E sha256`."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def authorized_key_line(key: paramiko.PKey) -> str:
    """The key as a line of authorized_keys, the form register.sh installs on new servers."""
    return f"{key.get_name()} {key.get_base64()} wsexec"


def parse_host_key(line: str) -> paramiko.PKey:
    """An OpenSSH public-key line ('ssh-ed25519 AAAA... [comment]') as a paramiko key."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError("expected '<type> <base64 key>'")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1], validate=True))
    except (binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"not a valid {parts[0]} public key: {exc}") from exc
