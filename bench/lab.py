"""The machines the benchmark talks to: a private redis-server and N sshd daemons on 127.0.2.x, all ours to stop."""

from __future__ import annotations

import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Self

from wsexec.testing import RedisServer, SshServer, ensure_login_user, free_port, generate_keypair

USER = "wsexec-bench"


class Lab:
    """Redis, sshd daemons (default limits), a plain login user, a client key and a known_hosts file."""

    def __init__(self, hosts: int = 20) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="wsexec-bench-"))
        self.host_count = hosts
        self.user = USER
        self.key = self.workdir / "id_ed25519"
        self.known_hosts = self.workdir / "known_hosts"
        self.redis = RedisServer(self.workdir / "redis")
        self.servers: list[SshServer] = []
        self._stack = ExitStack()

    def start(self) -> Self:
        """Create the user and the key, start every daemon and write known_hosts for them."""
        ensure_login_user(self.user)
        authorized = self.workdir / "authorized_keys"
        authorized.write_text(generate_keypair(self.key) + "\n")
        self._stack.enter_context(self.redis.start())
        for number in range(1, self.host_count + 1):
            host = f"127.0.2.{number}"
            server = SshServer(self.workdir / f"sshd-{number}", host, free_port(host), self.user, authorized)
            self.servers.append(self._stack.enter_context(server.start()))
        self.known_hosts.write_text("".join(s.known_hosts_line + "\n" for s in self.servers))
        return self

    def stop(self, keep_files: bool = False) -> None:
        """Stop every daemon we started (exactly those PIDs); keep the logs only when asked."""
        self._stack.close()
        if not keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        """On error or Ctrl-C, keep the daemons' (and gunicorn's and the workers') logs for a look."""
        self.stop(keep_files=exc_type is not None)
        if exc_type is not None:
            print(f"bench: logs kept in {self.workdir}", file=sys.stderr)
