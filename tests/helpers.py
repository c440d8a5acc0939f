"""What the tests share besides fixtures: credentials, the API client, worker processes, waiting for a state."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from wsexec.config import Settings

ROOT = Path(__file__).resolve().parent.parent
CRON_TOKEN = "cron-token-for-the-readme-example"
PASSWORDS = {"admin": "admin-pw", "operator": "operator-pw", "viewer": "viewer-pw"}
SSH_USER = "wsexec-test"


def task_body(instance: int | dict[str, Any], script: str = "true", **fields: Any) -> dict[str, Any]:
    """A valid POST /tasks body for an instance (or its id); fields add to or replace the defaults."""
    instance_id = instance["id"] if isinstance(instance, dict) else instance
    return {"name": "test", "tag": "test", "instance": instance_id, "script": script, **fields}


class Api:
    """The test client, logged in as one user, speaking JSON: reads like the curl session it stands for."""

    def __init__(self, client: FlaskClient, user: str = "admin") -> None:
        self.client = client
        self.auth = (user, PASSWORDS[user])

    def as_user(self, user: str) -> Api:
        return Api(self.client, user)

    def created(self, path: str, body: Any, **kwargs: Any) -> Any:
        """POST body, which must answer 201; the created resource(s)."""
        response = self.post(path, json=body, **kwargs)
        assert response.status_code == 201, response.json
        return response.json

    def create_task(self, instance: int | dict[str, Any], script: str = "true", **fields: Any) -> dict[str, Any]:
        """POST one task (201 required) and return it."""
        return self.created("/tasks", task_body(instance, script, **fields))

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(path: str, **kwargs: Any) -> Any:
            kwargs.setdefault("auth", self.auth)
            return getattr(self.client, method)(f"/wsexec{path}", **kwargs)

        return call


class WorkerProcesses:
    """Real `python -m workers` processes, as `make run` starts them."""

    def __init__(self, settings: Settings) -> None:
        self.env = {**os.environ, **settings.to_env()}
        self.procs: list[subprocess.Popen] = []

    def start(self, count: int = 1, burst: bool = False) -> list[subprocess.Popen]:
        args = [sys.executable, "-m", "workers"] + (["--burst"] if burst else [])
        new = [subprocess.Popen(args, cwd=ROOT, env=self.env) for _ in range(count)]
        self.procs += new
        return new

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_finished(api: Api, task_id: int, timeout: float = 20.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        task = api.get(f"/tasks/{task_id}").json
        return task if task["state"] in ("DONE", "ABORT") else None

    return wait_for(finished, timeout)


def sse_frames(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """SSE frames as the spec reads them: event, id, data (its lines joined by newlines), or a comment."""
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if current:
                yield current
            current = {}
        elif line.startswith(":"):
            current["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            current[name] = current[name] + "\n" + value if name == "data" and name in current else value
