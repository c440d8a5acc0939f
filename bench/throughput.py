"""`make bench-http` (`python -m bench.throughput`): GET one task at 50 connections, through nginx and directly.

Starts a private redis-server (temporary directory, loopback only) holding 100 finished tasks, gunicorn as shipped
(gunicorn.conf.py) or with other process/thread counts, and the shipped nginx site (nginx/wsexec.conf, rendered as
wsexec.testing.nginx does) in front of it. wrk (Debian's package) loads GET /wsexec/tasks/ID with a bearer token
from 50 connections, first on gunicorn itself, then through nginx's HTTPS, then through nginx without upstream
keepalive (the site as it was before it had it). Reports req/s, p50/p99, non-2xx answers, how the requests spread
over the gunicorn worker processes and gunicorn's own p50/p99 (from its access log, which names the pid and the
time), Redis round trips and commands per request, and the TIME_WAIT sockets left on gunicorn's port. `--profile`
samples one gunicorn worker with py-spy during the nginx run.

nginx's per-address limits (50 requests/s, 64 connections) would answer wrk's single address 429 after the first
200 requests: they are taken out of the rendered copy, as for a trusted internal client; nothing else changes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from redis import Redis
from werkzeug.security import generate_password_hash

from bench import report
from bench.profile import PY_SPY, profile
from bench.scale_data import TaskMaker, declare_instances, grow
from bench.workloads import timestamp
from bench.wsexec_api import _spawn, _stop, _until
from wsexec.config import Settings
from wsexec.store import Store
from wsexec.testing import RedisServer, free_port
from wsexec.testing.nginx import Nginx

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "nginx" / "wsexec.conf"
WRK = "/usr/bin/wrk"
CORES = len(os.sched_getaffinity(0))
TARGET_RPS, TARGET_P99_MS = 1500.0, 50.0  # through nginx, 50 connections (issue 15)
PER_ADDRESS_LIMITS = re.compile(r"^\s*limit_(req|conn) (zone=)?wsexec_\w+.*;\s*$")
UPSTREAM_KEEPALIVE = re.compile(r"^\s*keepalive(_timeout|_requests|_time)?\s+\S+;.*$")
DEFAULT_CONFIGS = "gevent:2,gevent:4,gthread:2x8,gthread:4x4"
WRK_SCRIPT = """-- the credentials in a file only we read, not on wrk's command line
wrk.headers["Authorization"] = "{authorization}"
"""


def parse_config(text: str) -> tuple[str, int, int]:
    """gevent:2 (2 processes, gevent), gthread:4x8 (4 processes of 8 threads)."""
    kind, _, size = text.partition(":")
    workers, _, threads = size.partition("x")
    if kind not in ("gevent", "gthread") or not workers.isdigit() or (threads and not threads.isdigit()):
        raise argparse.ArgumentTypeError(f"expected gevent:N or gthread:NxT, not {text!r}")
    return kind, int(workers), int(threads or 1)


def site_copy(workdir: Path, keepalive: bool) -> Path:
    """The shipped site without the per-address limits (and, for the comparison, without upstream keepalive)."""
    lines = []
    in_upstream = False
    for line in SITE.read_text().splitlines():
        in_upstream = (in_upstream or line.startswith("upstream ")) and not line.startswith("}")
        if PER_ADDRESS_LIMITS.match(line) or (not keepalive and in_upstream and UPSTREAM_KEEPALIVE.match(line)):
            line = "# (bench) " + line
        lines.append(line)
    path = workdir / f"site-{'keepalive' if keepalive else 'no-keepalive'}.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


class Gunicorn:
    """gunicorn.conf.py with its process count (and worker class) overridden on the command line, pids logged."""

    def __init__(self, workdir: Path, env: dict[str, str], config: tuple[str, int, int]) -> None:
        kind, workers, threads = config
        self.bind = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.bind}/wsexec"
        self.log = workdir / f"gunicorn-{kind}-{workers}x{threads}.log"
        self.command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--workers", str(workers),
                        "--access-logformat", "access %(p)s %(s)s %(D)s", "--bind", self.bind]
        if kind == "gthread":
            self.command += ["--worker-class", "gthread", "--threads", str(threads)]
        self.env = {**env, "WSEXEC_BIND": self.bind}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        self.proc = _spawn([*self.command, "wsgi:app"], self.env, self.log, lambda: None)
        _until(self._answers, "gunicorn to answer")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited, see {self.log}")
        return subprocess.run(["curl", "-s", "-o", "/dev/null", f"{self.url}/health"]).returncode == 0

    def __exit__(self, *exc: Any) -> None:
        if self.proc:
            _stop([self.proc])

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return children(self.proc.pid)

    def log_size(self) -> int:
        return self.log.stat().st_size

    def logged(self, since: int) -> tuple[dict[str, int], dict[str, float]]:
        """Requests per gunicorn worker pid logged since that offset of the log (once its last lines are written:
        gunicorn logs a request after answering it), and the p50/p99 of gunicorn's own time per request (from
        reading it to answering it: a tail here is in the worker, one only in wrk's figures is queueing outside)."""
        sizes = [-1, self.log_size()]
        while sizes[-1] != sizes[-2]:
            time.sleep(0.2)
            sizes.append(self.log_size())
        with self.log.open("rb") as log:
            log.seek(since)
            lines = [line.split() for line in log if line.startswith(b"access ")]
        pids = Counter(line[1].decode().strip("<>") for line in lines)
        took = sorted(int(line[3]) / 1000 for line in lines)
        inside = {f"app_{cut}_ms": round(took[min(len(took) - 1, int(len(took) * share))], 2)
                  for cut, share in (("p50", 0.5), ("p99", 0.99))} if took else {}
        return dict(pids.most_common()), inside


