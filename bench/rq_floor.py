"""RQ's own floor: no-op jobs through the RQ version and worker classes wsexec runs, measured in the same run.

The SPEC mandates RQ workers, so part of wsexec's time per job is RQ's minimum: a job enqueued, dequeued, marked
started, run, finished and its registries cleaned, whatever the job does. The floor runs a job that only tells the
client it ran (one XADD, as a task's end wakes its ?wait) and times enqueue -> client notified, with the same job
options wsexec gives its jobs (JSON, no result kept), on `--workers` processes of one RQ worker each:
"rq-simple" is RQ's stock SimpleWorker, "rq-task" is wsexec's TaskWorker (SimpleWorker with fewer heartbeats and
state writes). What wsexec spends beyond these is its own.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from functools import partial
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker, Worker, get_current_job

from bench.cpu import CpuGroups
from bench.lab import Lab
from bench.wsexec_api import _spawn, _stop, _until
from wsexec.jobs import FAILURE_TTL, RESULT_TTL, SERIALIZER
from wsexec.testing import SshServer

CLASSES = {"rq-simple": "rq.SimpleWorker", "rq-task": "workers.worker.TaskWorker"}
CHUNK = 100  # jobs per enqueue_many in the bulk run, as the API enqueues a POST's jobs at once
WAIT_MS = 60_000
JOB_TIMEOUT = 60


def noop(stream: str) -> None:
    """The job: tell the client it ran, in one round trip."""
    job = get_current_job()
    assert job is not None
    job.connection.xadd(stream, {"done": job.id})


class RqFloor:
    """One runner per worker class; its worker processes serve a queue of their own (nothing else's jobs)."""

    def __init__(self, name: str, lab: Lab, workers: int, cpu: CpuGroups) -> None:
        self.name = name
        self.redis = Redis.from_url(lab.redis.url)
        self.queue = Queue(f"bench-{name}", connection=self.redis, serializer=SERIALIZER)
        self.runs = itertools.count(1)
        command = [sys.executable, "-m", "bench.rq_floor", lab.redis.url, self.queue.name, CLASSES[name]]
        self.procs = [_spawn([*command, f"{name}-{n}"], dict(os.environ), lab.workdir / f"{name}-{n}.log",
                             partial(cpu.join, "rq")) for n in range(workers)]
        _until(lambda: Worker.count(queue=self.queue) == workers, f"the {name} workers to register")
        time.sleep(0.3)  # registered comes just before the first dequeue

    def prepare(self, servers: list[SshServer], warm: bool) -> None:
        """Nothing to warm: a no-op job touches no host."""

    def sequential(self, server: SshServer, count: int, warm: bool) -> float:
        """Enqueue one job, wait until it has told us it ran, repeat."""
        return self._jobs(count, 1)

    def bulk(self, server: SshServer, count: int) -> float:
        """count jobs (one per task, the shape of wsexec's single-task jobs), enqueued CHUNK at a time."""
        return self._jobs(count, CHUNK)

    def _jobs(self, count: int, chunk: int) -> float:
        stream = f"bench:{self.name}:{next(self.runs)}"
        last = "0-0"
        start = time.perf_counter()
        for first in range(0, count, chunk):
            size = min(chunk, count - first)
            self.queue.enqueue_many([Queue.prepare_data(noop, args=(stream,), timeout=JOB_TIMEOUT,
                                                        result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)
                                     for _ in range(size)])
            if chunk == 1:
                last = self._notified(stream, 1, last)
        if chunk > 1:
            self._notified(stream, count, last)
        elapsed = time.perf_counter() - start
        self.redis.delete(stream)
        return elapsed

    def _notified(self, stream: str, count: int, last: str) -> str:
        """Block until `count` jobs have said they ran (after entry `last`); the last entry's id."""
        seen = 0
        while seen < count:
            reply: Any = self.redis.xread({stream: last}, block=WAIT_MS)
            if not reply:
                raise RuntimeError(f"{self.name}: no job ran for {WAIT_MS} ms, see its log")
            entries = reply[0][1]
            seen, last = seen + len(entries), entries[-1][0].decode()
        return last

    def close(self) -> None:
        _stop(self.procs)
        self.redis.close()


def main(url: str, queue: str, worker_class: str, name: str) -> None:
    """One worker process: one RQ worker of the class, in the main thread, as RQ runs it."""
    module, _, attribute = worker_class.rpartition(".")
    cls = getattr(__import__(module, fromlist=[attribute]), attribute)
    assert issubclass(cls, SimpleWorker)
    redis = Redis.from_url(url)
    cls([queue], connection=redis, name=name, serializer=SERIALIZER).work(logging_level="WARNING")


if __name__ == "__main__":
    main(*sys.argv[1:5])
