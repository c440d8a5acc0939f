"""wsexec end to end: real gunicorn and `python -m workers` processes, driven only through the HTTP API."""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Queue, Worker

from bench.cpu import CpuGroups
from bench.lab import Lab
from wsexec.config import Settings
from wsexec.jobs import SLOT_SEPARATOR
from wsexec.store import Store
from wsexec.testing import SshServer, free_port

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_TAG = "bench"
POST_CHUNK = 100  # tasks per POST in the bulk run
SEQUENTIAL_POLL_SECONDS = 0.005  # GET /tasks/{id} this often until DONE in the sequential run
WAIT_SECONDS = 120.0


def _spawn(cmd: list[str], env: dict[str, str], log: Path, preexec: Callable[[], None]) -> subprocess.Popen[bytes]:
    """Its own session: Ctrl-C reaches only us, and we stop it in order (before Redis goes away)."""
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM exactly these PIDs (graceful for gunicorn and RQ), SIGKILL whatever still runs after 15 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _until(predicate: Any, what: str, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while (value := predicate()) is None or value is False:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)
    return value


class ApiClient:
    """The API as a client sees it: JSON over HTTP with a bearer token (cheap to check, unlike a password hash)."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base}/wsexec{path}", timeout=60, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def count(self, **filters: Any) -> int:
        return int(self.call("GET", "/tasks", params={**filters, "page_size": 1})["count"])

    def tasks(self, **filters: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in itertools.count(1):
            body = self.call("GET", "/tasks", params={**filters, "page": page, "page_size": 100})
            found += body["results"]
            if not body["next"]:
                return found
        raise AssertionError("unreachable")


class WsexecService:
    """gunicorn (gunicorn.conf.py, as `make run`) and N worker processes, configured by Settings.to_env()."""

    def __init__(self, lab: Lab, workers: int, cpu: CpuGroups, overrides: dict[str, str] | None = None) -> None:
        """Each process starts in its cgroup ("api" or "workers"), so its CPU time is counted from the start;
        overrides are other settings by field name (`--set worker_threads=20`), as their variables would say."""
        self.cpu = cpu
        token = secrets.token_urlsafe(32)
        self.settings = Settings.from_env(
            {f"WSEXEC_{name.upper()}": value for name, value in (overrides or {}).items()},
            redis_url=lab.redis.url,
            tokens=f"bench:admin:{hashlib.sha256(token.encode()).hexdigest()}",
            ssh_key=str(lab.key),
            known_hosts=str(lab.known_hosts),
        )
        bind = f"127.0.0.1:{free_port()}"
        self.env = {**os.environ, **self.settings.to_env(), "WSEXEC_BIND": bind, "WSEXEC_LOG_LEVEL": "warning"}
        self.worker_env: dict[str, str] = {}  # the workers' only (bench/worker_memory.py's tracing)
        self.logs = lab.workdir
        self.worker_count = workers
        self.api = ApiClient(f"http://{bind}", token)
        self.gunicorn: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.generation = 0
        self.queue = Queue(self.settings.queue, connection=Redis.from_url(self.settings.redis_url))

    def start(self) -> WsexecService:
        self.gunicorn = [_spawn([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                self.env, self.logs / "gunicorn.log", partial(self.cpu.join, "api"))]
        _until(self._answers, "gunicorn to answer")
        self.start_workers()
        return self

    def _answers(self) -> bool:
        """gunicorn serves (health says 503 until the workers come, which is an answer too)."""
        if self.gunicorn[0].poll() is not None:
            raise RuntimeError(f"gunicorn exited, see {self.logs / 'gunicorn.log'}")
        try:
            return requests.get(f"{self.api.base}/wsexec/health", timeout=5).status_code in (200, 503)
        except requests.RequestException:
            return False

    def _registered_workers(self) -> int:
        for proc in self.workers:
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited with {proc.returncode}, see {self.logs}/worker-*.log")
        return Worker.count(queue=self.queue)  # RQ workers: each process registers one per job slot

    def start_workers(self) -> None:
        """New worker processes (so, empty SSH pools), returning once all are registered with RQ."""
        self.generation += 1
        self.workers = [_spawn([sys.executable, "-m", "workers"], {**self.env, **self.worker_env},
                               self.logs / f"worker-{self.generation}-{n}.log",
                               partial(self.cpu.join, "workers"))
                        for n in range(self.worker_count)]
        slots = self.worker_count * self.settings.worker_jobs
        _until(lambda: self._registered_workers() == slots, "the workers' job slots to register with RQ")
        time.sleep(0.3)  # registered comes just before the first dequeue: let every worker reach it

    def restart_workers(self) -> None:
        _stop(self.workers)
        self.start_workers()

    def stop(self) -> None:
        _stop(self.workers)
        _stop(self.gunicorn)
        self.queue.connection.close()

    def __enter__(self) -> WsexecService:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Wsexec:
    """The workloads as tasks, timed from the first POST to the last task's `end` (which the worker writes)."""

    name = "wsexec"

    def __init__(self, service: WsexecService, lab: Lab) -> None:
        self.service = service
        self.api = service.api
        self.redis = Redis.from_url(lab.redis.url)
        self.store = Store(self.redis)  # only to see which worker ran a task (not in the API)
        self.instances = {
            server: self.api.call("POST", "/instances", json={"ip": server.host, "port": server.port,
                                                              "tag": INSTANCE_TAG, "user": lab.user})["id"]
            for server in lab.servers
        }
        self.runs = itertools.count(1)

    # -- preparation -------------------------------------------------------------------------------

    def prepare(self, servers: list[SshServer], warm: bool) -> None:
        """Cold: fresh worker processes. Warm: fan out until every worker holds a connection to every host."""
        if not warm:
            self.service.restart_workers()
            return
        wanted = {(worker, self.instances[s]) for worker in self._worker_names() for s in servers}
        for _ in range(30):
            tag, tasks = self._submit([{"target": {"tag": INSTANCE_TAG}}])
            ran = self.store.get_tasks(t["id"] for t in self._wait(tag, len(tasks)))
            wanted -= {(t["worker"], t["instance"]) for t in ran}
            if not wanted:
                return
        raise RuntimeError(f"could not warm every worker's pool: still missing {sorted(wanted)}")

    def _worker_names(self) -> set[str]:
        """The worker processes' names, which tasks record (their job slots register as NAME.slot-N)."""
        return {w.name.rpartition(SLOT_SEPARATOR)[0] or w.name for w in Worker.all(queue=self.service.queue)}

    # -- workloads ---------------------------------------------------------------------------------

    def fanout(self, servers: list[SshServer], warm: bool) -> float:
        """One POST with "target": {"tag": ...}: one task per ACTIVE instance of the tag."""
        if len(servers) != len(self.instances):
            raise ValueError("the fan-out targets every benchmark instance")
        start = time.time()
        tag, tasks = self._submit([{"target": {"tag": INSTANCE_TAG}}])
        return self._finished_at(self._wait(tag, len(tasks))) - start

    def sequential(self, server: SshServer, count: int, warm: bool) -> float:
        """POST one task, poll it until DONE, then the next: what a script calling the API in a loop sees."""
        start = time.time()
        finished = []
        for _ in range(count):
            _, (task,) = self._submit([{"instance": self.instances[server]}])
            finished.append(_until(lambda t=task: self._if_finished(self.api.call("GET", f"/tasks/{t['id']}")),
                                   f"task {task['id']}", WAIT_SECONDS, interval=SEQUENTIAL_POLL_SECONDS))
        return self._finished_at(finished) - start

    def bulk(self, server: SshServer, count: int) -> float:
        """count tasks to one host, POSTed as arrays of POST_CHUNK while the workers already run them."""
        start = time.time()
        tag = self._tag()
        for first in range(0, count, POST_CHUNK):
            self._submit([{"instance": self.instances[server]}] * min(POST_CHUNK, count - first), tag)
        return self._finished_at(self._wait(tag, count, interval=0.05)) - start

    def close(self) -> None:
        self.redis.close()

    # -- helpers -----------------------------------------------------------------------------------

    def _tag(self) -> str:
        return f"run-{next(self.runs)}"

    def _submit(self, items: list[dict[str, Any]], tag: str | None = None) -> tuple[str, list[dict[str, Any]]]:
        """POST `true` tasks as one JSON array, all with the same fresh tag so the run can be followed."""
        tag = tag or self._tag()
        body = [{"name": "bench", "tag": tag, "script": "true", **item} for item in items]
        return tag, self.api.call("POST", "/tasks", json=body)

    @staticmethod
    def _if_finished(task: dict[str, Any]) -> dict[str, Any] | None:
        if task["state"] == "ABORT":
            raise RuntimeError(f"task {task['id']} ended ABORT: {task.get('error')}")
        return task if task["state"] == "DONE" else None

    def _wait(self, tag: str, count: int, interval: float = 0.01) -> list[dict[str, Any]]:
        """Poll the DONE count of the run's tag; fail at the first ABORT instead of waiting for nothing."""
        deadline = time.monotonic() + WAIT_SECONDS
        polls = 0
        while self.api.count(tag=tag, state="DONE") < count:
            polls += 1
            if polls % 50 == 0 and self.api.count(tag=tag, state="ABORT"):
                aborted = self.api.tasks(tag=tag, state="ABORT")
                raise RuntimeError(f"{len(aborted)} task(s) ended ABORT, e.g.: {aborted[0].get('error')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {tag}: not all {count} tasks DONE after {WAIT_SECONDS} s")
            time.sleep(interval)
        return self.api.tasks(tag=tag)

    @staticmethod
    def _finished_at(tasks: list[dict[str, Any]]) -> float:
        """When the last task ended; every one must have run `true` successfully."""
        failed = [t for t in tasks if t.get("rc") != 0]
        if failed:
            raise RuntimeError(f"{len(failed)} task(s) did not exit 0, e.g. {failed[0]}")
        return max(t["end"] for t in tasks)


