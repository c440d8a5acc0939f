"""Which server keys a connection trusts: the instance's pinned key, else the known_hosts file; never auto-added."""

from __future__ import annotations

import paramiko

from workers.ssh.errors import SshError
from workers.ssh.keys import fingerprint, parse_host_key
from workers.ssh.options import Endpoint


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


def trusting_client(endpoint: Endpoint, known_hosts: str) -> paramiko.SSHClient:
    """A client that trusts only the pinned key, or else the known_hosts file; a pin wins over the file."""
    client = paramiko.SSHClient()
    pinned = (endpoint.host_key or "").strip()
    if pinned.startswith("SHA256:"):
        client.set_missing_host_key_policy(_FingerprintPolicy(pinned))
        return client
    if pinned:
        key = parse_host_key(pinned)
        client.get_host_keys().add(endpoint.known_hosts_name, key.get_name(), key)
    else:
        try:
            client.load_system_host_keys(known_hosts)
        except FileNotFoundError:
            pass
    client.set_missing_host_key_policy(_Refuse())
    return client
