"""`python -m bench.dos`: a few hostile clients against real gunicorn, and what a viewer's GET costs meanwhile.

Starts a private redis-server and gunicorn (gunicorn.conf.py, the default settings but for the users, whose
passwords are hashed with the default scrypt as in production), then the shipped nginx site file in front of it;
no worker runs, so every ?wait lasts its full time. Scenarios, first directly on gunicorn then through nginx
(HTTPS): idle; SLOWLORIS connections sending half a request each; GUESSERS threads guessing admin's password,
each from its own loopback address; WAITERS concurrent ?wait=20 requests (two users, within their limit). Then
directly, with the login limits raised so only the thread pool protects the loop: the same guessing, and the
time of a refusal for a wrong password against a name that does not exist. Prints the viewer's GET p50/p95 per
scenario and what the attackers got; the numbers are for the issue note, no test asserts them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from werkzeug.security import generate_password_hash

from wsexec.config import Settings
from wsexec.testing import RedisServer, free_port
from wsexec.testing.http import FromAddress
from wsexec.testing.nginx import Nginx

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "nginx" / "wsexec.conf"
PASSWORDS = {"admin": "admin-bench-pw", "operator": "operator-bench-pw", "viewer": "viewer-bench-pw"}
VIEWER = ("viewer", PASSWORDS["viewer"])
SLOWLORIS, GUESSERS, WAITERS, SAMPLES = 64, 16, 8, 150
VIEWER_PAUSE = 0.03  # seconds between the viewer's GETs: under nginx's 50 requests/s per address, like a dashboard


class Service:
    """redis-server and gunicorn in a temporary directory, stopped (exactly those processes) on exit."""

    def __init__(self, workdir: Path, **overrides: Any) -> None:
        self.redis = RedisServer(workdir / "redis")
        self.workdir = workdir
        self.overrides = overrides
        self.proc: subprocess.Popen[bytes] | None = None
        self.bind = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.bind}/wsexec"

    @contextmanager
    def running(self) -> Iterator[Service]:
        with self.redis.start():
            users = " ".join(f"{name}:{name}:{generate_password_hash(pw)}" for name, pw in PASSWORDS.items())
            settings = Settings(redis_url=self.redis.url, users=users, trusted_proxies=1, **self.overrides)
            env = {**os.environ, **settings.to_env(), "WSEXEC_BIND": self.bind, "WSEXEC_LOG_LEVEL": "warning"}
            with (self.workdir / "gunicorn.log").open("ab") as log:
                self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                self._until_serving()
                yield self
            finally:
                self.proc.terminate()
                self.proc.wait(30)

    def _until_serving(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/health", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer, see {self.workdir / 'gunicorn.log'}")


@dataclass
class Entry:
    """Where the clients connect: gunicorn itself, or nginx's HTTPS in front of it (trusting its certificate)."""

    url: str
    verify: str | bool = True
    tls: ssl.SSLContext | None = None

    def session(self, source: str | None = None) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = self.verify
        if source:
            session.mount(self.url.split("//")[0] + "//", FromAddress(source))
        return session


def viewer_latency(entry: Entry, samples: int = SAMPLES) -> dict[str, float]:
    """p50 and p95 (ms) of a viewer's GET /tasks (its password check cached after the first, as in production)."""
    session = entry.session()
    times = []
    for _ in range(samples):
        time.sleep(VIEWER_PAUSE)
        start = time.perf_counter()
        response = session.get(f"{entry.url}/tasks", auth=VIEWER, timeout=60)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(len(times) * 0.95)], 1)}


