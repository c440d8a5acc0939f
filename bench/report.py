"""The printed table and the JSON file: medians with min-max, per-command times, ratios against the targets."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.workloads import Result

RESULTS = Path(__file__).resolve().parent / "results"


def table(results: list[Result], ratio_rows: list[dict[str, Any]]) -> str:
    """Plain-text tables for the terminal (and for pasting into a report): times, CPU, ratios."""
    lines = [f"{'workload':<40} {'runner':<11} {'median':>9} {'min-max':>17} {'per cmd':>9} {'cmd/s':>6} "
             f"{'load1':>5}  how"]
    for r in results:
        s = r.summary()
        spread = f"{_ms(s['min_s'])}-{_ms(s['max_s'])}"
        lines.append(f"{r.title:<40} {r.runner:<11} {_ms(s['median_s']):>9} {spread:>17} "
                     f"{s['per_command_ms']:>6.1f} ms {s['commands_per_s']:>6.0f} {max(r.load, default=0):>5.2f}  "
                     f"{r.note}")
    components = list(results[0].cpu_ms_per_command()) if results else []
    if components:
        lines += ["", f"{'CPU ms per command (median)':<40} {'runner':<11} "
                  + " ".join(f"{c:>7}" for c in [*components, "total"])]
        for r in results:
            cpu = r.cpu_ms_per_command()
            lines.append(f"{r.title:<40} {r.runner:<11} "
                         + " ".join(f"{v:>7.2f}" for v in [*cpu.values(), sum(cpu.values())]))
    measured = [r for r in results if r.redis]
    if measured:
        lines += ["", f"{'Redis per command (median)':<40} {'runner':<11} {'round trips':>11} {'commands':>9}  most"]
        for r in measured:
            redis = r.redis_per_command()
            most = ", ".join(f"{name} {count:g}" for name, count in list(redis["by_command"].items())[:6])
            trips, commands = redis["round_trips"], redis["commands"]
            lines.append(f"{r.title:<40} {r.runner:<11} {trips:>11.1f} {commands:>9.1f}  {most}")
    lines.append("")
    for row in ratio_rows:
        target = row["target"]
        verdict = "" if target is None else f"target {target[0]} {target[1]:g}: {'met' if row['met'] else 'MISSED'}"
        unit = row.get("unit", "tasks/s" if row["name"].endswith("/s") else "x")
        value = {"tasks/s": f"{row['value']:.0f}", "x": f"{row['value']:.2f}x"}.get(unit, f"{row['value']:.2f} {unit}")
        lines.append(f"{row['name']:<40} {value:>9}   {verdict}")
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 10 else f"{seconds:.2f} s"


def environment() -> dict[str, Any]:
    """What the figures depend on: cores, OpenSSH, paramiko and ansible versions."""
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    ansible = shutil.which("ansible")
    ansible_version = (subprocess.run([ansible, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
                       if ansible else None)
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": _cpus(), "openssh": ssh,
            "paramiko": version("paramiko"), "rq": version("rq"), "ansible": ansible_version,
            "loadavg_at_end": os.getloadavg()}


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def write(stamp: str, options: dict[str, Any], results: list[Result], ratio_rows: list[dict[str, Any]]) -> Path:
    """bench/results/bench-<UTC time>.json and a copy as latest.json."""
    document = {"timestamp": stamp, "options": options, "environment": environment(),
                "workloads": [r.summary() for r in results], "ratios": ratio_rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{stamp}.json"
    text = json.dumps(document, indent=2) + "\n"
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path
