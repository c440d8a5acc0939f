"""Where to log in (Endpoint) and how the worker's SSH connections behave (SshOptions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsexec.config import Settings


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to log in; host_key pins the server key (a public-key line or a SHA256: fingerprint)."""

    host: str
    port: int
    user: str
    host_key: str | None = None

    @property
    def pool_key(self) -> tuple[str, int, str, str | None]:
        """The pin is part of the key: a connection verified under one pin must not serve another."""
        return (self.host, self.port, self.user, self.host_key)

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH writes in known_hosts: bare host on port 22, `[host]:port` otherwise."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class SshOptions:
    """Timeouts and sshd's limits (MaxSessions, MaxStartups) as the pool respects them."""

    connect_timeout: float = 10.0
    keepalive: int = 15
    idle_seconds: int = 300
    channels_per_connection: int = 9
    connects_per_host: int = 8
    # paramiko's Transport remembers every channel id it ever opened (channels_seen, ~45 B each, never pruned: it tells
    # a late message for a closed channel from a protocol error), so a pooled connection is renewed after this many
    channels_before_renewal: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> SshOptions:
        """The one place that maps wsexec's settings onto SSH options."""
        return cls(
            connect_timeout=settings.connect_timeout,
            keepalive=settings.ssh_keepalive,
            idle_seconds=settings.ssh_idle,
            channels_per_connection=settings.channels_per_connection,
            connects_per_host=settings.connects_per_host,
        )
