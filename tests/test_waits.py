"""?wait=SECONDS on POST /tasks, GET /tasks/{id} and GET /batches/{id}: answers once the tasks have finished."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from redis import Redis

from tests.helpers import PASSWORDS, Api, task_body, wait_for
from wsexec.store import Store, TaskState


def test_post_one_task_with_wait_answers_it_finished_with_output(api: Api, instance: dict, workers: Any) -> None:
    workers.start(1)
    response = api.post("/tasks?wait=30", json=task_body(instance, "echo out; echo err >&2; exit 4"))
    assert response.status_code == 201, response.json
    task = response.json
    assert (task["state"], task["rc"], task["stdout"], task["stderr"]) == ("DONE", 4, "out\n", "err\n")


def test_post_an_array_and_a_fan_out_with_wait(api: Api, instance: dict, workers: Any, make_sshd: Any,
                                               ssh_user: str) -> None:
    workers.start(1)
    other = make_sshd("127.0.1.8")
    api.created("/instances", {"ip": other.host, "port": other.port, "tag": "test", "user": ssh_user,
                               "host_key": other.host_key_line})
    many = api.post("/tasks?wait=30", json=[task_body(instance, f"echo {i}") for i in range(3)])
    assert many.status_code == 201, many.json
    assert [(t["state"], t["stdout"]) for t in many.json] == [("DONE", f"{i}\n") for i in range(3)]
    fan_out = api.post("/tasks?wait=30", json={"name": "f", "tag": "f", "target": {"tag": "test"}, "script": "echo x"})
    assert fan_out.status_code == 201, fan_out.json
    assert [(t["state"], t["stdout"]) for t in fan_out.json] == [("DONE", "x\n")] * 2
    batch = api.get(f"/batches/{fan_out.json[0]['batch']}?wait=5").json
    assert batch["finished"] and batch["states"]["DONE"] == 2


def test_wait_that_runs_out_answers_the_tasks_as_they_are(api: Api, instance: dict, workers: Any) -> None:
    workers.start(1)
    response = api.post("/tasks?wait=1", json=task_body(instance, "echo started; sleep 30"))
    assert response.status_code == 201 and response.json["state"] in ("INIT", "CURRENT")
    task_id = response.json["id"]
    assert api.get(f"/tasks/{task_id}?wait=1").json["state"] in ("INIT", "CURRENT")
    cancelled = api.patch(f"/tasks/{task_id}", json={"state": "ABORT"})
    assert cancelled.status_code == 200
    done = api.get(f"/tasks/{task_id}?wait=30").json
    assert done["state"] == "ABORT" and done["error"] == "cancelled by admin"


def test_a_wait_longer_than_the_redis_socket_timeout_runs_its_course(api: Api, instance: dict) -> None:
    """One blocking read longer than redis-py's 5 s socket timeout would be retried as a lost reply, again and again."""
    task = api.create_task(instance)  # no worker: it stays INIT
    response = api.get(f"/tasks/{task['id']}?wait=6")
    assert response.status_code == 200 and response.json["state"] == "INIT"


def test_get_task_and_batch_wait_for_a_finish_written_meanwhile(api: Api, store: Store, instance: dict) -> None:
    """A worker's finish while the request blocks wakes it (here the test plays the worker, from a thread)."""
    task = api.create_task(instance)
    fan_out = api.created("/tasks", {"name": "f", "tag": "f", "target": {"tag": "test"}, "script": "true"})
    assert store.claim(task["id"], "w", 60) and store.claim(fan_out[0]["id"], "w", 60)
    finisher = threading.Timer(0.3, lambda: [store.finish(t, TaskState.DONE, rc=0)
                                             for t in (task["id"], fan_out[0]["id"])])
    finisher.start()
    try:
        assert api.get(f"/tasks/{task['id']}?wait=30").json["state"] == "DONE"
        batch = api.get(f"/batches/{fan_out[0]['batch']}?wait=30").json
    finally:
        finisher.join()
    assert batch["finished"] and batch["rc"] == {str(instance["id"]): 0}


