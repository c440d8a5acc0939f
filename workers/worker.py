"""One job slot: the RQ worker class wsexec runs, a SimpleWorker living in a thread of a worker process.

RQ's default Worker forks a work horse per job, which would throw the SSH pool away after every task (and pay
a fork per task). SimpleWorker keeps RQ's queues, registries, executions, heartbeats, callbacks and `rq info`,
and runs the job in its own thread; a worker process runs several (workers/process.py) so that long tasks do not
hold up every other job. What it loses is the horse that RQ could kill, which wsexec does not need: a task is
stopped by killing its remote process, and a worker killed outright is detected by its task leases
(LeaseKeeper) and RQ's started-job registry.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import TimerDeathPenalty

from workers.job import current_runtime, hold_job, release_job
from wsexec.jobs import JOB_FUNCTION

log = logging.getLogger(__name__)

POLL_SECONDS = 2  # an idle slot waits for a job this long at a time, so it notices a stop as soon


class TaskWorker(SimpleWorker):
    # RQ's default job timeout is SIGALRM, which only the main thread can receive; a timer raises in the slot's own
    death_penalty_class = TimerDeathPenalty
    in_job = False  # set while the slot runs a job: a stopping worker waits for those only
    job_ended_at = 0.0  # time.monotonic() when its last job ended, and after which it has some Redis I/O to do

    def execute_job(self, job: Job, queue: Queue) -> None:
        """RQ's, flagged so that a stop can tell a slot with tasks from an idle one stuck retrying a lost Redis, and
        with the job's tasks held first (workers.job.hold_job)."""
        self.in_job = True
        runtime = current_runtime()
        try:
            if job.func_name == JOB_FUNCTION:
                try:
                    hold_job(runtime, job.id, list(job.args[0]))
                except RedisError:  # the job holds them itself, once Redis answers
                    log.warning("could not hold the tasks of job %s before it started", job.id, exc_info=True)
            super().execute_job(job, queue)
        finally:
            release_job(runtime, job.id)
            self.in_job, self.job_ended_at = False, time.monotonic()

    def stop_taking_jobs(self) -> None:
        """RQ's warm shutdown without Redis I/O (safe in a signal handler): finish the current job, take no other."""
        self._stop_requested = True

    @property
    def should_run_maintenance_tasks(self) -> bool:
        """Never in the slot's thread: RQ's registry cleanup times callbacks by SIGALRM, so the main thread does it."""
        return False

    def maintain(self) -> None:
        """RQ's maintenance (registry cleanup, scheduler restart) when due; called by the process's main thread."""
        if super().should_run_maintenance_tasks:
            self.run_maintenance_tasks()

    def adopt_scheduler(self) -> bool:
        """Start RQ's scheduler in this process if none runs here and the queue's lock is free; True if it did.

        A scheduler that dies with its machine keeps the lock until it expires (61 s), and RQ tries to take it over
        only at its maintenance, every 10 minutes: tasks with scheduled_at would wait that long for another worker.
        """
        if self.scheduler is None or (self.scheduler._process is not None and self.scheduler._process.is_alive()):
            return False
        self.scheduler.acquire_locks(auto_start=True)
        return bool(self.scheduler.acquired_locks)

    def _install_signal_handlers(self) -> None:
        """Signals are the process's (signal.signal fails outside the main thread), which stops every slot."""

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """Wait for a job in short rounds (RQ's blocking pop lasts minutes) so a stopping slot quits at once."""
        if timeout is None:  # burst: RQ does not block
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        while not self._stop_requested:
            found: tuple[Job, Queue] | None = super().dequeue_job_and_maintain_ttl(POLL_SECONDS, POLL_SECONDS)
            if found is not None:
                return found
        return None
