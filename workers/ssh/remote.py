"""One remote command, like fabric's Remote: start it on a pooled connection, stream its output, stop it."""

from __future__ import annotations

import secrets
import select
import shlex
import time
from collections.abc import Callable

import paramiko

from workers.ssh.channels import Connections, open_channel
from workers.ssh.connection import Connection
from workers.ssh.errors import SshError, Stopped
from workers.ssh.options import Endpoint

OutputCallback = Callable[[bytes], None]
StopCheck = Callable[[], "str | None"]
PidCallback = Callable[[int], None]

READ_SIZE = 64 * 1024
SEND_SIZE = 32 * 1024
STOP_POLL_SECONDS = 0.2
LOST_GRACE_SECONDS = 1.0
KILL_TIMEOUT = 5.0
KILL_ATTEMPTS = 20

# What the login shell runs: `exec /bin/sh -c BOOTSTRAP wsexec ARGS`, the same few bytes of bootstrap for every
# script, in /bin/sh whatever the login shell (bash, waiting for a child killed by a signal, prints the child's whole
# command line on stderr). sshd made the login shell a session leader, and exec keeps its PID: the bootstrap prints
# that PID (the process group a stop, and the reaper of a lost worker's tasks, kill), then runs the script's own
# /bin/sh, the script as one argument (at most SCRIPT_MAX_LIMIT, under Linux's 128 KiB per argument; after `--`, so
# that a script starting with `-` is not taken for options) and stdin from /dev/null. That shell is not exec'd, and
# `exit` follows so that no shell exec's it implicitly (bash 5.2 does for a -c string's last command): the bootstrap
# waits and reports 128+n when the script dies of signal n, as a shell does; its traps make a TERM, INT or HUP of the
# group an exit status too. With a task's run_as (the last argument) that shell is started by `sudo -n -u USER --`:
# the script stays one argument, and -n makes sudo fail at once where it would ask for a password (the worker checks
# that first: runas.py).
# The login shell parses the exec request, the quoted script included: any POSIX login shell (dash and bash tested).
# The script itself is an argument of the exec request (INLINE) when that request stays within INLINE_MAX: two
# processes in all, the bootstrap and the script's shell, where raw paramiko's `true` takes the login shell alone.
# It still waits for one line (GO) that the worker sends only once it has recorded the PID: a worker killed before
# that leaves no script running that the reaper could not find and kill (EOF instead: exit 125, nothing ran). A
# longer one (quoting can make it up to 5x the script: E2BIG, or a packet sshd resets the connection for) comes on the
# channel's stdin (FROM_STDIN): `head` reads exactly $1 bytes, the script and then the random sentinel $2 (no EOF is
# ever sent: an EOF racing with a fast command's close makes sshd drop the whole connection), and the sentinel's
# absence refuses a short read (the connection died mid-way): $(...) strips only trailing newlines, and those sit
# before the sentinel, so the script's bytes come through exactly (NUL excepted, which the API refuses).
_PROLOGUE = 'trap "exit 129" HUP; trap "exit 130" INT; trap "exit 143" TERM; echo $$; '
_RUN = ('if [ -n "$1" ]; then set -- sudo -n -u "$1" --; else set --; fi; '
        '"$@" /bin/sh -c -- "$s" wsexec </dev/null; exit')
INLINE = _PROLOGUE + 'read -r _ || exit 125; s=$1; shift; ' + _RUN
GO = b"\n"  # what an INLINE bootstrap waits for (read is a builtin: no process) once its PID line came
FROM_STDIN = (_PROLOGUE + 's=$(head -c "$1"); case $s in *"$2") ;; *) exit 125;; esac; s=${s%"$2"}; shift 2; '
              + _RUN)
INLINE_MAX = 64 * 1024  # bytes of exec request; sshd takes packets up to 256 KiB
SENTINEL_BYTES = 16


def _command(bootstrap: str, args: list[str], run_as: str | None) -> str:
    words = " ".join(shlex.quote(arg) for arg in [*args, *([run_as] if run_as else [])])
    return f"exec /bin/sh -c {shlex.quote(bootstrap)} wsexec {words}"


