"""`python -m bench.remote [--runs N] [--tasks M]`: the worker's own cost per command, without Redis or the API.

M sequential `true` on one warm connection, through workers.ssh (the bootstrap, the PID line, the script in the
exec request) and through raw paramiko on a connection of its own, to the same sshd, one of each in turn (so both
see the same load); prints the medians of the runs' totals and the ratio. To compare with another checkout's
workers.ssh, run this file from that checkout's directory: `cd ../main && .venv/bin/python ../wt/boot/bench/remote.py`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # run as a file from another checkout: import that checkout's code
    sys.path.insert(0, os.getcwd())

from bench.lab import Lab
from bench.paramiko_raw import RawParamiko
from workers.ssh.options import Endpoint
from workers.ssh.pool import ConnectionPool
from wsexec.testing import SshServer


def wsexec_true(pool: ConnectionPool, endpoint: Endpoint) -> float:
    start = time.perf_counter()
    rc = pool.run(endpoint, "true", lambda _: None, lambda _: None, 10.0, lambda: None)
    if rc != 0:
        raise RuntimeError(f"`true` exited {rc}")
    return time.perf_counter() - start


def raw_true(raw: RawParamiko, server: SshServer) -> float:
    start = time.perf_counter()
    raw.run_true(raw.warm[server])
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.remote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--tasks", type=int, default=50, help="sequential commands per run (default 50)")
    options = parser.parse_args(argv)
    with Lab(hosts=1) as lab:
        server = lab.servers[0]
        raw = RawParamiko(lab)
        raw.prepare([server], warm=True)
        pool = ConnectionPool(str(lab.key), str(lab.known_hosts))
        endpoint = Endpoint(server.host, server.port, lab.user)
        wsexec_true(pool, endpoint)  # open and warm the pooled connection outside the timing
        times: dict[str, list[float]] = {"paramiko": [], "workers.ssh": []}
        try:
            for _ in range(options.runs):
                pairs = [(raw_true(raw, server), wsexec_true(pool, endpoint)) for _ in range(options.tasks)]
                times["paramiko"].append(sum(pair[0] for pair in pairs))
                times["workers.ssh"].append(sum(pair[1] for pair in pairs))
        finally:
            pool.close()
            raw.close()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {options.tasks} sequential `true`, "
          f"{options.runs} runs, one warm connection")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:12} median {median * 1000:7.1f} ms  ({min(values) * 1000:.1f}-{max(values) * 1000:.1f})  "
              f"{median * 1000 / options.tasks:.2f} ms per command")
    print(f"ratio {statistics.median(times['workers.ssh']) / statistics.median(times['paramiko']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
