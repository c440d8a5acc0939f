"""`python -m bench.worker_memory [--tasks 50000] [--trace]`: does a worker's memory stay flat over many tasks?

One worker process (as shipped: its job slots in threads), one sshd, gunicorn; POSTs arrays of 100 `true` tasks,
keeping a few hundred queued, and samples the worker's RSS (VmRSS) every --every tasks. With --trace the worker runs
tracemalloc (bench/memtrace/sitecustomize.py: slower) and the bench prints the allocation sites that grew most
between the first sample after warm-up and the last, which is what tells a leak from a cache that fills up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from redis import Redis

from bench import report
from bench.cpu import CpuGroups
from bench.lab import Lab
from bench.workloads import timestamp
from bench.wsexec_api import WsexecService
from wsexec.store import TaskState, keys

MEMTRACE = Path(__file__).parent / "memtrace"
ARRAY = 100
IN_FLIGHT = 500  # tasks queued or running at a time


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def snapshot(path: Path, name: str) -> tracemalloc.Snapshot:
    """Ask the traced worker for a snapshot and load it."""
    Path(f"{path}.ask").write_text(name)
    while Path(f"{path}.ask").exists():
        time.sleep(0.2)
    time.sleep(0.5)  # the dump is written just before the request goes
    return tracemalloc.Snapshot.load(f"{path}.{name}")


def run(options: argparse.Namespace) -> dict[str, Any]:
    cpu = CpuGroups()
    trace = None
    try:
        with Lab(1) as lab:
            service = WsexecService(lab, 1, cpu)
            service.worker_env = dict(item.split("=", 1) for item in options.env)
            if options.trace:
                trace = lab.workdir / "memtrace"
                service.worker_env |= {"PYTHONPATH": str(MEMTRACE), "WSEXEC_MEMTRACE": str(trace)}
            with service:
                return drive(service, lab, options, trace)
    finally:
        cpu.close()


def drive(service: WsexecService, lab: Lab, options: argparse.Namespace, trace: Path | None) -> dict[str, Any]:
    server = lab.servers[0]
    instance = service.api.call("POST", "/instances", json={"ip": server.host, "port": server.port,
                                                           "tag": "memory", "user": lab.user})["id"]
    redis = Redis.from_url(lab.redis.url)
    pid = service.workers[0].pid
    finished = [keys.index("task", "state", state.value) for state in (TaskState.DONE, TaskState.ABORT)]
    item = {"instance": instance, "script": "true", "name": "memory", "tag": "memory"}
    samples: list[dict[str, Any]] = []
    first = last = None
    posted, started = 0, time.perf_counter()
    while True:
        done = sum(int(redis.zcard(key)) for key in finished)
        if not samples or done >= samples[-1]["tasks"] + options.every or done >= options.tasks:
            samples.append({"tasks": done, "rss_kb": rss_kb(pid), "seconds": round(time.perf_counter() - started, 1)})
            print(f"worker-memory: {done:>7,} tasks  RSS {samples[-1]['rss_kb'] / 1024:7.1f} MB", file=sys.stderr)
            if trace and first is None and done >= options.every:
                first = snapshot(trace, "first")
        if done >= options.tasks:
            break
        if posted - done < IN_FLIGHT and posted < options.tasks:
            service.api.call("POST", "/tasks", json=[item] * ARRAY)
            posted += ARRAY
        else:
            time.sleep(0.2)
    aborted = int(redis.zcard(finished[1]))
    growth = []
    if trace and first is not None:
        last = snapshot(trace, "last")
        grew = sorted((s for s in last.compare_to(first, "traceback") if s.size_diff > 0), key=lambda s: -s.size_diff)
        for stat in grew[:options.top]:
            growth.append({"kb": round(stat.size_diff / 1024, 1), "blocks": stat.count_diff,
                           "where": [f"{frame.filename}:{frame.lineno}" for frame in stat.traceback][-4:]})
    return {"samples": samples, "aborted": aborted, "growth": growth}


def summary(result: dict[str, Any]) -> str:
    samples = result["samples"]
    warm = next((s for s in samples if s["tasks"] >= samples[-1]["tasks"] // 5), samples[0])
    last = samples[-1]
    per_100k = (last["rss_kb"] - warm["rss_kb"]) / max(last["tasks"] - warm["tasks"], 1) * 100_000 / 1024
    lines = [f"{s['tasks']:>8,} tasks  RSS {s['rss_kb'] / 1024:7.1f} MB  at {s['seconds']:7.1f} s" for s in samples]
    lines.append(f"after warm-up ({warm['tasks']:,} tasks): {per_100k:+.2f} MB per 100k tasks; "
                 f"{result['aborted']} tasks ABORT")
    for entry in result["growth"]:
        lines.append(f"  {entry['kb']:+9.1f} KB {entry['blocks']:+7} blocks  {' <- '.join(reversed(entry['where']))}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50_000, help="tasks to run (default 50000)")
    parser.add_argument("--every", type=int, default=5000, help="tasks between RSS samples (default 5000)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the worker: where memory grows")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="in the worker's environment too, e.g. MALLOC_ARENA_MAX=2 (repeatable)")
    parser.add_argument("--top", type=int, default=15, help="allocation sites shown with --trace (default 15)")
    options = parser.parse_args(argv)
    result = run(options)
    print(summary(result))
    report.RESULTS.mkdir(exist_ok=True)
    path = report.RESULTS / f"worker-memory-{timestamp()}.json"
    path.write_text(json.dumps({"options": vars(options), "environment": report.environment(), **result}, indent=2))
    print(f"worker-memory: results in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
