"""The worker side's use of RQ beyond running jobs, with RQ's own API: failing a dead worker's jobs at once, and
telling the reconciler which jobs RQ still holds."""

from __future__ import annotations

import time
from collections.abc import Collection

from redis import Redis
from rq import Queue
from rq.exceptions import InvalidJobOperation
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty

from wsexec.jobs import SERIALIZER, make_queue

__all__ = ["ENDED", "SERIALIZER", "fail_abandoned_jobs", "job_statuses", "make_queue", "release_if_orphaned",
           "requeue_stranded"]

ENDED = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})


def fail_abandoned_jobs(connection: Redis, queue_name: str, job_ids: Collection[str]) -> None:
    """Let RQ fail these jobs of a dead worker now rather than when their timeout runs out (up to hours later).

    Their executions in the started registry are expired now, and RQ's own cleanup does the rest: FailedJobRegistry,
    the failure callback and, above all, the dependents (run_after) of those tasks, which run at once and end ABORT
    instead of waiting.
    """
    # the failure callbacks run in the calling thread: time them with a timer, SIGALRM reaches only the main thread
    registry = StartedJobRegistry(queue_name, connection=connection, serializer=SERIALIZER,
                                  death_penalty_class=TimerDeathPenalty)
    executions = [
        Execution(execution_id, job_id, connection)
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False)
        if job_id in job_ids
    ]
    if executions:
        with connection.pipeline() as pipe:
            for execution in executions:
                registry.add_execution(execution, pipe, ttl=0, xx=True)  # expires now
            pipe.execute()
        registry.cleanup()


def job_statuses(queue: Queue, job_ids: list[str]) -> dict[str, JobStatus | None]:
    """Each job's status in RQ (queued, scheduled, deferred, started, ended...), None for a job RQ does not have."""
    found = Job.fetch_many(job_ids, connection=queue.connection, serializer=queue.serializer)
    return {job_id: job.get_status(refresh=False) if job else None for job_id, job in zip(job_ids, found, strict=True)}


def release_if_orphaned(queue: Queue, job_id: str) -> bool:
    """Queue a deferred job whose parents have all ended or are gone (RQ would never release it); True if done."""
    job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
    parents = Job.fetch_many(job.dependency_ids, connection=queue.connection, serializer=queue.serializer)
    if any(parent is not None and parent.get_status(refresh=False) not in ENDED for parent in parents):
        return False
    try:
        queue.deferred_job_registry.requeue(job)
    except InvalidJobOperation:  # released meanwhile, by RQ or another worker's reconciler
        return False
    return True


def requeue_stranded(queue: Queue, job_ids: Collection[str], min_age: float) -> list[str]:
    """Queue again the jobs a worker popped and then died with, before it could register them as started.

    RQ pops a job into an intermediate list, then adds it to the started registry: a worker killed between the two
    (kill -9, a machine lost) strands the job there, and RQ's own cleanup fails it only at its maintenance, 10 to 20
    minutes later. A job seen stranded for min_age is pushed back, once (LREM decides between reconcilers): its
    tasks are INIT, or ended ABORT by the reapers if the dead worker had claimed them, and claiming a task is
    atomic, so none runs twice even if its first worker comes back.
    """
    stranded = IntermediateQueue(queue.key, connection=queue.connection)
    requeued = []
    for job_id in set(job_ids) & set(stranded.get_job_ids()):
        if job_id in queue.started_job_registry or stranded.set_first_seen(job_id):
            continue
        first_seen = stranded.get_first_seen(job_id)
        if first_seen and time.time() - first_seen.timestamp() >= min_age and queue.connection.lrem(
                stranded.key, 1, job_id):
            queue.push_job_id(job_id)
            requeued.append(job_id)
    return requeued