def test_waits_miss_no_end_however_close_to_the_check(store: Store, api: Api, instance: dict) -> None:
    """Tasks finishing right as the waits begin: every wait answers them finished, none runs out its time."""
    tasks = api.created("/tasks", [task_body(instance)] * 20)
    for task in tasks:
        assert store.claim(task["id"], "w", 60)
    answers: dict[int, str] = {}

    def wait(task_id: int) -> None:
        (found,) = store.until_finished([task_id], 30)
        answers[task_id] = found["state"]

    waiters = [threading.Thread(target=wait, args=(task["id"],)) for task in tasks]
    for waiter, task in zip(waiters, tasks, strict=True):
        waiter.start()
        store.finish(task["id"], TaskState.DONE, rc=0)
    for waiter in waiters:
        waiter.join(60)
    assert answers == {task["id"]: "DONE" for task in tasks}


def test_more_waits_at_once_than_redis_pys_default_pool(app: Any, api: Api, instance: dict,
                                                          redis_server: Any) -> None:
    """150 requests blocked at once, each holding a Redis connection: none fails "Too many connections" (100)."""
    store = app.extensions["wsexec_store"]
    tasks = api.created("/tasks", [task_body(instance)] * 150)
    answers: dict[int, str] = {}

    def wait(task_id: int) -> None:
        answers[task_id] = store.until_finished([task_id], 60)[0]["state"]

    waiters = [threading.Thread(target=wait, args=(task["id"],)) for task in tasks]
    for waiter in waiters:
        waiter.start()
    admin = Redis.from_url(redis_server.url)
    try:
        wait_for(lambda: admin.info("clients")["blocked_clients"] >= len(tasks) or not any(
            waiter.is_alive() for waiter in waiters), timeout=60)
    finally:
        for task in tasks:
            assert store.claim(task["id"], "w", 60)
            store.finish(task["id"], TaskState.DONE, rc=0)
        for waiter in waiters:
            waiter.join(60)
    assert answers == {task["id"]: "DONE" for task in tasks}


@pytest.mark.parametrize("path", ["/tasks?wait={}", "/tasks/1?wait={}", "/batches/b?wait={}"])
@pytest.mark.parametrize("wait", ["301", "0", "-1", "1.5", "soon"])
def test_bad_or_too_long_wait_is_422(api: Api, instance: dict, path: str, wait: str) -> None:
    api.create_task(instance)
    method = api.post if path == "/tasks?wait={}" else api.get
    response = method(path.format(wait), json=task_body(instance))
    assert response.status_code == 422, response.json
    assert set(response.json) == {"error", "detail"} and "wait" in str(response.json["detail"])
    if wait == "301":
        assert "WSEXEC_WAIT_MAX" in str(response.json["detail"])
    assert api.get("/tasks").json["count"] == 1, "nothing created"


def test_idempotent_post_with_wait_creates_once(api: Api, instance: dict, workers: Any) -> None:
    workers.start(1)
    headers = {"Idempotency-Key": "wait-once"}
    first = api.post("/tasks?wait=30", json=task_body(instance, "echo once"), headers=headers)
    again = api.post("/tasks?wait=30", json=task_body(instance, "echo once"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json == again.json and first.json["state"] == "DONE" and first.json["stdout"] == "once\n"
    assert api.get("/tasks").json["count"] == 1


def test_post_with_wait_through_gunicorn(gunicorn_url: str, instance: dict, workers: Any) -> None:
    workers.start(1)
    auth = ("operator", PASSWORDS["operator"])
    for number in range(3):  # sequential tasks, each answered by its own POST ?wait
        answer = requests.post(f"{gunicorn_url}/wsexec/tasks?wait=30", json=task_body(instance, f"echo {number}"),
                               auth=auth, timeout=60)
        assert answer.status_code == 201, answer.text
        assert (answer.json()["state"], answer.json()["stdout"]) == ("DONE", f"{number}\n")
    too_long = requests.get(f"{gunicorn_url}/wsexec/tasks/1?wait=301", auth=auth, timeout=30)
    assert too_long.status_code == 422 and too_long.json()["error"]
