"""The web side's use of RQ: the queue, enqueueing tasks as jobs, cancelling a queued job, what RQ shows.

Jobs name their function by dotted path with plain arguments (task ids), so the web never imports the worker.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from rq import Callback, Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Dependency, Job, JobStatus
from rq.serializers import JSONSerializer

from wsexec.store import Store

JOB_FUNCTION = "workers.job.run_tasks"
FAILURE_CALLBACK = "workers.job.on_job_failure"
JOB_PREFIX = "wsexec-job-"  # a job's id is this and its first task's id: the store records it when it stores the task
SLOT_SEPARATOR = ".slot-"  # a worker process registers one RQ worker per job slot: NAME.slot-N
JOB_MARGIN_SECONDS = 60  # RQ's own timeout only backs up the tasks', which the worker enforces itself
# A job's outcome is its tasks' own state: RQ deletes a job as soon as it succeeds (0: no result, no finished entry)
RESULT_TTL = 0
FAILURE_TTL = 24 * 3600  # a failed job (its worker died, RQ's timeout) stays a day in RQ's registry, to look at
# Jobs carry only task ids, so JSON: with RQ's default (pickle) anyone who can write to Redis runs code in every worker.
SERIALIZER = JSONSerializer
MET = (JobStatus.FINISHED.value, JobStatus.FAILED.value)  # a dependent's parent job that ended so (allow_failure)


def make_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis, serializer=SERIALIZER)


@dataclass
class JobPlan:
    """One RQ job: the tasks it runs (at once, up to `threads` at a time), when, and after which jobs."""

    id: str
    task_ids: list[int]
    task_timeout: int  # the longest of its tasks' timeouts
    threads: int
    after: list[str] = field(default_factory=list)  # jobs of dependencies that had not finished
    scheduled_at: float = 0.0
    run_after: list[int] = field(default_factory=list)  # the dependency tasks (of a plan that has `after`)

    def options(self, after: list[str] | None = None) -> dict[str, Any]:
        rounds = -(-len(self.task_ids) // self.threads)
        options: dict[str, Any] = {
            "args": (self.task_ids,),
            "job_id": self.id,
            "timeout": rounds * self.task_timeout + JOB_MARGIN_SECONDS,
            "result_ttl": RESULT_TTL,
            "failure_ttl": FAILURE_TTL,
            "on_failure": Callback(FAILURE_CALLBACK),
        }
        after = self.after if after is None else after
        if after:  # allow_failure: a dependent must run (and end ABORT) even if its dependency's job failed
            options["depends_on"] = Dependency(jobs=after, allow_failure=True)
        return options


def enqueue(queue: Queue, plans: list[JobPlan], now: float, store: Store, pipeline: Pipeline | None = None) -> None:
    """Schedule the plans due later (RQ schedules by whole seconds), queue the others: a few round trips for all.

    pipeline: a transaction the jobs ready now join (its caller executes it), to go with the caller's own writes."""
    ready, later, waiting = [], [], []
    for plan in plans:
        if plan.scheduled_at > now:
            later.append(plan)
        elif plan.after:
            waiting.append(plan)
        else:
            ready.append(Queue.prepare_data(JOB_FUNCTION, **plan.options()))
    if later:
        with queue.connection.pipeline() as pipe:
            for plan in later:
                options = plan.options()
                when = datetime.fromtimestamp(math.ceil(plan.scheduled_at), tz=UTC)
                queue.enqueue_at(when, JOB_FUNCTION, *options.pop("args"), job_timeout=options.pop("timeout"),
                                 pipeline=pipe, **options)
            pipe.execute()
    if waiting:
        _enqueue_after(queue, store, waiting)
    if ready:
        queue.enqueue_many(ready, pipeline=pipeline)


def wake_waiters(store: Store, queue: Queue, instance_id: int, again_seconds: float) -> list[int]:
    """Give the tasks woken for an instance's freed slots a job each, whose claim takes the slot (store/slots.py)."""
    woken = store.slots.wake(instance_id, again_seconds)
    if woken:
        plans = [JobPlan(f"{JOB_PREFIX}wake-{task['id']}-{uuid.uuid4().hex[:8]}", [task["id"]], task["timeout"], 1)
                 for task in store.get_tasks(woken) if task.get("timeout")]
        enqueue(queue, plans, time.time(), store)
    return woken


def _enqueue_after(queue: Queue, store: Store, plans: list[JobPlan]) -> None:
    """Queue jobs once their parents are done, deferring them on the others as RQ's setup_dependencies does, but
    for all of them in one transaction (a POST array of dependents costs what one does).

    RQ takes a dependency on a job it does not know as met; ours is a task whose own POST may still be enqueueing it
    (stored unfinished a moment ago: the dependent waits for it), or whose job succeeded and was deleted (RESULT_TTL
    0: met). The dependency tasks' states tell which: run_after waits for tasks, so a job none of whose tasks among
    ours is unfinished is met (ended, deleted, or cancelled with its task). All under WATCH, so a parent saved,
    changed or deleted meanwhile is seen.
    """
    parents = sorted({parent for plan in plans for parent in plan.after})
    parent_keys = [Job.key_for(parent) for parent in parents]
    dependencies = sorted({task_id for plan in plans for task_id in plan.run_after})
    with queue.connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(*parent_keys)
                found, unfinished = store.tasks.dependencies(parent_keys, dependencies, client=pipe)
                status = dict(zip(parents, found, strict=True))
                pipe.multi()
                for plan in plans:  # a parent none of whose tasks among ours is unfinished is met, whatever RQ says
                    after = [p for p in plan.after if p in unfinished]
                    if all(status[p] in MET for p in after):
                        queue.enqueue_job(queue.create_job(JOB_FUNCTION, **plan.options(after=[])), pipeline=pipe)
                        continue
                    job = queue.create_job(JOB_FUNCTION, **plan.options(after=after))
                    job.set_status(JobStatus.DEFERRED, pipeline=pipe)
                    job.register_dependency(pipeline=pipe)
                    job.save(pipeline=pipe)
                pipe.execute()
                return
            except WatchError:
                continue


def cancel(queue: Queue, job: str, task_id: int) -> None:
    """Take a queued task's job off the queue if the job is its own (else its group's worker will skip it)."""
    try:
        found = Job.fetch(job, connection=queue.connection, serializer=queue.serializer)
        if found.args[0] == [task_id]:
            found.cancel(enqueue_dependents=True)
    except (NoSuchJobError, InvalidJobOperation):
        pass  # already dequeued: its worker will find the task ABORT and not run it


def workers_seen(queue: Queue) -> int:
    """Worker processes registered on the queue (alive: their registrations expire without heartbeats)."""
    return len({key.rpartition(SLOT_SEPARATOR)[0] or key for key in Worker.all_keys(queue=queue)})


def job_slots_seen(queue: Queue) -> int:
    """RQ workers registered on the queue: the jobs the worker processes can run at once."""
    return Worker.count(queue=queue)


def job_counts(queue: Queue) -> dict[str, int]:
    """RQ jobs by state; reading them changes nothing (no registry cleanup)."""
    registries = {
        "scheduled": queue.scheduled_job_registry,
        "deferred": queue.deferred_job_registry,
        "started": queue.started_job_registry,
    }
    return {"queued": queue.count} | {state: r.get_job_count(cleanup=False) for state, r in registries.items()}
