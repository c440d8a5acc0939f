"""The scale benchmark's measurements: each API call timed from the client, and what Redis spent on it.

Redis's share comes from its own counters, read before and after each case: INFO cpu (its process's CPU seconds),
INFO commandstats (calls and microseconds per command, scripts as EVALSHA) and SLOWLOG (every command over
SLOW_US, so the slowest single Redis call of a case is known, not only the average).
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from redis import Redis
from redis.exceptions import RedisError

from bench.wsexec_api import ApiClient

FILTERS = ("state", "instance", "tag", "name", "batch", "kind", "schedule")  # GET /tasks' filters (TaskFilterSchema)
SLOW_US = 1000  # SLOWLOG keeps every Redis command slower than this (1 ms)
SLOWLOG_LEN = 100_000
CASE_BUDGET_S = 20.0  # a case stops repeating after this long, once it has MIN_CALLS calls
MIN_CALLS = 3


def combinations() -> list[tuple[str, ...]]:
    """Every set of filters a list may combine: none, each alone, ..., all seven (2^7 = 128)."""
    return [c for n in range(len(FILTERS) + 1) for c in itertools.combinations(FILTERS, n)]


class RedisMeter:
    """Deltas of Redis's own CPU and command counters around a block of calls."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        redis.config_set("slowlog-log-slower-than", SLOW_US)
        redis.config_set("slowlog-max-len", SLOWLOG_LEN)

    def snapshot(self) -> dict[str, Any]:
        """The counters now, and an empty SLOWLOG."""
        self.redis.slowlog_reset()
        return self._counters()

    def _counters(self) -> dict[str, Any]:
        cpu, stats = self.redis.info("cpu"), self.redis.info("commandstats")
        return {"cpu": cpu["used_cpu_sys"] + cpu["used_cpu_user"], "memory": self.redis.info("memory")["used_memory"],
                "commands": {name.removeprefix("cmdstat_"): (v["calls"], v["usec"]) for name, v in stats.items()}}

    def spent(self, before: dict[str, Any], calls: int) -> dict[str, Any]:
        """Per API call: Redis CPU ms, commands, the commands costing most; the slowest single command."""
        slow = [entry for entry in self.redis.slowlog_get(SLOWLOG_LEN)
                if not entry["command"].upper().startswith((b"SLOWLOG", b"INFO"))]
        after = self._counters()
        per_command = {}
        for name, (count, usec) in after["commands"].items():
            was = before["commands"].get(name, (0, 0))
            if name not in ("info", "slowlog") and count > was[0]:
                per_command[name] = (count - was[0], usec - was[1])
        top = sorted(per_command.items(), key=lambda item: -item[1][1])[:3]
        slowest = max(slow, key=lambda entry: entry["duration"], default=None)
        return {
            "redis_cpu_ms_per_call": round(1000 * (after["cpu"] - before["cpu"]) / calls, 3),
            # commands run by scripts count here too, and within their EVALSHA's time: no sum of times, which would
            # count them twice; the CPU above is what Redis really spent
            "redis_commands_per_call": round(sum(c for c, _ in per_command.values()) / calls, 1),
            "top_commands": {name: {"calls_per_call": round(c / calls, 1), "usec_per_command": round(u / c, 1)}
                             for name, (c, u) in top},
            "redis_slowest_ms": round(slowest["duration"] / 1000, 2) if slowest else None,
            "redis_slowest_command": slowest["command"][:60].decode(errors="replace") if slowest else None,
            "redis_calls_over_5ms": sum(1 for entry in slow if entry["duration"] > 5000),
            "redis_bytes_added": after["memory"] - before["memory"],
        }


@dataclass
class Case:
    """One API call, repeated: its name (the table's row) and how to make it once."""

    name: str
    call: Callable[[], Any]
    calls: int  # timed repetitions (after one untimed warm-up)
    tasks: int = 0  # tasks each call creates (POST): Redis's growth is then shown per task


def measure(case: Case, meter: RedisMeter) -> dict[str, Any]:
    """The case's client-side latency (median, p90, min-max over its calls) with Redis's cost per call.

    A case stops repeating once it has taken CASE_BUDGET_S (after MIN_CALLS calls): at 1M some take seconds. A call
    that fails (a 503 when Redis is too slow to answer, a timeout) is counted, timed and kept in `errors`."""
    errors: list[str] = []

    def once() -> None:
        try:
            case.call()
        except (RuntimeError, requests.RequestException, RedisError) as error:
            errors.append(str(error)[:300])

    once()  # warm-up: connections, scripts loaded, the page cache
    before = meter.snapshot()
    seconds: list[float] = []
    started = time.perf_counter()
    while len(seconds) < case.calls and (len(seconds) < MIN_CALLS or time.perf_counter() - started < CASE_BUDGET_S):
        start = time.perf_counter()
        once()
        seconds.append(time.perf_counter() - start)
    calls = len(seconds)
    cut = statistics.quantiles(seconds, n=10)[-1] if calls > 1 else seconds[0]
    redis = meter.spent(before, calls)
    added = redis.pop("redis_bytes_added")
    if case.tasks:  # RQ's queued jobs included: no worker runs them
        redis["redis_bytes_per_task"] = round(added / (case.tasks * calls))
    return {"case": case.name, "calls": calls, "median_ms": round(1000 * statistics.median(seconds), 2),
            "p90_ms": round(1000 * cut, 2), "min_ms": round(1000 * min(seconds), 2),
            "max_ms": round(1000 * max(seconds), 2), **redis, "errors": len(errors), "first_error": next(
                iter(errors), None), "load1": round(os.getloadavg()[0], 2)}


def cases(api: ApiClient, probe: dict[str, Any], instances: list[int], reps: int, posts: int, arrays: int
          ) -> list[Case]:
    """Every list filter combination (values of the probe: a recent task that has every field), the last page of
    the whole list, GET one task, POST one task, POST an array of 100."""
    found = []
    total = api.count()
    for combo in combinations():
        params = {name: probe[name] for name in combo}
        label = "list " + ("&".join(combo) if combo else "(no filter)")
        found.append(Case(label, lambda p=params: api.call("GET", "/tasks", params={**p, "page_size": 20}), reps))
    last = max(1, -(-total // 20))
    found.append(Case("list (no filter) last page", lambda: api.call(
        "GET", "/tasks", params={"page": last, "page_size": 20}), reps))
    found.append(Case("GET one task", lambda: api.call("GET", f"/tasks/{probe['id']}"), reps * 3))
    rotation = itertools.cycle(instances)
    item = {"name": "bench-post", "tag": "bench-post", "script": "true"}
    found.append(Case("POST one task", lambda: api.call("POST", "/tasks", json={**item, "instance": next(rotation)}),
                      posts, tasks=1))
    found.append(Case("POST array of 100", lambda: api.call(
        "POST", "/tasks", json=[{**item, "instance": next(rotation)} for _ in range(100)]), arrays, tasks=100))
    return found
