"""The one table of workloads, the comparisons drawn from them, and the loop that runs them."""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from bench.cpu import CpuGroups
from bench.redisstats import RedisStats
from wsexec.testing import SshServer


class Runner(Protocol):
    """One way of running `true` remotely; each implements the shapes its workloads use."""

    name: str

    def prepare(self, servers: list[SshServer], warm: bool) -> None: ...
    def fanout(self, servers: list[SshServer], warm: bool) -> float: ...
    def sequential(self, server: SshServer, count: int, warm: bool) -> float: ...
    def bulk(self, server: SshServer, count: int) -> float: ...  # wsexec only
    def close(self) -> None: ...


@dataclass(frozen=True)
class Workload:
    """One shape of work (fanout, sequential or bulk), done by several runners so their times compare directly."""

    key: str
    title: str
    shape: str
    warm: bool
    notes: dict[str, str]  # runner name -> how it does this workload

    def commands(self, servers: list[SshServer], options: Any) -> int:
        """How many `true` one run executes."""
        return {"fanout": len(servers), "sequential": options.sequential, "bulk": options.bulk}[self.shape]

    def measure(self, runner: Runner, servers: list[SshServer], options: Any) -> float:
        """Seconds for one run (preparation excluded)."""
        if self.shape == "fanout":
            return runner.fanout(servers, self.warm)
        if self.shape == "sequential":
            return runner.sequential(servers[0], options.sequential, self.warm)
        return runner.bulk(servers[0], options.bulk)


FLOOR = ("rq-simple", "rq-task")  # RQ's own floor (bench/rq_floor.py): stock SimpleWorker, wsexec's TaskWorker

WORKLOADS = (
    Workload("fanout-cold", "fan-out to {n} hosts, new connections", "fanout", False,
             {"paramiko": "a thread per host, connect + run", "wsexec": "POST target tag, fresh workers, poll",
              "wsexec-wait": "one POST ?wait, fresh workers",
              "ssh": "sequential loop, 1 ssh per host", "ansible": "-m command -f N, default ssh args"}),
    Workload("fanout-warm", "fan-out to {n} hosts, warm connections", "fanout", True,
             {"paramiko": "a thread per host, open connections", "wsexec": "POST target tag, pools warm, poll",
              "wsexec-wait": "one POST ?wait, pools warm"}),
    Workload("seq", "{n} sequential on 1 host", "sequential", True,
             {"paramiko": "one open connection", "wsexec": "POST, poll until DONE, repeat",
              "wsexec-wait": "POST ?wait, repeat", **{r: "enqueue a no-op job, notified, repeat" for r in FLOOR},
              "ssh": "new connection each"}),
    Workload("bulk", "{n} tasks to 1 host", "bulk", True,
             {"wsexec": "POST arrays of 100", **{r: "a no-op job per task, 100 per enqueue" for r in FLOOR}}),
)

# (name, numerator (workload, runner), denominator (workload, runner), target (op, value) or None)
RATIOS = (
    ("wsexec ?wait / paramiko, fan-out warm", ("fanout-warm", "wsexec-wait"), ("fanout-warm", "paramiko"),
     ("<=", 1.5)),
    ("wsexec ?wait / paramiko, fan-out cold", ("fanout-cold", "wsexec-wait"), ("fanout-cold", "paramiko"),
     ("<=", 1.25)),
    ("wsexec ?wait / paramiko, sequential", ("seq", "wsexec-wait"), ("seq", "paramiko"), ("<=", 2.0)),
    ("wsexec poll / paramiko, fan-out warm", ("fanout-warm", "wsexec"), ("fanout-warm", "paramiko"), None),
    ("wsexec poll / paramiko, fan-out cold", ("fanout-cold", "wsexec"), ("fanout-cold", "paramiko"), None),
    ("wsexec poll / paramiko, sequential", ("seq", "wsexec"), ("seq", "paramiko"), None),
    ("wsexec ?wait / rq-task floor, sequential", ("seq", "wsexec-wait"), ("seq", "rq-task"), None),
    ("ansible / wsexec warm fan-out", ("fanout-cold", "ansible"), ("fanout-warm", "wsexec-wait"), (">=", 30.0)),
    ("ansible / wsexec cold fan-out", ("fanout-cold", "ansible"), ("fanout-cold", "wsexec"), None),
    ("ssh loop / wsexec, fan-out cold", ("fanout-cold", "ssh"), ("fanout-cold", "wsexec"), None),
)
BULK_TARGET = 350.0  # tasks/s
CPU_TARGET_MS = 2.5  # wsexec's own CPU (client + api + workers + redis) per warm command, in the ?wait fan-out
WSEXEC_OWN = ("client", "api", "workers", "redis")
FLOOR_OWN = ("client", "rq", "redis")  # the floor's: our enqueue and wait, its workers, Redis
CPU_SETTLE_SECONDS = 0.05  # lets sshd finish closing what a run closed, so its CPU time is counted


