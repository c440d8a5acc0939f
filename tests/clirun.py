"""Running the installed `wsexec` console script as a subprocess, in a pipe or on a pseudo-terminal: what the CLI's
tests share (their fixtures `cli` and `cli_env` are in conftest)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers import PASSWORDS, ROOT
from wsexec.testing import SshServer

Cli = Callable[..., subprocess.CompletedProcess[str]]
WSEXEC = Path(sys.executable).parent / "wsexec"  # the installed console script (tests/test_install: pip install .)


def environment(url: str, user: str | None, home: Path) -> dict[str, str]:
    """A clean environment: the server and one user's credentials, a config dir of its own, this checkout's code."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "WSEXEC_URL": url,
           "PYTHONPATH": str(ROOT)}  # the script imports this checkout's wsexec.cli (the venv's is main's)
    if user:
        env |= {"WSEXEC_USER": user, "WSEXEC_PASSWORD": PASSWORDS[user]}
    return env


def runner(url: str, home: Path) -> Cli:
    """Runs `wsexec ARGS` as the operator (user= another, input= stdin, env= the whole environment)."""

    def run(*args: str | int, user: str | None = "operator", input: str = "", env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(WSEXEC), *map(str, args)], cwd=ROOT, input=input, capture_output=True, text=True,
                              env=env or environment(url, user, home), timeout=timeout)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    return run


def declare(cli: Cli, server: SshServer, tag: str, login: str, *extra: str | int) -> int:
    """`wsexec instances add` as the admin; the new instance's id."""
    done = cli("instances", "add", server.host, "-p", server.port, "-t", tag, "--user", login, *extra, user="admin")
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def start(env: dict[str, str], *args: str | int) -> subprocess.Popen[str]:
    """`wsexec ARGS` left running, its output piped."""
    return subprocess.Popen([str(WSEXEC), *map(str, args)], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)


def interruptible() -> None:
    """In a child the tests interrupt: SIGINT's default action. An ignored SIGINT is inherited (a test run started
    in the background has one), and Python then never raises KeyboardInterrupt: Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def gate_script(gate: Path, rc: int) -> str:
    """Prints 'first', then waits for the test to create the gate file, prints 'second' and exits rc."""
    return f"echo first; while [ ! -e {gate} ]; do sleep 0.1; done; echo second >&2; exit {rc}"


def on_terminal(env: dict[str, str], args: list[str | int], answer: str, timeout: float = 60,
                columns: int = 100, ctrl_c_after: str | None = None) -> tuple[int, str]:
    """Run wsexec on a pseudo-terminal `columns` wide, typing `answer` when it asks for a password or a token (and
    Ctrl-C once it has shown `ctrl_c_after`); its exit code and all it showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: wsexec with the terminal as stdin, stdout and stderr, sized as a terminal window is
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        os.chdir(ROOT)
        interruptible()
        os.execve(WSEXEC, [str(WSEXEC), *map(str, args)], env | {"TERM": "xterm"})
    shown, deadline, answered = b"", time.monotonic() + timeout, False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        shown += data
        if not answered and shown.rstrip().endswith(b":") and (b"assword" in shown or b"token" in shown):
            os.write(fd, answer.encode() + b"\n")
            answered = True
        if ctrl_c_after and ctrl_c_after.encode() in shown:
            os.write(fd, b"\x03")  # the terminal turns it into SIGINT for wsexec
            ctrl_c_after = None
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def gunicorn_workers(url: str) -> list[int]:
    """The pids of the worker processes of the gunicorn at url: those holding its listening socket, but its master."""
    port = url.rsplit(":", 1)[1]
    listing = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    holders = {int(pid) for pid in re.findall(r"pid=(\d+)", listing)}
    parents = {pid: int(re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)[1])  # type: ignore
               for pid in holders}
    return sorted(pid for pid, parent in parents.items() if parent in holders)
