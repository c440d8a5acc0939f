"""`make bench-scale` (`python -m bench.scale [--sizes 1k,100k,1M]`): does wsexec stay flat as tasks pile up?

Starts a private redis-server (in a temporary directory, loopback only) and gunicorn as shipped (gunicorn.conf.py),
no worker. Declares 1,000 instances, then for each size in turn stores finished tasks up to that size through the
store's own scripts (bench/scale_data.py) and measures through the HTTP API: every list filter combination, the
last page, GET one task, POST one task and POST an array of 100, each call's latency and what Redis spent on it
(bench/scale_probe.py), and Redis's memory per stored task. Prints a table with the growth ratio of the largest
size over the smallest against the issue's goals (reported, not asserted), writes bench/results/scale-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from redis import Redis

from bench import report
from bench.__main__ import _terminated
from bench.cpu import CpuGroups
from bench.lab import Lab
from bench.scale_data import INSTANCES, TaskMaker, declare_instances, finish_open, grow
from bench.scale_probe import RedisMeter, cases, measure
from bench.workloads import timestamp
from bench.wsexec_api import WsexecService
from wsexec.store import Store

RATIO_GOAL = 1.5  # largest size's median over the smallest's
REDIS_CALL_GOAL_MS = 5.0  # no single Redis command slower, at the largest size
BYTES_GOAL = 1536  # Redis memory per stored task
SUFFIXES = {"k": 1000, "m": 1_000_000}
REDIS_TIMEOUT_S = 600
HASH_LISTPACK_VALUE = 1024  # scripts/run.sh's and the README's redis.conf


def size(text: str) -> int:
    """1000, 1k, 100k, 1M."""
    text = text.strip().lower()
    factor = SUFFIXES.get(text[-1:], 1)
    value = int(float(text[:-1] if factor > 1 else text) * factor)
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda v: sorted({size(s) for s in v.split(",")}),
                        default=[1000, 100_000, 1_000_000], help="stored tasks, e.g. 1k,10k (default 1k,100k,1M)")
    parser.add_argument("--instances", type=int, default=INSTANCES, help="declared instances (default 1000)")
    parser.add_argument("--reps", type=int, default=10, help="timed calls per list case (GET one: 3x; default 10)")
    parser.add_argument("--posts", type=int, default=20, help="timed POSTs of one task per size (default 20)")
    parser.add_argument("--arrays", type=int, default=5, help="timed POSTs of 100 tasks per size (default 5)")
    parser.add_argument("--output", help="write the JSON here instead of bench/results/scale-<time>.json")
    options = parser.parse_args(argv)
    if options.instances < 20 or min(options.reps, options.posts, options.arrays) < 2:
        parser.error("--instances must be >= 20, --reps/--posts/--arrays >= 2")
    return options


def memory(redis: Redis, baseline: int, tasks: int) -> dict[str, Any]:
    info = redis.info("memory")
    return {"used_memory": info["used_memory"], "bytes_per_task": round((info["used_memory"] - baseline) / tasks),
            "rss": info["used_memory_rss"]}


def run(options: argparse.Namespace, stack: ExitStack, save: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Every size in turn on one Redis, growing; its rows and memory, saved after each size (a 1M run is long)."""
    cpu = CpuGroups()
    stack.callback(cpu.close)
    lab = stack.enter_context(Lab(0))
    service = stack.enter_context(WsexecService(lab, 0, cpu))
    redis = Redis.from_url(lab.redis.url, socket_timeout=REDIS_TIMEOUT_S)  # a 1M intersection holds Redis for seconds
    stack.callback(redis.close)
    redis.config_set("hash-max-listpack-value", HASH_LISTPACK_VALUE)  # as the shipped config (README, step 1)
    store = Store(redis)
    meter = RedisMeter(redis)
    fleet = declare_instances(store, options.instances)
    baseline = redis.info("memory")["used_memory"]
    maker = TaskMaker(fleet)
    sizes = []
    for target in options.sizes:
        print(f"bench-scale: storing tasks up to {target:,}", file=sys.stderr)
        built = build(redis, lambda size=target: grow(store, fleet, maker, size))
        stored = int(store.tasks.records.redis.zcard(store.tasks.records.kind.all_key))
        entry: dict[str, Any] = {"size": target, "stored": stored, **built, "memory": memory(redis, baseline, stored),
                                 "rows": [], "load1": round(os.getloadavg()[0], 2)}
        print(f"bench-scale: {stored:,} stored in {built['build_s']:.0f} s (Redis CPU {built['redis_cpu_s']} s), "
              f"{entry['memory']['bytes_per_task']} B of Redis per task; measuring", file=sys.stderr)
        for case in cases(service.api, fleet.probe, fleet.instances, options.reps, options.posts, options.arrays):
            entry["rows"].append(measure(case, meter))
            row = entry["rows"][-1]
            print(f"  {row['case']:<50} {row['median_ms']:9.1f} ms  redis cpu {row['redis_cpu_ms_per_call']:8.2f} ms"
                  f"  slowest {row['redis_slowest_ms'] or 0:8.2f} ms  errors {row['errors']}", file=sys.stderr)
        fleet.tasks += finish_open(store)  # the POSTs' tasks, ended like the others
        sizes.append(entry)
        save({"sizes": sizes, "probe": fleet.probe, "instances": len(fleet.instances)})
    return {"sizes": sizes, "probe": fleet.probe, "instances": len(fleet.instances)}


