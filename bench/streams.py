"""Item 4's measurement: GET one task's latency (p50, p99) with and without 200 open SSE streams on /events."""

from __future__ import annotations

import socket
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

from bench.wsexec_api import ApiClient

GETS = 300  # GET /tasks/{id} per measurement
STREAMS = 200  # /wsexec/events streams held open by the bench (the per-process cap's default)


def _open_stream(base: str, token: str) -> socket.socket:
    """One /wsexec/events stream, held open by a raw socket once its 200 status line came (nothing read after)."""
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sock.sendall((f"GET /wsexec/events HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {token}\r\n"
                  "Accept: text/event-stream\r\n\r\n").encode())
    head = sock.recv(4096)
    if not head.startswith(b"HTTP/1.1 200"):
        sock.close()
        raise RuntimeError(f"/wsexec/events: {head[:200]!r}")
    return sock


def _percentiles(api: ApiClient, task_id: str) -> dict[str, float]:
    seconds = []
    for _ in range(GETS):
        start = time.perf_counter()
        api.call("GET", f"/tasks/{task_id}")
        seconds.append(time.perf_counter() - start)
    cuts = statistics.quantiles(seconds, n=100)
    return {"p50_ms": 1000 * statistics.median(seconds), "p99_ms": 1000 * cuts[98]}


def get_latency(api: ApiClient, token: str, task_id: str) -> dict[str, Any]:
    """p50/p99 of GET one task, first alone, then with STREAMS streams open (closed again at the end)."""
    alone = _percentiles(api, task_id)
    socks: list[socket.socket] = []
    try:
        for _ in range(STREAMS):
            socks.append(_open_stream(api.base, token))
        loaded = _percentiles(api, task_id)
    finally:
        for sock in socks:
            sock.close()
    return {"without_streams": alone, "with_streams": loaded, "streams": len(socks), "gets": GETS}
