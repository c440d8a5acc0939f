"""Real redis-server and OpenSSH sshd daemons on loopback, each one a child process we start and stop."""

from __future__ import annotations

import atexit
import os
import pwd
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """Let the kernel pick a port that is free on host right now, so parallel daemons don't collide."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_login_user(name: str = "wsexec-test", shell: str = "/bin/bash") -> str:
    """Create the local login user once; password '*' because sshd without PAM refuses '!'-locked accounts."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        # A parallel test process may win the race: only the final lookup decides.
        subprocess.run(["useradd", "--create-home", "--shell", shell, "--password", "*", name],
                       check=False, capture_output=True)
        pwd.getpwnam(name)
    return name


def generate_keypair(path: Path) -> str:
    """Create an ed25519 key pair once (keeps it across runs) and return its public key line."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                       check=True, capture_output=True)
    return Path(f"{path}.pub").read_text().strip()


def _children(pid: int) -> list[int]:
    """PIDs whose parent is pid (from /proc), to stop what a daemon forked without guessing by name."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _log_tail(log: Path, chars: int = 2000) -> str:
    """The end of a daemon's log, so a failed start explains itself."""
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


class Daemon:
    """One child process we started: spawn, wait until it answers, stop exactly that PID."""

    name = "daemon"
    proc: subprocess.Popen[bytes] | None = None
    _atexit_registered = False

    def __init__(self, workdir: Path, host: str, port: int) -> None:
        self.workdir = Path(workdir).resolve()
        self.host = host
        self.port = port
        self.log = self.workdir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        """True while our child process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, cmd: list[str], ready: Callable[[], bool]) -> None:
        """Start cmd with its output appended to self.log and wait until ready() or fail with the log."""
        if not self._atexit_registered:  # never leak a daemon, whatever the caller forgets
            atexit.register(self.stop)
            self._atexit_registered = True
        if threading.current_thread() is threading.main_thread():
            # Also stop it if we get SIGKILLed (atexit can't run). Linux ties this signal to the forking *thread*,
            # hence main thread only: a daemon started from a short-lived thread would die with that thread.
            cmd = ["setpriv", "--pdeathsig", "TERM", "--", *cmd]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{_log_tail(self.log)}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready on {self.host}:{self.port} after "
                                   f"{START_TIMEOUT}s:\n{_log_tail(self.log)}")
            time.sleep(0.05)

    def _connect(self) -> socket.socket | None:
        """A connection to the daemon's port, or None while nothing listens yet."""
        try:
            return socket.create_connection((self.host, self.port), timeout=1)
        except OSError:
            return None

    def stop(self) -> None:
        """SIGTERM exactly our PID (both daemons shut down cleanly on it), SIGKILL if it hangs; idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def start(self) -> Self:
        """Start the daemon and return once it serves."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()  # a no-op if already started: `with Server(...).start() as s` works too

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _pongs(daemon: Daemon, *commands: str) -> bool:
    """True once the Redis-protocol daemon answers the commands, the last of them with +PONG."""
    sock = daemon._connect()
    if sock is None:
        return False
    with sock:
        try:
            sock.sendall("".join(f"{command}\r\n" for command in commands).encode())
            answer = b""
            while answer.count(b"\r\n") < len(commands) and (chunk := sock.recv(256)):
                answer += chunk
            return answer.endswith(b"+PONG\r\n")
        except OSError:
            return False


