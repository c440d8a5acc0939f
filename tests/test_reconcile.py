"""Tasks are stored and queued or neither; the workers' reconciler ends ABORT any INIT task RQ holds nowhere."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import ConnectionError
from rq import Queue
from rq.job import Job

from tests.helpers import Api, task_body, wait_finished
from workers.reconcile import Reconciler
from workers.rq_adapter import make_queue
from wsexec.config import Settings
from wsexec.store import Store

GRACE = 1.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, reconcile_grace=GRACE)


@pytest.fixture
def queue(redis: Redis, settings: Settings) -> Queue:
    return make_queue(redis, settings.queue)


def lose_job(queue: Queue, task: dict[str, Any]) -> None:
    """What a damaged RQ does to a task: its job is gone (and with it the list of jobs waiting for it)."""
    Job.fetch(task["job"], connection=queue.connection, serializer=queue.serializer).delete()


def test_a_task_whose_job_vanished_ends_abort_and_its_dependent_runs(api: Api, instance: dict[str, Any],
                                                                       queue: Queue, workers: Any) -> None:
    parent = api.create_task(instance, "true", scheduled_at=time.time() + 3600)
    dependent = api.create_task(instance, "echo never", run_after=[parent["id"]])
    assert dependent["job"] in queue.deferred_job_registry.get_job_ids()
    lose_job(queue, parent)
    workers.start(1)
    assert wait_finished(api, parent["id"])["error"] == f"never queued: its job {parent['job']} is missing in RQ"
    # its dependent's job waited on a job RQ no longer has: the reconciler released it, the worker ran it
    assert wait_finished(api, dependent["id"])["error"] == f"dependency {parent['id']} ended ABORT"


def test_the_grace_period_leaves_a_creation_in_progress_alone(api: Api, instance: dict[str, Any], store: Store,
                                                               queue: Queue) -> None:
    task = api.create_task(instance, "true", scheduled_at=time.time() + 3600)
    held = api.create_task(instance, "true", scheduled_at=time.time() + 3600)
    lose_job(queue, task)
    reconciler = Reconciler(store, queue, GRACE)
    assert reconciler.run(now=task["created_at"] + GRACE / 2).aborted == []
    assert store.get_task(task["id"])["state"] == "INIT"
    assert reconciler.run(now=held["created_at"] + GRACE * 2).aborted == [task["id"]]  # its scheduled neighbour stays
    assert [store.get_task(t["id"])["state"] for t in (task, held)] == ["ABORT", "INIT"]


def test_a_task_rq_refused_is_not_stored(api: Api, instance: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(Queue, "enqueue_many", refuse)
    response = api.post("/tasks", json=[task_body(instance)] * 3)
    assert response.status_code == 503 and set(response.json) == {"error", "detail"}
    assert api.get("/tasks").json["count"] == 0


def test_a_job_stranded_by_a_worker_that_died_popping_it_is_queued_again_and_runs(
        api: Api, instance: dict[str, Any], store: Store, queue: Queue, workers: Any) -> None:
    task = api.create_task(instance, "echo ran")
    # what a worker killed right after its pop leaves: the job in RQ's intermediate list, never marked started
    intermediate = f"{queue.key}:intermediate"
    assert queue.connection.lmove(queue.key, intermediate) == task["job"].encode()
    reconciler = Reconciler(store, queue, GRACE)
    later = task["created_at"] + GRACE * 2
    assert reconciler.run(now=later).requeued == []  # first seen there: it may still be a live worker's pop
    assert queue.get_job_ids() == []
    time.sleep(GRACE / 2)
    assert reconciler.run(now=later).requeued == [task["id"]]
    assert reconciler.run(now=later).requeued == []  # once only
    assert queue.get_job_ids() == [task["job"]] and queue.connection.llen(intermediate) == 0
    workers.start(1)
    finished = wait_finished(api, task["id"])
    assert (finished["state"], finished["stdout"]) == ("DONE", "ran\n")
