"""Loaded by every Python process started with this folder on PYTHONPATH (bench/worker_memory.py's worker only):
with WSEXEC_MEMTRACE set, tracemalloc runs and a snapshot is written there each time the file named by
WSEXEC_MEMTRACE + ".ask" appears, so the bench compares what the worker holds after N and after M tasks."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

FRAMES = 8


def _serve(path: str) -> None:
    ask = path + ".ask"
    while True:
        if os.path.exists(ask):
            name = open(ask).read().strip()
            tracemalloc.take_snapshot().dump(f"{path}.{name}")
            os.unlink(ask)
        time.sleep(0.2)


if os.environ.get("WSEXEC_MEMTRACE"):
    tracemalloc.start(FRAMES)
    threading.Thread(target=_serve, args=(os.environ["WSEXEC_MEMTRACE"],), daemon=True, name="memtrace").start()