class WsexecWait(Wsexec):
    """The same workloads with the best call the API offers: one `POST /tasks?wait=` per fan-out and per task.

    Each answer's arrival minus the `end` the worker recorded for the last task of it is the end->answer delay
    (same machine, same clock), kept in `delays` for the report."""

    name = "wsexec-wait"

    def __init__(self, polling: Wsexec) -> None:  # the same instances: no super().__init__()
        self.service, self.api, self.redis, self.store = polling.service, polling.api, polling.redis, polling.store
        self.instances, self.runs = polling.instances, polling.runs
        self.delays: list[float] = []

    def close(self) -> None:
        pass  # the polling runner closes the shared Redis connection

    def fanout(self, servers: list[SshServer], warm: bool) -> float:
        if len(servers) != len(self.instances):
            raise ValueError("the fan-out targets every benchmark instance")
        start = time.time()
        tasks = self._post_wait([{"target": {"tag": INSTANCE_TAG}}])
        return self._finished_at(tasks) - start

    def sequential(self, server: SshServer, count: int, warm: bool) -> float:
        start = time.time()
        finished: list[dict[str, Any]] = []
        for _ in range(count):
            finished += self._post_wait([{"instance": self.instances[server]}])
        return self._finished_at(finished) - start

    def _post_wait(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = [{"name": "bench", "tag": self._tag(), "script": "true", **item} for item in items]
        tasks: list[dict[str, Any]] = self.api.call("POST", "/tasks", params={"wait": int(WAIT_SECONDS)}, json=body)
        answered = time.time()
        for task in tasks:
            if task["state"] != "DONE":
                raise RuntimeError(f"task {task['id']} is {task['state']} after ?wait: {task.get('error')}")
        self.delays.append(answered - max(t["end"] for t in tasks))
        return tasks
