"""`make bench` (`python -m bench [--runs N] [--quick]`): one run of every workload against every runner.

Starts a private redis-server and 20 sshd daemons (127.0.2.1..20, default limits, a plain login user), then
measures raw paramiko, wsexec through its HTTP API (real gunicorn and worker processes), `ssh` and ansible on
the same hosts, and RQ's own floor (no-op jobs, bench/rq_floor.py); prints medians with min-max and the ratios
against the issue's targets, writes JSON to bench/results/. Everything started here is stopped on exit, Ctrl-C or
error.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
from contextlib import ExitStack
from dataclasses import fields
from typing import Any, NoReturn

from bench import report
from bench.cli import Ansible, SshCli
from bench.cpu import CpuGroups
from bench.lab import Lab
from bench.paramiko_raw import RawParamiko
from bench.redisstats import RedisStats
from bench.rq_floor import RqFloor
from bench.streams import get_latency
from bench.workloads import FLOOR, WORKLOADS, ratios, run_all, timestamp
from bench.wsexec_api import Wsexec, WsexecService, WsexecWait
from wsexec.config import Settings

DELAY_TARGET_MS = 5.0  # a task's `end` (the worker's clock) to its ?wait answer, median


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help="runs of each workload (default 5, or 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke test: 2 runs, 200 tasks in the bulk run")
    parser.add_argument("--hosts", type=int, default=20, help="sshd daemons on 127.0.2.1..N (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="wsexec worker processes (default 2)")
    parser.add_argument("--sequential", type=int, default=50, help="commands in the sequential run (default 50)")
    parser.add_argument("--bulk", type=int, help="tasks in the bulk run (default 1000, or 200 with --quick)")
    parser.add_argument("--only", type=lambda v: v.split(","), metavar="KEY,...",
                        help=f"only these workloads: {', '.join(w.key for w in WORKLOADS)}, streams")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a wsexec setting for gunicorn and the workers, e.g. --set worker_threads=20")
    options = parser.parse_args(argv)
    options.set = dict(item.partition("=")[::2] for item in options.set)
    unknown = set(options.set) - {f.name for f in fields(Settings)}
    if unknown:
        parser.error(f"--set: no such setting: {', '.join(sorted(unknown))}")
    if set(options.only or []) - {w.key for w in WORKLOADS} - {"streams"}:
        parser.error("--only: unknown workload")
    options.runs = options.runs or (2 if options.quick else 5)
    options.bulk = options.bulk or (200 if options.quick else 1000)
    if not 1 <= options.hosts <= 254:
        parser.error("--hosts must be within 1..254")
    return options


def _terminated(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the `with` blocks, which stop what we started


def _waits_and_streams(runner: WsexecWait, service: WsexecService, options: Any) -> list[dict[str, Any]]:
    """The end->answer delay of every ?wait answer, and GET one task's p50/p99 with and without 200 streams."""
    rows: list[dict[str, Any]] = []
    load = round(os.getloadavg()[0], 2)
    if runner.delays:
        p50 = 1000 * statistics.median(runner.delays)
        rows.append({"name": f"end -> ?wait answer p50 ({len(runner.delays)})", "value": p50,
                     "target": ("<=", DELAY_TARGET_MS), "met": p50 <= DELAY_TARGET_MS, "unit": "ms", "load": load})
    if options.only and "streams" not in options.only:
        return rows
    print("bench: GET one task, without and with 200 open /events streams", file=sys.stderr)
    tasks = service.api.call("GET", "/tasks", params={"page_size": 1})["results"]
    if not tasks:
        return rows
    latency = get_latency(service.api, service.api.token, tasks[0]["id"])
    load = round(os.getloadavg()[0], 2)
    for case in ("without_streams", "with_streams"):
        for cut in ("p50_ms", "p99_ms"):
            streams = "no streams" if case == "without_streams" else f"{latency['streams']} /events streams open"
            name = f"GET task {cut[:3]}, {streams}"
            rows.append({"name": name, "value": latency[case][cut], "target": None, "met": None, "unit": "ms",
                         "load": load})
    return rows


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even if our parent ignored SIGINT
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGHUP, _terminated)
    stamp = timestamp()
    with ExitStack() as stack:
        cpu = CpuGroups()
        stack.callback(cpu.close)  # last out: after every process it counts has stopped
        if not cpu.available:
            print("bench: no writable cgroup v2, CPU times are not measured", file=sys.stderr)
        print(f"bench: starting redis and {options.hosts} sshd daemons", file=sys.stderr)
        lab = stack.enter_context(Lab(options.hosts))
        cpu.add("redis", lab.redis.proc.pid)  # type: ignore[union-attr]
        cpu.add("sshd", [server.proc.pid for server in lab.servers])  # type: ignore[union-attr]
        print(f"bench: starting gunicorn and {options.workers} workers", file=sys.stderr)
        service = stack.enter_context(WsexecService(lab, options.workers, cpu, options.set))
        runners: dict[str, Any] = {}
        polling = Wsexec(service, lab)
        for runner in (RawParamiko(lab), polling, WsexecWait(polling), SshCli(lab), Ansible(lab)):
            stack.callback(runner.close)
            runners[runner.name] = runner
        for name in FLOOR:  # RQ's own floor: no-op jobs on worker processes of their own
            floor = RqFloor(name, lab, options.workers, cpu)
            stack.callback(floor.close)
            runners[name] = floor
        print(f"bench: {options.runs} runs of each workload", file=sys.stderr)
        results = run_all(runners, lab.servers, cpu, RedisStats(polling.redis), options)
        extra = _waits_and_streams(runners["wsexec-wait"], service, options)
    ratio_rows = ratios(results) + extra
    print(report.table(results, ratio_rows))
    path = report.write(stamp, vars(options), results, ratio_rows)
    print(f"\nbench: results in {path.relative_to(path.parents[2])} (and bench/results/latest.json)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # everything was already stopped on the way out of main()
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
