"""`make run` supervises: scripts/run.sh, run for real in a private copy of the tree (own var/, free ports), restarts
a worker killed with SIGKILL while the API keeps answering, and a TERM stops everything it started. And a worker
told to stop while Redis is unreachable still exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from redis import Redis

from tests.helpers import PASSWORDS, ROOT, wait_for
from wsexec.config import Settings
from wsexec.testing import RedisServer, free_port
from wsexec.testing.servers import _children

LINKED = ["wsexec", "workers", "wsgi.py", "gunicorn.conf.py"]


class RunScript:
    """scripts/run.sh in its own session, its output collected line by line."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.redis_port = int(env["WSEXEC_REDIS_PORT"])
        self.proc = subprocess.Popen(["bash", str(root / "scripts" / "run.sh")], cwd=root, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def descendants(self) -> set[int]:
        found, todo = set(), [self.proc.pid]
        while todo:
            children = _children(todo.pop())
            found.update(children)
            todo += children
        return found

    def workers(self) -> set[int]:
        """The `python -m workers` processes run.sh started (its direct children)."""
        found = set()
        for pid in _children(self.proc.pid):
            try:
                if b"workers" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                    found.add(pid)
            except OSError:
                continue
        return found


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def run_script(tmp_path: Path, client_key: Path, known_hosts: Path, password_hashes: dict[str, str]
               ) -> Iterator[tuple[RunScript, str]]:
    root = tmp_path / "wsexec"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "run.sh").write_bytes((ROOT / "scripts" / "run.sh").read_bytes())
    for name in LINKED:
        (root / name).symlink_to(ROOT / name)
    (root / ".venv").symlink_to((ROOT / ".venv").resolve())
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WSEXEC_")}
    env |= {"WSEXEC_USERS": f"admin:admin:{password_hashes['admin']}", "WSEXEC_SSH_KEY": str(client_key),
            "WSEXEC_KNOWN_HOSTS": str(known_hosts), "WSEXEC_BIND": f"127.0.0.1:{port}",
            "WSEXEC_REDIS_PORT": str(free_port()), "WSEXEC_WORKERS": "2", "WSEXEC_GUNICORN_WORKERS": "1"}
    run = RunScript(root, env)
    try:
        yield run, f"http://127.0.0.1:{port}/wsexec"
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            for pid in run.descendants():
                os.killpg(pid, signal.SIGKILL)
            run.proc.wait()


def health(url: str) -> dict:
    try:
        return requests.get(f"{url}/health", timeout=5).json()
    except (requests.ConnectionError, requests.Timeout):
        return {}


def test_run_restarts_a_killed_worker_and_term_stops_everything(run_script: tuple[RunScript, str]) -> None:
    run, url = run_script
    wait_for(lambda: health(url).get("workers") == 2, timeout=90)
    first = sorted(run.workers())
    assert len(first) == 2
    victim = first[1]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: any("run: worker 2 exited with status 137; restarting in 1 s" in line for line in run.lines),
             timeout=20)
    assert health(url)["status"] == "ok"  # gunicorn and the other worker kept serving
    response = requests.get(f"{url}/tasks", auth=("admin", PASSWORDS["admin"]), timeout=5)
    assert response.status_code == 200
    replacement = wait_for(lambda: run.workers() - set(first), timeout=30).pop()
    # the new worker registered its job slots (the killed one's registrations linger until their TTL)
    password = (run.root / "var" / "redis.password").read_text().strip()
    started = set(run.descendants())
    redis = Redis(port=run.redis_port, password=password)
    wait_for(lambda: any(key.decode().endswith(f".{replacement}.slot-0") for key in redis.smembers("rq:workers")),
             timeout=60)
    assert first[0] in run.workers()  # the other worker was left alone
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(60) == 143
    assert "run: stopping" in run.lines
    wait_for(lambda: all(gone(pid) for pid in started | set(first)), timeout=10)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", run.redis_port), timeout=2):
        pass
    assert (run.root / "var" / "redis" / "appendonlydir").is_dir()


def test_a_worker_told_to_stop_while_redis_is_down_exits_within_its_grace(
    tmp_path: Path, settings: Settings
) -> None:
    server = RedisServer(tmp_path / "redis", users={"wsexec": "~* &* +@all"}).start()
    try:
        env = {**os.environ, **settings.to_env(), "WSEXEC_REDIS_URL": server.user_url("wsexec"),
               "WSEXEC_STOP_GRACE": "20", "WSEXEC_WORKER_JOBS": "4"}
        worker = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env)
        redis = Redis.from_url(server.url)
        wait_for(lambda: len(redis.smembers("rq:workers")) == 4, timeout=30)
    finally:
        server.stop()
    try:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0  # not stuck in RQ's and the client's connection retries until past the grace
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
