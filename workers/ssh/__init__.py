"""Everything paramiko, shaped like fabric: a verified Connection, a Remote that runs one script, and the pool.

options (Endpoint, SshOptions) · keys (parsing, fingerprints) · trust (pin or known_hosts) · errors (SshError,
classify) · connection (open, retry, TCP_NODELAY, slots) · remote (run, stream, stop) · pool (lookup, limits).
"""

from workers.ssh.connection import Connection
from workers.ssh.errors import SshError, Stopped, classify
from workers.ssh.keys import fingerprint, parse_host_key
from workers.ssh.options import Endpoint, SshOptions
from workers.ssh.pool import ConnectionPool
from workers.ssh.remote import Remote

__all__ = [
    "Connection",
    "ConnectionPool",
    "Endpoint",
    "Remote",
    "SshError",
    "SshOptions",
    "Stopped",
    "classify",
    "fingerprint",
    "parse_host_key",
]
