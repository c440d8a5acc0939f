"""`make bench-http` runs end to end (real Redis, gunicorn, nginx and wrk) and writes the figures the issue asks for.

Checks the result file's shape and what cannot depend on timing (every request answered 2xx, counted per gunicorn
process; without upstream keepalive nginx closes connections), never a rate or a latency.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.throughput import WRK

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not shutil.which(WRK), reason="wrk missing: scripts/setup.sh dev installs Debian's wrk")
def test_bench_http_measures_gunicorn_and_nginx(tmp_path: Path) -> None:
    output = tmp_path / "http.json"
    done = subprocess.run([sys.executable, "-m", "bench.throughput", "--configs", "gevent:2", "--runs", "1",
                           "--seconds", "2", "--connections", "8", "--output", str(output)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads(output.read_text())["rows"]}
    assert set(rows) == {"gevent:2 direct", "gevent:2 via nginx", "gevent:2 via nginx, basic auth",
                         "gevent:2 via nginx, no upstream keepalive"}
    for row in rows.values():
        (run,) = row["runs"]
        assert run["requests"] > 0 and run["non_2xx"] == 0 and run["socket_errors"] == "", run
        assert sum(run["spread"].values()) >= run["requests"]  # every answer logged by one of the gunicorn pids
        assert len(run["spread"]) <= 2
        assert set(row["cpu_ms_per_request"]) >= {"gunicorn", "redis", "wrk"}
        assert 0 < row["redis_per_request"]["round_trips"] <= row["redis_per_request"]["commands"]
        assert 0 < run["app_p50_ms"] <= run["app_p99_ms"]  # gunicorn's own time per request, from its access log
    closed = rows["gevent:2 via nginx, no upstream keepalive"]["runs"][0]
    assert closed["time_wait_after"] - closed["time_wait_before"] >= closed["requests"] // 2
    assert "GET one task" in done.stdout
