"""A few hostile or careless clients must not take the API from everyone else (real gunicorn, real Redis)."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import requests

from tests.helpers import PASSWORDS
from wsexec.config import Settings

VIEWER = ("viewer", PASSWORDS["viewer"])
OPERATOR = ("operator", PASSWORDS["operator"])
ADMIN = ("admin", PASSWORDS["admin"])
SLOW_CLIENTS = 24  # three times what froze 2 gthread workers x 4 threads
ANSWER_WITHIN = 10  # seconds: not a timing assertion, a bound so a frozen server fails the test instead of hanging it
WAITERS_PER_USER = 6  # 12 waits in all: more than 2 gthread workers x 4 threads had


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for every wait of the flood (the per-user limit is tests/test_quotas.py's subject)."""
    return dataclasses.replace(settings, user_waits_max=WAITERS_PER_USER)


@contextmanager
def slowloris(url: str, count: int = SLOW_CLIENTS, source: str = "127.0.0.1",
              wrap: ssl.SSLContext | None = None) -> Iterator[list[socket.socket]]:
    """`count` connections (TLS if `wrap`) that each send half a request's headers and then nothing; closed on exit."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    held = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
            if wrap:
                sock = wrap.wrap_socket(sock, server_hostname=host)
            sock.sendall(b"GET /wsexec/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(sock)
        yield held
    finally:
        for sock in held:
            sock.close()


def answers(url: str) -> tuple[int, int]:
    """Health's status and a viewer's GET status, each within ANSWER_WITHIN seconds."""
    health = requests.get(f"{url}/wsexec/health", timeout=ANSWER_WITHIN)
    tasks = requests.get(f"{url}/wsexec/tasks", auth=VIEWER, timeout=ANSWER_WITHIN)
    return health.status_code, tasks.status_code


def test_slow_clients_do_not_freeze_gunicorn(gunicorn_url: str) -> None:
    with slowloris(gunicorn_url) as held:
        assert answers(gunicorn_url) == (503, 200)  # 503: health says no worker runs here, but it answers
        assert len(held) == SLOW_CLIENTS


def test_waiting_requests_do_not_hold_the_api(gunicorn_url: str) -> None:
    """Requests waiting for tasks that cannot finish (no worker runs) leave the API answering everyone else."""
    instance = requests.post(f"{gunicorn_url}/wsexec/instances", auth=ADMIN, timeout=10,
                             json={"ip": "127.0.0.9", "tag": "t", "user": "nobody"}).json()
    statuses: list[int] = []

    def wait(auth: tuple[str, str]) -> None:
        response = requests.post(f"{gunicorn_url}/wsexec/commands/uptime?wait=6", auth=auth, timeout=30,
                                 json={"instance": instance["id"]})
        statuses.append(response.status_code)

    waiters = [threading.Thread(target=wait, args=(auth,)) for auth in [OPERATOR, ADMIN] * WAITERS_PER_USER]
    for thread in waiters:
        thread.start()
    try:
        assert answers(gunicorn_url) == (503, 200)
    finally:
        for thread in waiters:
            thread.join()
    assert sorted(set(statuses)) == [504]  # every wait ran its course: the task did not finish in time