def inline(script: str, run_as: str | None = None) -> str:
    """The exec request that carries `script` itself."""
    return _command(INLINE, [script], run_as)


def via_stdin(script: str, run_as: str | None = None) -> tuple[str, bytes]:
    """The exec request that reads `script` from stdin, and the bytes to send: the script, then a sentinel it cannot
    contain by chance."""
    sentinel = secrets.token_hex(SENTINEL_BYTES)
    payload = script.encode() + sentinel.encode()
    return _command(FROM_STDIN, [str(len(payload)), sentinel], run_as), payload


def framed(script: str, run_as: str | None = None) -> tuple[str, bytes]:
    """The exec request and the bytes to send on stdin once the PID line came: GO when the script fits in the
    request."""
    if "\0" in script:
        raise SshError("script", "the script contains a NUL byte, which no shell can run as written")
    command = inline(script, run_as)
    if len(command.encode()) <= INLINE_MAX:
        return command, GO
    return via_stdin(script, run_as)


def group_kill_command(pid: int, run_as: str | None = None) -> str:
    """TERM the process group now and KILL it a second later; exits 1 when no such group is left.

    With run_as the script's processes are that user's, which the login user may not signal: the same kill runs
    first through sudo as that user (sudo keeps its command in the bootstrap's group, and relays only to its child).
    """
    group = f"-{pid}"
    # `kill -s SIG -- -PGID`, the POSIX form: dash's kill takes no `--` after `-TERM`
    plain = (f"kill -s TERM -- {group} 2>/dev/null && "
             f"{{ (sleep 1; kill -s KILL -- {group} 2>/dev/null) >/dev/null 2>&1 & }}")
    if not run_as:
        return plain
    return f"sudo -n -u {shlex.quote(run_as)} -- /bin/sh -c {shlex.quote(plain)} </dev/null >/dev/null 2>&1; {plain}"


