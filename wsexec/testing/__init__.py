"""Real daemons on loopback for wsexec's tests, the benchmark and the demo host, shipped like fabric.testing.

No pytest here: tests/conftest.py wraps these in fixtures, bench/ and scripts/ use them directly.
"""

from wsexec.testing.servers import Daemon, RedisServer, SshServer, ensure_login_user, free_port, generate_keypair

__all__ = ["Daemon", "RedisServer", "SshServer", "ensure_login_user", "free_port", "generate_keypair"]
