"""py-spy on one running process: where its time goes, as shares of its samples per function."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"
RATE = 200  # samples a second


class Sampling:
    """A py-spy record running in the background; result() waits for it and sums its stacks."""

    def __init__(self, proc: subprocess.Popen[bytes], output: Path) -> None:
        self.proc, self.output = proc, output

    def result(self, top: int = 40) -> dict[str, Any]:
        self.proc.wait(120)
        stacks = Counter[tuple[str, ...]]()
        for line in self.output.read_text().splitlines():
            frames, _, count = line.rpartition(" ")
            if frames and count.isdigit():
                stacks[tuple(frames.split(";"))] += int(count)
        total = sum(stacks.values()) or 1
        inclusive, own, packages = Counter[str](), Counter[str](), Counter[str]()
        for frames, count in stacks.items():
            for frame in set(frames):
                inclusive[frame] += count
            own[frames[-1]] += count
            packages[package(frames[-1])] += count

        def shares(counter: Counter[str]) -> list[tuple[str, float]]:
            return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

        return {"samples": total, "inclusive": shares(inclusive), "self": shares(own),
                "self_by_package": shares(packages)}


def package(frame: str) -> str:
    """The package a frame's code is in: 'f (redis/client.py:12)' -> redis; the standard library's own modules too."""
    path = frame.rpartition(" (")[2].rstrip(")").rpartition(":")[0]
    return path.split("/", 1)[0].removesuffix(".py") or "?"


def profile(pid: int, seconds: int, output: Path) -> Sampling:
    """Start sampling pid for `seconds` (idle samples left out), stacks in py-spy's raw (collapsed) format."""
    command = [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(RATE),
               "--format", "raw", "--output", str(output), "--nonblocking"]
    return Sampling(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), output)
