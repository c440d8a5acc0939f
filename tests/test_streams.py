"""Streams on real gunicorn (one gevent process, so /metrics's per-process stream count is the one serving them):
200 open follow streams beside ordinary requests, the cap's 503, and a client that leaves giving its slot back."""

from __future__ import annotations

import base64
import dataclasses
import socket
import ssl
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import PASSWORDS, wait_for
from wsexec.config import Settings
from wsexec.store import Store

VIEWER = ("viewer", PASSWORDS["viewer"])
STREAMS = 200  # the per-process cap's default (WSEXEC_EVENTS_STREAMS_MAX)
GETS = 300  # GET one task, per measurement
HEARTBEAT = 0.5  # seconds: how soon a stream notices that its client left (its next write fails)


@pytest.fixture(autouse=True)
def one_gunicorn_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read by the gunicorn_url fixture's environment: every stream lands in the process /metrics describes."""
    monkeypatch.setenv("WSEXEC_GUNICORN_WORKERS", "1")


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """A quick heartbeat; the cap lowered where a test says so (@pytest.mark.streams_max(N))."""
    marker = request.node.get_closest_marker("streams_max")
    cap = marker.args[0] if marker else settings.events_streams_max
    return dataclasses.replace(settings, events_heartbeat=HEARTBEAT, events_streams_max=cap)


@pytest.fixture
def running(store: Store, api: Any, instance: dict[str, Any]) -> dict[str, Any]:
    """A task a (pretend) worker runs and that prints nothing yet: a follow of it stays open."""
    task = api.create_task(instance)
    assert store.claim(task["id"], "test-worker", 600)
    return task


def open_stream(base: str, path: str, accept: str = "text/event-stream", source: str = "127.0.0.1",
                wrap: ssl.SSLContext | None = None) -> socket.socket:
    """A stream held open by a raw socket (TLS if `wrap`) once its status line came (nothing read after): a client
    that sits."""
    url = urlsplit(base)
    sock: socket.socket = socket.create_connection((url.hostname, url.port), timeout=60, source_address=(source, 0))
    if wrap:
        sock = wrap.wrap_socket(sock, server_hostname=url.hostname)
    token = base64.b64encode(":".join(VIEWER).encode()).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Basic {token}\r\n"
                  f"Accept: {accept}\r\n\r\n").encode())
    head = sock.recv(4096)
    if not head.startswith(b"HTTP/1.1 200"):
        sock.close()
        raise AssertionError(f"{path}: {head[:300]!r}")
    return sock


@contextmanager
def streams(base: str, path: str, count: int, accept: str = "text/event-stream",
            sources: tuple[str, ...] = ("127.0.0.1",),
            wrap: ssl.SSLContext | None = None) -> Iterator[list[socket.socket]]:
    """`count` open streams, from the source addresses in turn; closed on exit."""
    held: list[socket.socket] = []
    try:
        for number in range(count):
            held.append(open_stream(base, path, accept, sources[number % len(sources)], wrap))
        yield held
    finally:
        for sock in held:
            sock.close()


def open_streams_metric(base: str) -> tuple[float, float]:
    """/metrics's wsexec_web_streams_open and _max of the (one) gunicorn process."""
    response = requests.get(f"{base}/wsexec/metrics", auth=VIEWER, timeout=30)
    assert response.status_code == 200, response.text
    samples = {s.name: s.value for f in text_string_to_metric_families(response.text) for s in f.samples}
    return samples["wsexec_web_streams_open"], samples["wsexec_web_streams_max"]


def get_one_task(session: requests.Session, url: str) -> tuple[list[int], list[float]]:
    statuses, seconds = [], []
    for _ in range(GETS):
        start = time.perf_counter()
        statuses.append(session.get(url, auth=VIEWER, timeout=60).status_code)
        seconds.append(time.perf_counter() - start)
    return statuses, seconds


def percentiles(seconds: list[float]) -> str:
    p99 = statistics.quantiles(seconds, n=100)[98]
    return f"p50 {1000 * statistics.median(seconds):.1f} ms, p99 {1000 * p99:.1f} ms"


