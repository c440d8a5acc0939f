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

from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.results import Result
from rq.utils import now
from rq.worker import WorkerStatus

from workers.job import current_runtime, release_job, take_job
from workers.timeouts import WatchdogDeathPenalty
from wsexec.jobs import JOB_FUNCTION

log = logging.getLogger(__name__)

POLL_SECONDS = 2  # an idle slot waits for a job this long at a time, so it notices a stop as soon
# RQ beats with its default TTL (minutes) up to three times per job, and before each poll: one such beat in this
# long is plenty (the beat after each job, which brings the TTL back from the job's, is always sent)
BEAT_AGAIN_SECONDS = 15.0
SUSPENSION_CHECK_SECONDS = 1.0  # how often a worker process reads RQ's `rq suspend` flag (for all its slots)


class TaskJob(Job):
    """RQ's job, deleted after its success without reading its executions back twice (six round trips): while it is
    still STARTED in Redis, its one execution is the one the worker's cleanup_execution removes in the same
    transaction. In any other case (cancelled meanwhile...) RQ's own delete runs."""

    def cleanup(self, ttl: int | None = None, pipeline: Pipeline | None = None, remove_from_queue: bool = True
                ) -> None:
        if (ttl == 0 and pipeline is not None and not remove_from_queue and not self.group_id
                and not self.has_rate_limit and self._fetch_status() == JobStatus.STARTED):
            pipeline.delete(self.key, self.dependents_key, self.dependencies_key, Result.get_key(self.id),
                            self.execution_registry.key)
            return
        super().cleanup(ttl, pipeline, remove_from_queue)


class TaskWorker(SimpleWorker):
    # RQ's default job timeout is SIGALRM, which only the main thread can receive; a watchdog raises in the slot's own
    death_penalty_class = WatchdogDeathPenalty
    job_class = TaskJob
    in_job = False  # set while the slot runs a job: a stopping worker waits for those only
    job_ended_at = 0.0  # time.monotonic() when its last job ended, and after which it has some Redis I/O to do
    default_beat_at = -BEAT_AGAIN_SECONDS  # time.monotonic() of its last beat with RQ's default TTL (none since)

    next_suspension_check = 0.0  # time.monotonic() after which RQ's `rq suspend` flag is read again (the class's)
    preparing: Pipeline | None = None  # prepare_execution's writes, sent with prepare_job_execution's
    back_to_idle = False  # the running job's end set the slot IDLE (cleanup_execution)

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's, in one round trip instead of three; a default beat within BEAT_AGAIN_SECONDS of the last one is
        skipped (the registration's TTL is minutes): RQ beats before, at and after every dequeue."""
        if timeout is not None:
            self.default_beat_at = -BEAT_AGAIN_SECONDS  # a job's own TTL now: the next default beat must be sent
            super().heartbeat(timeout, pipeline)
            return
        if pipeline is None and time.monotonic() - self.default_beat_at < BEAT_AGAIN_SECONDS:
            return
        if pipeline is not None:
            super().heartbeat(None, pipeline)
        else:
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(None, pipe)
                pipe.execute()
        self.default_beat_at = time.monotonic()

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's (`rq suspend`), read by one slot of the process once a second rather than by each before every job."""
        if time.monotonic() >= TaskWorker.next_suspension_check:
            TaskWorker.next_suspension_check = time.monotonic() + SUSPENSION_CHECK_SECONDS
            super().check_for_suspension(burst)

    def prepare_execution(self, job: Job) -> Execution:
        """RQ's, its writes left for prepare_job_execution to send with its own (one round trip instead of two)."""
        pipe = self.connection.pipeline()
        execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipe, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipe)
        self.preparing = pipe
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """RQ's (the job's and the slot's beats, the job marked started), sent with prepare_execution's writes."""
        pipe, self.preparing = self.preparing or self.connection.pipeline(), None
        with pipe:
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            self.heartbeat(heartbeat_ttl, pipeline=pipe)
            job.heartbeat(now(), heartbeat_ttl, pipeline=pipe)
            job.prepare_for_execution(self.name, pipeline=pipe)
            pipe.persist(job.key)
            if remove_from_intermediate_queue:
                pipe.lrem(Queue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            pipe.execute()

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """RQ's, without its job heartbeat when the job returned and has no success callback: that beat only gives a
        callback time to run (a failed job's on_failure, which reaps its tasks, keeps it)."""
        if job.get_status(refresh=False) == JobStatus.FAILED or job.success_callback is not None:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
        else:
            job.ended_at = now()

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's, without writing IDLE again when the slot is already idle (RQ sets it after a job and at each
        dequeue)."""
        if pipeline is None and state == WorkerStatus.IDLE and self.get_state() == WorkerStatus.IDLE:
            return
        super().set_state(state, pipeline)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """RQ's, flagged so that a stop can tell a slot with tasks from an idle one stuck retrying a lost Redis, and
        with the job's tasks taken first (workers.job.take_job)."""
        self.in_job = True
        runtime = current_runtime() if job.func_name == JOB_FUNCTION else None
        try:
            if runtime is not None:
                try:
                    take_job(runtime, job.id, list(job.args[0]))
                except RedisError:  # the job takes them itself, once Redis answers
                    log.warning("could not take the tasks of job %s before it started", job.id, exc_info=True)
            # SimpleWorker's, with the slot's return to IDLE and its heartbeat sent with the job's end
            self.back_to_idle = False
            self.perform_job(job, queue, self.prepare_execution(job))
            if not self.back_to_idle:  # RQ ended the job without cleanup_execution
                with self.connection.pipeline(transaction=False) as pipe:
                    self.set_state(WorkerStatus.IDLE, pipeline=pipe)
                    self.heartbeat(pipeline=pipe)
                    pipe.execute()
        finally:
            if runtime is not None:
                release_job(runtime, job.id)
            self.in_job, self.job_ended_at = False, time.monotonic()

    def cleanup_execution(self, job: Job, pipeline: Pipeline, execution: Execution | None = None) -> None:
        """RQ's, with the slot's return to IDLE and its beat in the same transaction (the job's end)."""
        super().cleanup_execution(job, pipeline, execution)
        self.set_state(WorkerStatus.IDLE, pipeline=pipeline)
        self.heartbeat(pipeline=pipeline)
        self.back_to_idle = True

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
