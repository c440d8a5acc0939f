"""`python -m bench.bootstrap [--execs N] [--rounds R]`: what each piece of the worker's remote bootstrap costs sshd.

N execs of each variant on one warm paramiko connection to one loopback sshd, variants taking turns R times (so
all see the same load); prints the median wall time and the sshd CPU (its cgroup: the daemon, its session
processes, the login shell and all they start) per exec. Each variant adds one piece to the one before it, so
the differences are the pieces' costs: the /bin/sh hop, the waiting parent that turns a signal into 128+n, the
script read from stdin by `head`; then wsexec's bootstraps, inline and on stdin, as workers.ssh.remote frames them,
and a whole `pool.run` of workers.ssh (its own pooled connection), as a worker runs a task.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import paramiko

from bench.cpu import CpuGroups
from bench.lab import Lab
from bench.paramiko_raw import RawParamiko
from bench.remote import wsexec_true
from workers.ssh.options import Endpoint
from workers.ssh.pool import ConnectionPool
from workers.ssh.remote import framed, via_stdin

SETTLE_SECONDS = 0.05  # lets sshd finish closing the last channel, so its CPU time is counted
TRAPS = 'trap "exit 129" HUP; trap "exit 130" INT; trap "exit 143" TERM; '
HEAD_PAYLOAD = b"true" + b"0" * 32  # a script and a sentinel's worth of bytes


def _sh(bootstrap: str, *args: str) -> str:
    return " ".join(["exec /bin/sh -c", shlex.quote(bootstrap), "wsexec", *map(shlex.quote, args)])


def variants() -> dict[str, tuple[str, bytes]]:
    """Name: (exec request, bytes sent on stdin right after it)."""
    return {
        "raw `true` (the login shell alone)": ("true", b""),
        "+ exec /bin/sh -c true": ("exec /bin/sh -c true", b""),
        "+ waiting /bin/sh parent, PID line": (_sh(TRAPS + 'echo $$; /bin/sh -c "$1" wsexec </dev/null; exit',
                                                  "true"), b""),
        "+ the script read by head (old main)": (
            _sh(TRAPS + 'echo $$; s=$(head -c "$1"); case $s in *"$2") ;; *) exit 125;; esac; s=${s%"$2"}; '
                '/bin/sh -c "$s" wsexec </dev/null; exit', str(len(HEAD_PAYLOAD)), "0" * 32), HEAD_PAYLOAD),
        "wsexec now: inline (framed)": framed("true"),
        "wsexec now: on stdin (via_stdin)": via_stdin("true"),
    }


def run(transport: paramiko.Transport, command: str, payload: bytes) -> None:
    channel = transport.open_session(timeout=10)
    channel.exec_command(command)
    if payload:
        channel.sendall(payload)
    while channel.recv(65536):
        pass
    status = channel.recv_exit_status()
    channel.close()
    if status != 0:
        raise RuntimeError(f"{command!r} exited {status}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bootstrap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execs", type=int, default=100, help="execs of a variant per round (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    cpu = CpuGroups()
    if not cpu.available:
        print("bench: no writable cgroup v2, sshd CPU is not measured", file=sys.stderr)
    names = [*variants(), "workers.ssh: pool.run (a task's exec)"]
    wall: dict[str, list[float]] = {name: [] for name in names}
    sshd: dict[str, list[float]] = {name: [] for name in names}
    try:
        with Lab(hosts=1) as lab:
            server = lab.servers[0]
            cpu.add("sshd", server.proc.pid)  # type: ignore[union-attr]
            client = RawParamiko(lab).connect(server)
            transport = client.get_transport()
            assert transport is not None
            pool = ConnectionPool(str(lab.key), str(lab.known_hosts))
            endpoint = Endpoint(server.host, server.port, lab.user)
            cases: dict[str, Callable[[], object]] = {
                name: partial(run, transport, *framing) for name, framing in variants().items()}
            cases[names[-1]] = partial(wsexec_true, pool, endpoint)
            for case in cases.values():
                case()  # the first exec on a connection waits ~40 ms more
            for _ in range(options.rounds):
                for name, case in cases.items():
                    time.sleep(SETTLE_SECONDS)
                    before, start = cpu.usage(), time.perf_counter()
                    for _ in range(options.execs):
                        case()
                    wall[name].append((time.perf_counter() - start) / options.execs)
                    time.sleep(SETTLE_SECONDS)
                    if before:
                        sshd[name].append((cpu.usage()["sshd"] - before["sshd"]) / options.execs)
            pool.close()
            client.close()
    finally:
        cpu.close()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {options.execs} execs x "
          f"{options.rounds} rounds on one warm connection, medians per exec")
    print(f"{'variant':40} {'wall ms':>8} {'sshd CPU ms':>12}")
    for name in names:
        used = f"{statistics.median(sshd[name]) * 1000:12.2f}" if sshd[name] else f"{'-':>12}"
        print(f"{name:40} {statistics.median(wall[name]) * 1000:8.2f} {used}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