def test_200_open_follow_streams_do_not_starve_ordinary_requests(gunicorn_url: str, running: dict) -> None:
    """Every GET is answered 200 while 200 follow streams sit open; the 201st stream is refused 503 (the cap).

    The latencies are printed (pytest -s), never asserted: `make bench` measures them.
    """
    task_url = f"{gunicorn_url}/wsexec/tasks/{running['id']}"
    follow = f"/wsexec/tasks/{running['id']}/output?follow=true"
    with requests.Session() as session:
        alone, alone_seconds = get_one_task(session, task_url)
        with streams(gunicorn_url, follow, STREAMS) as held:
            assert open_streams_metric(gunicorn_url) == (STREAMS, STREAMS)
            refused = requests.get(f"{gunicorn_url}{follow}", auth=VIEWER, timeout=60)
            loaded, loaded_seconds = get_one_task(session, task_url)
            assert len(held) == STREAMS
    assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit(), refused.text
    assert refused.json()["error"] == f"this process already serves {STREAMS} streams (WSEXEC_EVENTS_STREAMS_MAX)"
    assert alone == loaded == [200] * GETS
    print(f"\nGET one task ({GETS} sequential): no streams: {percentiles(alone_seconds)}; "
          f"{STREAMS} follow streams open: {percentiles(loaded_seconds)}")


@pytest.mark.streams_max(2)
@pytest.mark.parametrize("path, accept", [("/wsexec/tasks/{task}/output?follow=true", "text/event-stream"),
                                          ("/wsexec/tasks/{task}/output?follow=true", "text/plain"),
                                          ("/wsexec/events", "text/event-stream")])
def test_the_cap_and_a_client_that_leaves_giving_its_slot_back(gunicorn_url: str, running: dict, path: str,
                                                               accept: str) -> None:
    """With the cap lowered to 2, the third stream is 503 with Retry-After; a client that hangs up frees its slot
    (the greenlet's next heartbeat write fails, the response closes), so a new stream is served again."""
    path = path.format(task=running["id"])
    with streams(gunicorn_url, path, 2, accept) as (first, _):
        assert open_streams_metric(gunicorn_url) == (2, 2)
        refused = requests.get(f"{gunicorn_url}{path}", auth=VIEWER, headers={"Accept": accept}, timeout=60)
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit(), refused.text
        assert refused.json()["detail"]["limit"] == 2
        left = time.monotonic()
        first.close()
        wait_for(lambda: open_streams_metric(gunicorn_url)[0] == 1, timeout=60, interval=0.02)
        freed = time.monotonic() - left
        with streams(gunicorn_url, path, 1, accept):
            assert open_streams_metric(gunicorn_url) == (2, 2)
    wait_for(lambda: open_streams_metric(gunicorn_url)[0] == 0, timeout=60)
    print(f"\n{path} ({accept}): slot back {freed:.2f} s after the client left (heartbeat {HEARTBEAT} s)")


def test_a_text_follow_that_loses_redis_is_cut_short_not_ended(gunicorn_url: str, running: dict,
                                                               redis_server: Any) -> None:
    """Plain text has no room for an error event: the transfer stops without its last chunk, so curl says so (exit
    18) instead of taking the output for complete; never a hang. Resume with ?stdout_offset=."""
    url = f"{gunicorn_url}/wsexec/tasks/{running['id']}/output?follow=true"
    with requests.get(url, auth=VIEWER, stream=True, timeout=(10, 60)) as stream:
        assert stream.status_code == 200 and stream.headers["Transfer-Encoding"] == "chunked"
        cut_short_when_redis_stops(stream, redis_server)


def cut_short_when_redis_stops(stream: requests.Response, redis_server: Any) -> None:
    """Stop Redis under an open text follow: reading the rest fails as an incomplete transfer; Redis back after."""
    redis_server.stop()
    try:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            b"".join(stream.iter_content(None))
    finally:
        redis_server.start()