@contextmanager
def in_background(target: Callable[[int, threading.Event], None], count: int) -> Iterator[None]:
    """`count` threads running target(number, stop) until the block ends."""
    stop = threading.Event()
    threads = [threading.Thread(target=target, args=(n, stop), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(1)  # let them get going
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def slowloris(entry: Entry, count: int) -> dict[str, Any]:
    parts = urlsplit(entry.url)
    held = []
    for n in range(count):
        sock = socket.create_connection((parts.hostname, parts.port), timeout=5, source_address=(f"127.0.4.{n}", 0))
        if entry.tls:
            sock = entry.tls.wrap_socket(sock, server_hostname=parts.hostname)
        sock.sendall(b"GET /wsexec/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        held.append(sock)
    try:
        start = time.perf_counter()
        health = entry.session().get(f"{entry.url}/health", timeout=60).status_code
        health_ms = round((time.perf_counter() - start) * 1000, 1)
        return {"slow_connections": count, "health_status": health, "health_ms": health_ms, **viewer_latency(entry)}
    finally:
        for sock in held:
            sock.close()


def guessing(entry: Entry, count: int) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def guess(number: int, stop: threading.Event) -> None:
        session = entry.session(source=f"127.0.3.{number + 1}")
        while not stop.is_set():
            status = session.get(f"{entry.url}/tasks", auth=("admin", "guess"), timeout=60).status_code
            with lock:
                statuses[status] += 1

    with in_background(guess, count):
        started = time.perf_counter()
        latency = viewer_latency(entry)
        seconds = time.perf_counter() - started
    genuine = entry.session().get(f"{entry.url}/tasks", auth=("admin", PASSWORDS["admin"]), timeout=60).status_code
    return {"guessers": count, "answers": dict(statuses), "guesses_per_s": round(sum(statuses.values()) / seconds),
            **latency, "admin_right_password_after": genuine}


def waits(entry: Entry, count: int) -> dict[str, Any]:
    session = entry.session()
    instance = session.post(f"{entry.url}/instances", auth=("admin", PASSWORDS["admin"]), timeout=30,
                            json={"ip": "127.0.0.9", "tag": "dos", "user": "nobody"}).json()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def wait(number: int, stop: threading.Event) -> None:
        user = ("operator", "admin")[number % 2]
        response = entry.session().post(f"{entry.url}/commands/uptime?wait=20", auth=(user, PASSWORDS[user]),
                                        timeout=60, json={"instance": instance["id"]})
        with lock:
            statuses[response.status_code] += 1

    with in_background(wait, count):
        latency = viewer_latency(entry)
        one_more = session.post(f"{entry.url}/commands/uptime?wait=20", auth=("operator", PASSWORDS["operator"]),
                                timeout=60, json={"instance": instance["id"]}).status_code
    return {"waiters": count, "one_more_wait_same_user": one_more, **latency, "waits_answered": dict(statuses)}


def enumeration(entry: Entry, tries: int = 20) -> dict[str, float]:
    """Median ms of a refusal for a wrong password of a real user and for a name that does not exist."""
    session = entry.session()

    def median(user: str) -> float:
        times = []
        for _ in range(tries):
            start = time.perf_counter()
            session.get(f"{entry.url}/tasks", auth=(user, "wrong"), timeout=60)
            times.append((time.perf_counter() - start) * 1000)
        return round(statistics.median(times), 1)

    return {"wrong_password_ms": median("admin"), "unknown_user_ms": median("nosuchuser")}


def scenarios(entry: Entry) -> dict[str, Any]:
    """Guessing last: it locks admin's name for the window (the per-user limit), which the figures show."""
    return {"idle": viewer_latency(entry), "slowloris": slowloris(entry, SLOWLORIS), "waits": waits(entry, WAITERS),
            "guessing": guessing(entry, GUESSERS)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dos", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wsexec-dos-") as tmp:
        with Service(Path(tmp) / "limits").running() as service:
            results["gunicorn"] = scenarios(Entry(service.url))
        with Service(Path(tmp) / "behind-nginx").running() as service:
            nginx = Nginx(Path(tmp) / "nginx", service.bind, SITE, connections=1024)
            with nginx.start():
                tls = ssl.create_default_context(cafile=str(nginx.cert))
                results["nginx"] = scenarios(Entry(nginx.https, str(nginx.cert), tls))
        raised = {"login_failures_per_address": 10**9, "login_failures_per_user": 10**9}
        with Service(Path(tmp) / "no-login-limits", **raised).running() as service:
            entry = Entry(service.url)
            results["gunicorn, login limits raised"] = {"guessing": guessing(entry, GUESSERS),
                                                        "enumeration": enumeration(entry)}
    for where, figures in results.items():
        for name, values in figures.items():
            print(f"{where:30} {name:12} {json.dumps(values)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
