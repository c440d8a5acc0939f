"""What a task leaves in Redis once it has ended: its record and output, no RQ job (the task's own record is the
outcome; RQ keeps only failures), and its output notification stream only for a minute (followers see the end)."""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from rq.job import Job, JobStatus

from tests.helpers import Api, wait_finished
from wsexec import jobs
from wsexec.config import Settings
from wsexec.store import Store, TaskState, keys
from wsexec.store.scripts import NOTIFY_KEEP_SECONDS
from wsexec.tasks import expand

# RQ's per-queue bookkeeping that stays whatever ran (the queue set, its workers, their stats, registries' indexes)
PER_JOB = ("rq:job:", "rq:results:", "rq:execution:", "rq:executions:")


def rq_keys(admin: Redis) -> list[str]:
    return sorted(key.decode() for key in admin.scan_iter(match="rq:*", count=1000))


def test_ended_tasks_leave_no_rq_job_nor_result(api: Api, instance: dict[str, Any], workers: Any,
                                                redis_server: Any) -> None:
    admin = Redis.from_url(redis_server.url)
    one = api.create_task(instance, "echo one")
    array = api.created("/tasks", [{"name": "a", "tag": "t", "instance": instance["id"], "script": f"echo {i}"}
                                   for i in range(5)])
    dependent = api.create_task(instance, "echo after", run_after=[one["id"]])
    assert admin.exists(Job.key_for(one["job"]))  # queued: RQ has it
    workers.start(1)
    ended = [wait_finished(api, task["id"]) for task in [one, *array, dependent]]
    assert [task["state"] for task in ended] == ["DONE"] * 7
    assert ended[-1]["start"] >= ended[0]["end"]
    time.sleep(0.5)  # the job's own end (RQ's bookkeeping) comes right after its tasks' ends
    left = [key for key in rq_keys(admin) if key.startswith(PER_JOB)]
    assert left == []
    finished = [key for key in rq_keys(admin) if key.startswith("rq:finished:")]
    assert all(admin.zcard(key) == 0 for key in finished)
    for task in ended:  # kept for the retention period, but not the notification stream (4.7 KB a task)
        assert admin.ttl(keys.record("task", task["id"])) > 86400
        assert 0 < admin.ttl(keys.notify(task["id"])) <= NOTIFY_KEEP_SECONDS


def make_dependent(store: Store, settings: Settings, instance: dict[str, Any]) -> tuple[int, jobs.JobPlan]:
    """A task stored INIT (its job never given to RQ, as if its POST were still enqueueing it) and a dependent."""
    item = {"name": "n", "tag": "t", "instance": instance["id"], "script": "true"}
    (parent,), _ = store.create_tasks(expand.records(store, settings, 0, item, False), time.time(), jobs.JOB_PREFIX, 1)
    records = expand.records(store, settings, 0, {**item, "run_after": [parent["id"]]}, False)
    tasks, after = store.create_tasks(records, time.time(), jobs.JOB_PREFIX, 1)
    assert after == {tasks[0]["id"]: [parent["job"]]}
    (plan,) = expand.plans(tasks, after, 1)
    return parent["id"], plan


def test_a_dependency_whose_job_rq_no_longer_has_is_met_once_its_task_ended(
        api: Api, instance: dict[str, Any], store: Store, settings: Settings, redis: Redis) -> None:
    queue = jobs.make_queue(redis, settings.queue)
    parent, plan = make_dependent(store, settings, instance)
    store.finish(parent, TaskState.DONE, rc=0)  # it ran, and RQ deleted its job (RESULT_TTL 0)
    jobs.enqueue(queue, [plan], time.time(), store)
    assert Job.fetch(plan.id, connection=redis, serializer=jobs.SERIALIZER).get_status() == JobStatus.QUEUED


def test_a_dependency_whose_job_rq_does_not_have_yet_is_waited_for(
        api: Api, instance: dict[str, Any], store: Store, settings: Settings, redis: Redis) -> None:
    queue = jobs.make_queue(redis, settings.queue)
    parent, plan = make_dependent(store, settings, instance)
    jobs.enqueue(queue, [plan], time.time(), store)  # the parent's job is not queued yet
    job = Job.fetch(plan.id, connection=redis, serializer=jobs.SERIALIZER)
    assert job.get_status() == JobStatus.DEFERRED
    assert job.dependency_ids == [store.get_task(parent)["job"]]


def test_a_dependency_cancelled_as_its_dependent_came_is_met(
        api: Api, instance: dict[str, Any], store: Store, settings: Settings, redis: Redis) -> None:
    """run_after waits for tasks: a parent task that ends ABORT meets it, whatever RQ keeps of its cancelled job."""
    queue = jobs.make_queue(redis, settings.queue)
    parent, plan = make_dependent(store, settings, instance)
    job = store.get_task(parent)["job"]
    jobs.enqueue(queue, expand.plans(store.get_tasks([parent]), {}, 1), time.time(), store)
    assert store.abort_queued(parent, "cancelled by operator")  # as PATCH state=ABORT does, after the dependent's
    jobs.cancel(queue, job, parent)                             # own POST stored it (waiting for that job)
    assert Job.fetch(job, connection=redis, serializer=jobs.SERIALIZER).get_status() == JobStatus.CANCELED
    jobs.enqueue(queue, [plan], time.time(), store)
    assert Job.fetch(plan.id, connection=redis, serializer=jobs.SERIALIZER).get_status() == JobStatus.QUEUED