class RedisServer(Daemon):
    """A private redis-server with AOF on (tests restart it mid-run) that, like production, refuses strangers.

    The default user needs `password`; `users` adds ACL users (name -> rules, e.g. "~wsexec:* +@all"), each with a
    password of its own. Both live in a mode-600 redis.conf, never on a command line that `ps` shows.
    """

    name = "redis"
    password: str
    users: dict[str, tuple[str, str]]

    def __init__(self, workdir: Path, host: str = "127.0.0.1", port: int | None = None,
                 users: dict[str, str] | None = None, replica_of: RedisServer | None = None) -> None:
        super().__init__(workdir, host, port or free_port(host))
        # A replica shares its primary's passwords and users: after a failover either one may be the primary.
        self.password = replica_of.password if replica_of else secrets.token_hex(16)
        self.users = replica_of.users if replica_of else {
            name: (secrets.token_hex(16), rules) for name, rules in (users or {}).items()}
        self.replica_of = replica_of
        self.config = self.workdir / "redis.conf"

    def _url(self, user: str, password: str) -> str:
        return f"redis://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/0"

    @property
    def url(self) -> str:
        """The redis:// URL of the default (all-powerful) user, with its password."""
        return self._url("", self.password)

    def user_url(self, name: str) -> str:
        """The redis:// URL of one of the ACL users, with its password."""
        return self._url(name, self.users[name][0])

    def _pong(self) -> bool:
        """True once an authenticated PING answers +PONG (not -LOADING while the AOF is replayed)."""
        return _pongs(self, f"AUTH {self.password}", "PING")

    def _write_config(self) -> None:
        """Passwords and ACL users in a file only we read (redis-server reads it before anything connects)."""
        lines = [f"requirepass {self.password}", f"masterauth {self.password}"]
        lines += [f"user {name} on >{password} {rules}" for name, (password, rules) in self.users.items()]
        if self.replica_of:
            lines.append(f"replicaof {self.replica_of.host} {self.replica_of.port}")
        self.config.touch(mode=0o600)
        self.config.chmod(0o600)
        self.config.write_text("".join(f"{line}\n" for line in lines))

    def start(self) -> Self:
        """Run redis-server in the foreground as our child and wait until it answers PING; no-op if running."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._spawn(["redis-server", str(self.config), "--port", str(self.port), "--bind", self.host,
                     "--dir", str(self.workdir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                     "--daemonize", "no"], self._pong)
        return self

    def restart(self, down_seconds: float = 0) -> Self:
        """Stop (SIGTERM flushes the AOF), stay down a while, start again on the same port, dir and passwords."""
        self.stop()
        time.sleep(down_seconds)
        return self.start()


class SentinelServer(Daemon):
    """A real redis-sentinel (Debian's package) watching `primary` under the name `master`, quick to declare it down.

    Its config file is its own (sentinel rewrites it with what it learns: replicas, other sentinels, new primary).
    """

    name = "sentinel"

    def __init__(self, workdir: Path, primary: RedisServer, master: str = "wsexec", quorum: int = 2,
                 down_after_ms: int = 1000, host: str = "127.0.0.1", port: int | None = None) -> None:
        super().__init__(workdir, host, port or free_port(host))
        self.primary, self.master, self.quorum, self.down_after_ms = primary, master, quorum, down_after_ms
        self.config = self.workdir / "sentinel.conf"

    def _pong(self) -> bool:
        return _pongs(self, "PING")

    def start(self) -> Self:
        """Write the monitor config and run redis-sentinel in the foreground as our child; no-op if running."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"port {self.port}", f"bind {self.host}", f"dir {self.workdir}",
                 f"sentinel monitor {self.master} {self.primary.host} {self.primary.port} {self.quorum}",
                 f"sentinel auth-pass {self.master} {self.primary.password}",
                 f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}",
                 f"sentinel failover-timeout {self.master} 10000",
                 f"sentinel parallel-syncs {self.master} 1"]
        self.config.touch(mode=0o600)
        self.config.chmod(0o600)
        self.config.write_text("".join(f"{line}\n" for line in lines))
        self._spawn(["redis-sentinel", str(self.config), "--daemonize", "no"], self._pong)
        return self


class SshServer(Daemon):
    """A real sshd on its own loopback address/port with its own host key: one 'remote machine' for tests."""

    name = "sshd"

    def __init__(self, workdir: Path, host: str, port: int, user: str, authorized_keys: Path,
                 options: dict[str, str] | None = None) -> None:
        super().__init__(workdir, host, port)
        self.user = user
        self.authorized_keys = Path(authorized_keys).resolve()
        self.options = dict(options or {})
        self.host_key = self.workdir / "ssh_host_ed25519_key"
        self.config = self.workdir / "sshd_config"

    @property
    def host_key_line(self) -> str:
        """The public host key as `ssh-ed25519 AAAA...` (no comment), as an instance's pinned host_key."""
        return " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])

    @property
    def known_hosts_line(self) -> str:
        """The known_hosts line for this server; non-22 ports need OpenSSH's `[host]:port` form."""
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {self.host_key_line}"

    def _banner(self) -> bool:
        """True once the port greets with the SSH-2.0 banner."""
        sock = self._connect()
        if sock is None:
            return False
        with sock:
            try:
                return sock.recv(256).startswith(b"SSH-2.0")
            except OSError:
                return False

    def _write_config(self) -> None:
        """Our own sshd_config: key auth only, no PAM; MaxSessions/MaxStartups stay sshd's unless options say."""
        settings = {
            "HostKey": str(self.host_key),
            "PidFile": str(self.workdir / "sshd.pid"),
            "ListenAddress": f"{self.host}:{self.port}",
            # sshd opens AuthorizedKeysFile as the login user, who cannot enter root's 0700 temp dirs (pytest's
            # tmp_path): let root cat it instead, so any path works and edits to it apply at once.
            "AuthorizedKeysFile": "none",
            "AuthorizedKeysCommand": f"/usr/bin/cat {self.authorized_keys}",
            "AuthorizedKeysCommandUser": "root",
            "PubkeyAuthentication": "yes",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "UsePAM": "no",
            "StrictModes": "no",
            "UseDNS": "no",
            "AllowUsers": self.user,
            "LogLevel": "ERROR",
            "Subsystem": "sftp internal-sftp",  # uploads and fetches (POST /wsexec/files)
            **self.options,
        }
        self.config.write_text("".join(f"{key} {value}\n" for key, value in settings.items()))

    def start(self) -> Self:
        """Check the config with `sshd -t`, run `sshd -D -e` as our child, wait for its banner; no-op if running."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        Path("/run/sshd").chmod(0o755)
        generate_keypair(self.host_key)
        self._write_config()
        check = subprocess.run([SSHD, "-t", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t -f {self.config}: {check.stderr.strip()}")
        self._spawn([SSHD, "-D", "-e", "-f", str(self.config)], self._banner)
        return self

    def stop(self) -> None:
        """Stop the listener and the connection processes it forked, so open sessions drop like a host going down."""
        if self.proc is not None and self.proc.poll() is None:
            for pid in _children(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        super().stop()

    def regenerate_host_key(self) -> Self:
        """Replace the host key with a new one (and restart if running): the 'changed host key' case."""
        was_running = self.running
        self.stop()
        for path in (self.host_key, Path(f"{self.host_key}.pub")):
            path.unlink(missing_ok=True)
        generate_keypair(self.host_key)
        return self.start() if was_running else self