class Remote:
    """Runs one script: once the PID line came, sends GO or (when too long for the exec request) the script on stdin,
    streams the output, kills the process group when stopped."""

    def __init__(
        self, pool: Connections, endpoint: Endpoint, on_stdout: OutputCallback, on_stderr: OutputCallback,
        on_pid: PidCallback | None = None,
    ) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.on_pid = on_pid  # told the remote PID as it comes, so that a worker outliving this one can kill it
        self.pid: int | None = None
        self.run_as: str | None = None  # whom sudo runs the script as: the kill must reach that user's processes
        self._head = b""

    def run(self, script: str, timeout: float, should_stop: StopCheck, run_as: str | None = None) -> int:
        """Run `script` with /bin/sh on the host (as `run_as`, through sudo) and return its exit status; raise Stopped
        or SshError."""
        command, payload = framed(script, run_as)
        self.run_as = run_as
        connection, channel = self._start(command)
        try:
            return self._wait(connection, channel, payload, timeout, should_stop)
        finally:
            try:
                channel.close()
            except (paramiko.SSHException, EOFError, OSError):
                pass  # the connection died under us; the pool replaces it on next use
            connection.release()

    def _start(self, command: str) -> tuple[Connection, paramiko.Channel]:
        """Open a channel and exec (see channels.open_channel: retried, and a dead connection replaced)."""
        return open_channel(self.pool, self.endpoint, lambda connection: connection.session(command))

    def _stdout(self, data: bytes) -> None:
        """Output before the PID line is the login shell's (rc files); the first all-digit line is the PID."""
        if self.pid is None:
            self._head += data
            while self.pid is None:
                line, newline, rest = self._head.partition(b"\n")
                if not newline:
                    return
                self._head = rest
                if line.strip().isdigit():
                    self.pid = int(line)
                    if self.on_pid is not None:
                        self.on_pid(self.pid)
                else:
                    self.on_stdout(line + newline)
            data, self._head = self._head, b""
        if data:
            self.on_stdout(data)

    def _drain(self, channel: paramiko.Channel) -> None:
        while channel.recv_ready():
            self._stdout(channel.recv(READ_SIZE))
        while channel.recv_stderr_ready():
            self.on_stderr(channel.recv_stderr(READ_SIZE))

    @staticmethod
    def _send(channel: paramiko.Channel, pending: bytes) -> bytes:
        """Send what the window takes now; what is left goes next round (the bootstrap reads all before it runs)."""
        try:
            while pending and channel.send_ready():
                sent = channel.send(pending[:SEND_SIZE])
                if not sent:
                    break
                pending = pending[sent:]
        except OSError:
            return b""  # the channel closed under us: the exit status (or its absence) tells what happened
        return pending

    def _wait(
        self, connection: Connection, channel: paramiko.Channel, payload: bytes, timeout: float, should_stop: StopCheck
    ) -> int:
        deadline = time.monotonic() + timeout
        next_stop_check = time.monotonic() + STOP_POLL_SECONDS
        pending = payload
        while True:
            sending = self.pid is not None and bool(pending)
            select.select([channel], [], [], 0.01 if sending else STOP_POLL_SECONDS)
            self._drain(channel)
            if self.pid is not None and pending:
                pending = self._send(channel, pending)
            # The end is EOF, not the exit status: sshd may send the status before the last output under load.
            finished = channel.eof_received or channel.closed
            if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
                if channel.status_event.wait(STOP_POLL_SECONDS):  # set by the exit status, or by a close without one
                    if self._head:  # output without a newline before exit
                        self.on_stdout(self._head)
                    return self._exit_status(connection, channel)
            now = time.monotonic()
            if now >= deadline:
                self.kill(connection)
                raise Stopped(f"timeout after {timeout:g} s")
            if now >= next_stop_check:
                next_stop_check = now + STOP_POLL_SECONDS
                reason = should_stop()
                if reason:
                    self.kill(connection)
                    raise Stopped(reason)

    def _exit_status(self, connection: Connection, channel: paramiko.Channel) -> int:
        """The script's rc; a channel that closed without one is a lost connection (or a shell killed by a signal)."""
        if channel.exit_status >= 0:  # paramiko's -1 means no exit-status message came
            return channel.exit_status
        transport = connection.transport
        if transport is not None and transport.is_alive():
            transport.join(LOST_GRACE_SECONDS)  # a dying transport closes its channels first, then goes inactive
        if connection.is_connected:
            outcome = self.kill(connection)
            raise SshError("signal", f"the task's shell on {self.endpoint} ended without an exit status "
                                     f"(killed by a signal?); {outcome}")
        self.pool.discard(self.endpoint, connection)
        raise SshError("lost", f"connection lost to {self.endpoint} while the task ran; {self.kill(None)}")

    def kill(self, connection: Connection | None = None) -> str:
        """TERM then KILL the remote process group (closing the channel alone leaves it running); say how it went.

        Over `connection` when it is still up, else over a new one: a lost connection leaves the processes running.
        """
        if self.pid is None:
            return "the script had not started"
        via = "the same connection"
        try:
            if connection is None or not connection.is_connected:
                connection, via = self.pool.connection(self.endpoint), "a new connection"
            rc = self._run_killer(connection, group_kill_command(self.pid, self.run_as))
        except (SshError, paramiko.SSHException, EOFError, OSError) as exc:
            return f"its remote process group {self.pid} could not be killed: {exc}"
        if rc != 0:
            return f"its remote process group {self.pid} was already gone"
        return f"its remote process group {self.pid} was killed over {via}"

    @staticmethod
    def _run_killer(connection: Connection, command: str) -> int:
        """The kill takes no channel slot (its task holds one, and may be the one stopping every other), so it may
        meet sshd's MaxSessions: retry that a while."""
        for attempt in range(KILL_ATTEMPTS):
            try:
                killer = connection.session(command, timeout=KILL_TIMEOUT)
            except paramiko.ChannelException:
                time.sleep(0.01 * (attempt + 1))
                continue
            try:
                if not killer.status_event.wait(KILL_TIMEOUT) or killer.exit_status < 0:
                    raise SshError("kill", f"no answer from the kill on {connection.endpoint}")
                return killer.exit_status
            finally:
                killer.close()
        raise SshError("channels", f"{connection.endpoint} had no session free for the kill")