def time_wait(port: int) -> int:
    """TIME_WAIT sockets with gunicorn's port at either end (nginx's closed upstream connections)."""
    found = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True).stdout
    return sum(1 for line in found.splitlines() if f":{port} " in line + " ")


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    """One wrk run: req/s, p50/p99 ms, non-2xx answers and socket errors."""
    out = subprocess.run([WRK, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    cuts = {cut: re.search(rf"^\s+{cut}(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M) for cut in ("50", "99")}
    if not rps or not all(cuts.values()):
        raise RuntimeError(f"wrk said:\n{out}")
    latency = {cut: _ms(*found.groups()) for cut, found in cuts.items() if found}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    requests = re.search(r"(\d+) requests in", out)
    return {"rps": float(rps.group(1)), "p50_ms": latency["50"], "p99_ms": latency["99"],
            "requests": int(requests.group(1)) if requests else 0, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1).strip() if errors else ""}


def _ms(value: str, unit: str) -> float:
    return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)


def children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(child) for child in found.stdout.split()]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (not their children), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def wrk_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def redis_counts(redis: Redis) -> dict[str, int]:
    """Redis's reads of client sockets (one a round trip: a pipeline arrives in one) and commands, so far."""
    stats = redis.info("stats")
    return {"round_trips": int(stats["total_reads_processed"]), "commands": int(stats["total_commands_processed"])}


def measure(name: str, url: str, app: Gunicorn, procs: dict[str, list[int]], options: argparse.Namespace,
            script: Path, redis: Redis, profile_to: Path | None = None) -> dict[str, Any]:
    """options.runs wrk runs of one entry point, each with its spread, TIME_WAIT delta, CPU ms per request of
    every process involved and Redis round trips per request (figures the shared machine's load does not change
    much, unlike req/s)."""
    port = int(app.bind.rsplit(":", 1)[1])
    runs = []
    for number in range(options.runs):
        before, offset, redis_before = time_wait(port), app.log_size(), redis_counts(redis)
        cpu_before = {part: cpu_seconds(pids) for part, pids in procs.items()} | {"wrk": wrk_cpu()}
        sampling = profile(app.worker_pids()[0], options.seconds, profile_to) \
            if profile_to and number == 0 else None
        figures = wrk(url, script, options.connections, options.seconds)
        cpu_after = {part: cpu_seconds(pids) for part, pids in procs.items()} | {"wrk": wrk_cpu()}
        if sampling:
            figures["profile"] = sampling.result()
        figures["cpu_ms_per_request"] = {part: round(1000 * (cpu_after[part] - cpu_before[part]) / figures["requests"],
                                                     3) for part in cpu_before} if figures["requests"] else {}
        figures["redis_per_request"] = {what: round((count - redis_before[what]) / figures["requests"], 2)
                                        for what, count in redis_counts(redis).items()} if figures["requests"] else {}
        figures["spread"], inside = app.logged(offset)
        figures.update(inside)
        figures["time_wait_before"], figures["time_wait_after"] = before, time_wait(port)
        runs.append(figures)
        print(f"  {name:<40} {figures['rps']:7.0f} req/s  p50 {figures['p50_ms']:6.1f} ms  p99 "
              f"{figures['p99_ms']:6.1f} ms (in gunicorn: p50 {figures.get('app_p50_ms')} p99 "
              f"{figures.get('app_p99_ms')} ms)  "
              f"non-2xx {figures['non_2xx']}  pids {list(figures['spread'].values())}  "
              f"TIME_WAIT {before} -> {figures['time_wait_after']}  CPU ms/req {figures['cpu_ms_per_request']}  "
              f"Redis/req {figures['redis_per_request']}  "
              f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rps = [r["rps"] for r in runs]
    cpu = {part: statistics.median(r["cpu_ms_per_request"].get(part, 0) for r in runs) for part in runs[0]
           ["cpu_ms_per_request"]}
    server = sum(v for part, v in cpu.items() if part != "wrk")
    return {"name": name, "runs": runs, "rps_median": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in runs),
            "p50_ms_median": statistics.median(r["p50_ms"] for r in runs),
            "app_p99_ms_median": statistics.median(r.get("app_p99_ms", 0) for r in runs),
            "non_2xx": sum(r["non_2xx"] for r in runs), "cpu_ms_per_request": cpu,
            "redis_per_request": {what: statistics.median(r["redis_per_request"].get(what, 0) for r in runs)
                                  for what in runs[0]["redis_per_request"]},
            # what the server side could serve on the machine's cores if nothing else ran (wrk included: it shares them)
            "rps_ceiling": round(1000 * CORES / (server + cpu.get("wrk", 0))) if server else None,
            "load1": os.getloadavg()[0]}


def setup(workdir: Path, stack: ExitStack) -> tuple[dict[str, str], dict[str, Path], int, int, Redis]:
    """Redis with 20 instances and 100 finished tasks; the environment every gunicorn gets; wrk's scripts (a bearer
    token, a basic-auth password); a task; Redis's pid and a client of it."""
    redis_server = stack.enter_context(RedisServer(workdir / "redis").start())
    redis = Redis.from_url(redis_server.url)
    stack.callback(redis.close)
    store = Store(redis)
    fleet = declare_instances(store, 20)
    grow(store, fleet, TaskMaker(fleet), 100)
    token, password = secrets.token_urlsafe(32), secrets.token_urlsafe(16)
    settings = Settings(redis_url=redis_server.url, trusted_proxies=1,
                        tokens=f"bench:viewer:{hashlib.sha256(token.encode()).hexdigest()}",
                        users=f"viewer:viewer:{generate_password_hash(password)}")  # scrypt, as wsexec-auth hash
    scripts = {}
    for auth, header in (("bearer", f"Bearer {token}"),
                         ("basic", "Basic " + base64.b64encode(f"viewer:{password}".encode()).decode())):
        scripts[auth] = workdir / f"wrk-{auth}.lua"
        scripts[auth].touch(mode=0o600)
        scripts[auth].write_text(WRK_SCRIPT.format(authorization=header))
    env = {**os.environ, **settings.to_env(), "WSEXEC_LOG_LEVEL": "warning"}
    assert redis_server.proc is not None
    return env, scripts, int(fleet.probe["id"]), redis_server.proc.pid, redis


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=lambda v: [parse_config(c) for c in v.split(",")],
                        default=[parse_config(c) for c in DEFAULT_CONFIGS.split(",")],
                        help=f"gunicorn processes to try, the first as shipped (default {DEFAULT_CONFIGS})")
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per entry point (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    parser.add_argument("--profile", action="store_true", help="py-spy one gunicorn worker in the first nginx run")
    parser.add_argument("--output", help="write the JSON here instead of bench/results/http-<time>.json")
    options = parser.parse_args(argv)
    if options.runs < 1 or options.seconds < 1 or options.connections < 1:
        parser.error("--runs, --seconds and --connections must be positive")
    if options.profile and not PY_SPY.exists():
        parser.error(f"--profile needs {PY_SPY}")
    return options


def entries(config: tuple[str, int, int], first: bool) -> list[tuple[str, bool | None, str]]:
    """Where wrk connects (gunicorn itself, nginx with upstream keepalive) and how it authenticates (bearer); for
    the shipped config also with basic auth, and through nginx without upstream keepalive."""
    label = f"{config[0]}:{config[1]}" + (f"x{config[2]}" if config[0] == "gthread" else "")
    found: list[tuple[str, bool | None, str]] = [(f"{label} direct", None, "bearer"),
                                                 (f"{label} via nginx", True, "bearer")]
    if first:
        found += [(f"{label} via nginx, basic auth", True, "basic"),
                  (f"{label} via nginx, no upstream keepalive", False, "bearer")]
    return found


def run(options: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    rows = []
    with ExitStack() as stack:
        env, scripts, task_id, redis_pid, redis = setup(workdir, stack)
        for number, config in enumerate(options.configs):
            with Gunicorn(workdir, env, config) as app:
                assert app.proc is not None
                procs = {"gunicorn": [app.proc.pid, *app.worker_pids()], "redis": [redis_pid]}
                for name, keepalive, auth in entries(config, number == 0):
                    script = scripts[auth]
                    if keepalive is None:
                        rows.append(measure(name, f"{app.url}/tasks/{task_id}", app, procs, options, script, redis))
                        continue
                    where = workdir / f"nginx-{number}-{keepalive}"
                    with Nginx(where, app.bind, site_copy(workdir, keepalive), connections=4096).start() as nginx:
                        assert nginx.proc is not None
                        profile_to = workdir / "profile.txt" if options.profile and name.endswith("via nginx") \
                            and number == 0 else None
                        nginx_procs = {**procs, "nginx": [nginx.proc.pid, *children(nginx.proc.pid)]}
                        rows.append(measure(name, f"{nginx.https}/tasks/{task_id}", app, nginx_procs, options, script,
                                            redis, profile_to))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'GET one task, 50 connections':<44} {'req/s':>6} {'min-max':>11} {'p50':>8} {'p99':>8} "
             f"{'non-2xx':>7}  {'per gunicorn pid (1st run)':<26} {'TIME_WAIT':<12} {'Redis RT/cmd':<12} "
             "CPU ms/request -> ceiling req/s"]
    for row in rows:
        first = row["runs"][0]
        cpu = " ".join(f"{part} {value:.2f}" for part, value in row["cpu_ms_per_request"].items())
        redis = row["redis_per_request"]
        lines.append(f"{row['name']:<44} {row['rps_median']:>6.0f} {row['rps_min']:>5.0f}-{row['rps_max']:<5.0f} "
                     f"{row['p50_ms_median']:>6.1f}ms {row['p99_ms_median']:>6.1f}ms {row['non_2xx']:>7}  "
                     f"{'/'.join(map(str, first['spread'].values())):<26} "
                     f"{first['time_wait_before']:>5}->{first['time_wait_after']:<5} "
                     f"{redis.get('round_trips', 0):>5.2f}/{redis.get('commands', 0):<5.2f} "
                     f"{cpu} -> {row['rps_ceiling']}")
    loads = ", ".join(f"{r['load1']:.1f}" for r in rows)
    lines.append(f"(load average during the runs: {loads}; the ceiling is "
                 f"{CORES} cores over the CPU per request of every process, wrk's included)")
    shipped = next((r for r in rows if r["name"].endswith("via nginx")), None)
    if shipped:
        met = shipped["rps_median"] >= TARGET_RPS and shipped["p99_ms_median"] <= TARGET_P99_MS
        lines.append(f"\ntarget through nginx (shipped gunicorn config): >= {TARGET_RPS:.0f} req/s with p99 <= "
                     f"{TARGET_P99_MS:.0f} ms: {'met' if met else 'MISSED'}")
    for row in rows:
        for run_ in row["runs"]:
            if "profile" in run_:
                found = run_["profile"]
                lines.append(f"\npy-spy, one gunicorn worker during {row['name']!r}, {found['samples']} samples; "
                             "own time by package: " + ", ".join(f"{name} {share}%" for name, share in
                                                                  found["self_by_package"][:12]))
                lines += [f"  {share:5.1f}%  {frame}" for frame, share in found["inclusive"][:30]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    stamp = timestamp()
    with tempfile.TemporaryDirectory(prefix="wsexec-http-") as tmp:
        rows = run(options, Path(tmp))
    print(table(rows))
    document = {"timestamp": stamp, "options": {**vars(options), "configs": [list(c) for c in options.configs]},
                "environment": report.environment(), "target": {"rps": TARGET_RPS, "p99_ms": TARGET_P99_MS},
                "rows": rows}
    text = json.dumps(document, indent=2) + "\n"
    if options.output:
        Path(options.output).write_text(text)
    else:
        report.RESULTS.mkdir(exist_ok=True)
        (report.RESULTS / f"http-{stamp}.json").write_text(text)
        (report.RESULTS / "http-latest.json").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
