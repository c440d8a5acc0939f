"""Which server keys a connection trusts: the instance's pinned key, else the known_hosts file; never auto-added."""

from __future__ import annotations

import logging
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry

from workers.ssh.errors import SshError
from workers.ssh.keys import fingerprint, parse_host_key
from workers.ssh.options import Endpoint

log = logging.getLogger(__name__)


class _FingerprintPolicy(paramiko.MissingHostKeyPolicy):
    """Accept only the server key whose SHA256 fingerprint was pinned."""

    def __init__(self, expected: str) -> None:
        self.expected = expected.rstrip("=")

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        got = fingerprint(key)
        if got != self.expected:
            raise SshError("host_key", f"host key changed for {hostname}: got {got}, pinned {self.expected}; refusing")


class _Refuse(paramiko.MissingHostKeyPolicy):
    """A key neither pinned nor in known_hosts is refused: trust is configured, never learned."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise SshError(
            "host_key",
            f"unknown host key for {hostname} ({fingerprint(key)}): not in known_hosts and not pinned; refusing",
        )


def _names_match(patterns: list[str], name: str) -> bool:
    """Plain or hashed (`|1|salt|hash`) host names, as paramiko matches them (no wildcards)."""
    for pattern in patterns:
        if pattern == name:
            return True
        if pattern.startswith("|1|"):
            try:
                if paramiko.HostKeys.hash_host(name, pattern) == pattern:
                    return True
            except Exception:  # a broken salt is one more bad line, not a reason to fail the file
                continue
    return False


def known_keys(path: str, name: str) -> list[paramiko.PKey]:
    """The keys known_hosts lists for `name`, read as OpenSSH reads it: a bad line is skipped with a warning.

    paramiko's own loader stops at the first undecodable key, which made one broken line for any host refuse
    every host. Keys under `@revoked` are never trusted; `@cert-authority` lines are skipped (no certificates).
    """
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    keys: list[paramiko.PKey] = []
    revoked: set[bytes] = set()
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.strip()
        try:
            entry = HostKeyEntry.from_line(line, lineno)
            problem = "too few fields or an unsupported key type"
        except Exception as exc:  # InvalidHostKey, SSHException, ValueError...: whatever one line holds
            entry, problem = None, str(exc) or type(exc).__name__
        if entry is None:
            log.warning("%s:%d: not a host key line (%s); skipped", path, lineno, problem)
        elif marker == "@revoked":
            revoked.add(entry.key.asbytes())
        elif marker:
            log.info("%s:%d: %s lines are not supported; skipped", path, lineno, marker)
        elif _names_match(entry.hostnames, name):
            keys.append(entry.key)
    return [key for key in keys if key.asbytes() not in revoked]


def trusting_client(endpoint: Endpoint, known_hosts: str) -> paramiko.SSHClient:
    """A client that trusts only the pinned key, or else the known_hosts file; a pin wins over the file."""
    client = paramiko.SSHClient()
    pinned = (endpoint.host_key or "").strip()
    if pinned.startswith("SHA256:"):
        client.set_missing_host_key_policy(_FingerprintPolicy(pinned))
        return client
    name, trusted = endpoint.known_hosts_name, client.get_host_keys()
    for key in [parse_host_key(pinned)] if pinned else known_keys(known_hosts, name):
        if key.get_name() not in (trusted.lookup(name) or {}):  # the first line per key type wins, as in paramiko
            trusted.add(name, key.get_name(), key)
    client.set_missing_host_key_policy(_Refuse())
    return client