@dataclass
class Result:
    workload: str
    title: str
    runner: str
    note: str
    commands: int
    seconds: list[float] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)  # CPU seconds per component, one dict per run
    load: list[float] = field(default_factory=list)  # the 1-minute load average after each run (shared machine)
    redis: list[dict[str, Any]] = field(default_factory=list)  # Redis round trips and commands, one dict per run

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def cpu_ms_per_command(self) -> dict[str, float]:
        """Median over the runs of each component's CPU time, per command (empty without cgroups)."""
        if not self.cpu or not self.cpu[0]:
            return {}
        return {name: round(1000 * statistics.median(run[name] for run in self.cpu) / self.commands, 2)
                for name in self.cpu[0]}

    def redis_per_command(self) -> dict[str, Any]:
        """Median over the runs of Redis round trips and commands per command, and the commands by name (last run)."""
        if not self.redis:
            return {}
        per = {what: round(statistics.median(run[what] for run in self.redis) / self.commands, 1)
               for what in ("round_trips", "commands")}
        top = {name: round(count / self.commands, 2) for name, count in list(self.redis[-1]["by_command"].items())[:12]}
        return {**per, "by_command": top}

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "median_s": self.median, "min_s": min(self.seconds), "max_s": max(self.seconds),
                "per_command_ms": 1000 * self.median / self.commands, "commands_per_s": self.commands / self.median,
                "cpu_ms_per_command": self.cpu_ms_per_command(),
                "redis_per_command": self.redis_per_command()}


def run_all(runners: dict[str, Runner], servers: list[SshServer], cpu: CpuGroups, redis: RedisStats, options: Any
            ) -> list[Result]:
    """Every workload, runner by runner, options.runs times; preparation (warm-up, restarts) is never timed."""
    results = []
    for workload in WORKLOADS:
        if options.only and workload.key not in options.only:
            continue
        for name, note in workload.notes.items():
            runner = runners[name]
            commands = workload.commands(servers, options)
            result = Result(workload.key, workload.title.format(n=commands), name, note, commands)
            for _ in range(options.runs):
                runner.prepare(servers, workload.warm)
                before, redis_before = cpu.usage(), redis.usage()
                result.seconds.append(workload.measure(runner, servers, options))
                time.sleep(CPU_SETTLE_SECONDS)
                result.cpu.append(cpu.spent(before, cpu.usage()))
                if name.startswith(("wsexec", "rq")):
                    result.redis.append(redis.spent(redis_before, redis.usage()))
                result.load.append(os.getloadavg()[0])
            print(f"  {result.title:<40} {name:<9} median {1000 * result.median:7.0f} ms", file=sys.stderr)
            results.append(result)
    return results


def ratios(results: list[Result]) -> list[dict[str, Any]]:
    """The comparisons the issue asks for, with their targets checked (median against median)."""
    medians = {(r.workload, r.runner): r.median for r in results}
    rows = []
    for name, top, bottom, target in RATIOS:
        if top not in medians or bottom not in medians:
            continue
        value = medians[top] / medians[bottom]
        rows.append({"name": name, "value": value, "target": target, "met": _meets(value, target)})
    for r in results:
        if r.workload == "bulk":
            rate = r.commands / r.median
            floor = r.runner in FLOOR
            target = None if floor else (">=", BULK_TARGET)
            name = f"{r.runner}: {r.commands} no-op jobs, jobs/s" if floor else f"{r.commands} tasks, tasks/s"
            rows.append({"name": name, "value": rate, "target": target, "met": _meets(rate, target)})
        cpu = r.cpu_ms_per_command()
        if r.runner in FLOOR and cpu:  # a warm fan-out is one RQ job: RQ's share of it is the sequential job's / 20
            rows.append({"name": f"{r.runner} floor CPU ms/job, {r.workload}", "value": sum(cpu[c] for c in FLOOR_OWN),
                         "target": None, "met": None, "unit": "ms"})
        if r.workload in ("fanout-warm", "seq") and r.runner.startswith("wsexec") and cpu:
            own = sum(cpu[c] for c in WSEXEC_OWN)
            target = ("<=", CPU_TARGET_MS) if (r.workload, r.runner) == ("fanout-warm", "wsexec-wait") else None
            rows.append({"name": f"{r.runner} CPU ms/cmd, {r.workload}", "value": own, "target": target,
                         "met": _meets(own, target), "unit": "ms"})
    return rows


def _meets(value: float, target: tuple[str, float] | None) -> bool | None:
    if target is None:
        return None
    op, limit = target
    return value <= limit if op == "<=" else value >= limit


def timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
