"""`make bench-scale` runs end to end at tiny sizes and writes the result file the issue's table is read from.

The bench starts its own redis-server and gunicorn (loopback, a temporary directory); this checks the file's shape
and that every figure was measured, never a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.scale_probe import FILTERS, combinations

ROOT = Path(__file__).resolve().parent.parent
SIZES = (60, 150)


def test_bench_scale_writes_every_case_at_every_size(tmp_path: Path) -> None:
    output = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--sizes", ",".join(map(str, SIZES)), "--instances", "20",
         "--reps", "2", "--posts", "2", "--arrays", "2", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["instances"] == 20
    assert [entry["size"] for entry in result["sizes"]] == list(SIZES)
    lists = 2 ** len(FILTERS)
    assert len(combinations()) == lists
    expected = lists + 4  # the last page, GET one task, POST one, POST an array of 100
    for entry in result["sizes"]:
        assert entry["stored"] >= entry["size"]
        assert entry["memory"]["bytes_per_task"] > 0
        assert len(entry["rows"]) == expected
        for row in entry["rows"]:
            assert row["calls"] >= 2 and row["median_ms"] > 0, row
            assert row["min_ms"] <= row["median_ms"] <= row["max_ms"], row
            assert row["redis_commands_per_call"] > 0, row  # every call reaches Redis
        posts = {row["case"]: row for row in entry["rows"] if row["case"].startswith("POST")}
        assert set(posts) == {"POST one task", "POST array of 100"}
        assert all("redis_bytes_per_task" in row for row in posts.values())
    assert len(result["ratios"]) == expected
    assert {r["case"] for r in result["ratios"]} == {row["case"] for row in result["sizes"][0]["rows"]}
    assert set(result["goals"]) >= {"ratios_met", "redis_calls_met", "bytes_met"}
    assert "GET one task" in done.stdout  # the printed table