def build(redis: Redis, grow: Callable[[], float]) -> dict[str, float]:
    """Grow with Redis's AOF off (a million tasks wrote GBs to it, and rewrote it over and over), then on again as in
    production, once Redis has rewritten it from the data; the seconds it all took, and the CPU seconds of Redis and
    of this process (what the machine's load changes least)."""
    started, client, redis_cpu = time.perf_counter(), time.process_time(), _redis_cpu(redis)
    redis.config_set("appendonly", "no")
    grow()
    spent = {"redis_cpu_s": round(_redis_cpu(redis) - redis_cpu, 1),
             "client_cpu_s": round(time.process_time() - client, 1)}
    redis.config_set("appendonly", "yes")
    while any(redis.info("persistence")[name] for name in ("aof_rewrite_in_progress", "aof_rewrite_scheduled")):
        time.sleep(0.5)
    return {"build_s": round(time.perf_counter() - started, 1), **spent}


def _redis_cpu(redis: Redis) -> float:
    cpu = redis.info("cpu")
    return float(cpu["used_cpu_sys"] + cpu["used_cpu_user"])


def ratios(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case: the largest size's median over the smallest's, and the goals, met or missed."""
    first, last = sizes[0], sizes[-1]
    rows = []
    for low, high in zip(first["rows"], last["rows"], strict=True):
        ratio = high["median_ms"] / low["median_ms"] if low["median_ms"] else None
        slow = high["redis_slowest_ms"] or 0.0
        cpu = high["redis_cpu_ms_per_call"] / low["redis_cpu_ms_per_call"] if low["redis_cpu_ms_per_call"] else None
        rows.append({"case": low["case"], "ratio": round(ratio, 2) if ratio else None,
                     "ratio_met": ratio is not None and ratio <= RATIO_GOAL,
                     # Redis's own CPU per call: what the shared machine's load changes least
                     "redis_cpu_ratio": round(cpu, 2) if cpu else None,
                     "redis_slowest_ms": high["redis_slowest_ms"], "redis_call_met": slow <= REDIS_CALL_GOAL_MS})
    return rows


def table(result: dict[str, Any]) -> str:
    """One line per case: median (p90) at each size, the ratio, Redis per call at the largest size."""
    sizes = result["sizes"]
    head = "".join(f"{_short(s['size']):>17}" for s in sizes)
    lines = [f"{'case: median (p90) ms':<44}{head}  {'ratio':>6}  {'redis cpu ms':>13} {'ratio':>6} {'slowest':>8} "
             f"{'cmds':>6}"]
    for index, ratio in enumerate(result["ratios"]):
        cells = "".join(f"{_cell(s['rows'][index]):>17}" for s in sizes)
        last = sizes[-1]["rows"][index]
        flag = "" if ratio["ratio_met"] and ratio["redis_call_met"] else "  MISSED"
        errors = sum(s["rows"][index]["errors"] for s in sizes)
        flag += f"  {errors} ERRORS" if errors else ""
        lines.append(f"{ratio['case'][:44]:<44}{cells}  {ratio['ratio'] or 0:>5.2f}x  "
                     f"{last['redis_cpu_ms_per_call']:>13.3f} {ratio.get('redis_cpu_ratio') or 0:>5.2f}x "
                     f"{last['redis_slowest_ms'] or 0:>7.2f} "
                     f"{last['redis_commands_per_call']:>6.1f}{flag}")
    lines.append("")
    for entry in sizes:
        posts = {row["case"]: row.get("redis_bytes_per_task") for row in entry["rows"] if "redis_bytes_per_task" in row}
        lines.append(f"{entry['stored']:>9,} tasks: {entry['memory']['bytes_per_task']:>5} B of Redis per stored task "
                     f"(goal <= {BYTES_GOAL}), built in {entry['build_s']} s (Redis CPU {entry.get('redis_cpu_s')} s, "
                     f"bench {entry.get('client_cpu_s')} s, load {entry.get('load1')}); "
                     "per POSTed task, queued job included: "
                     + ", ".join(f"{name} {value} B" for name, value in posts.items()))
    summary = result["goals"]
    lines.append(f"ratios <= {RATIO_GOAL}: {summary['ratios_met']}/{summary['cases']}; Redis calls <= "
                 f"{REDIS_CALL_GOAL_MS} ms at the largest size: {summary['redis_calls_met']}/{summary['cases']}; "
                 f"bytes per task <= {BYTES_GOAL}: {summary['bytes_met']}")
    return "\n".join(lines)


def _short(value: int) -> str:
    return f"{value // 1_000_000}M" if value % 1_000_000 == 0 else f"{value // 1000}k" if value % 1000 == 0 \
        else str(value)


def _cell(row: dict[str, Any]) -> str:
    return f"{row['median_ms']:.1f} ({row['p90_ms']:.1f})"


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    stamp = timestamp()

    def save(result: dict[str, Any]) -> str:
        result["ratios"] = ratios(result["sizes"])
        last = result["sizes"][-1]["memory"]["bytes_per_task"]
        result["goals"] = {"cases": len(result["ratios"]),
                           "ratios_met": sum(r["ratio_met"] for r in result["ratios"]),
                           "redis_calls_met": sum(r["redis_call_met"] for r in result["ratios"]),
                           "bytes_met": last <= BYTES_GOAL, "ratio_goal": RATIO_GOAL,
                           "redis_call_goal_ms": REDIS_CALL_GOAL_MS, "bytes_goal": BYTES_GOAL}
        document = {"timestamp": stamp, "options": vars(options), "environment": report.environment(), **result}
        return write(stamp, document, options.output)

    with ExitStack() as stack:
        result = run(options, stack, save)
    path = save(result)
    print(table(result))
    print(f"\nbench-scale: results in {path}", file=sys.stderr)
    return 0


def write(stamp: str, document: dict[str, Any], output: str | None) -> str:
    """bench/results/scale-<UTC time>.json and a copy as scale-latest.json, or the file asked for."""
    text = json.dumps(document, indent=2) + "\n"
    if output:
        with open(output, "w") as out:
            out.write(text)
        return output
    report.RESULTS.mkdir(exist_ok=True)
    path = report.RESULTS / f"scale-{stamp}.json"
    path.write_text(text)
    (report.RESULTS / "scale-latest.json").write_text(text)
    return os.path.relpath(path)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("bench-scale: interrupted", file=sys.stderr)
        sys.exit(130)
