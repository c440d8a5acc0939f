"""Per-user quotas: ?wait requests open at once and tasks queued or running, refused with 429 beyond the settings."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
import requests

from tests.helpers import PASSWORDS, Api, wait_for
from wsexec.config import Settings
from wsexec.store import Store

WAITS, TASKS = 2, 5
TASK = {"name": "n", "tag": "t", "script": "true"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, user_waits_max=WAITS, user_tasks_max=TASKS)


@pytest.fixture
def unreachable(api: Api) -> dict[str, Any]:
    """An instance whose tasks never start: no worker runs in these tests."""
    return api.post("/instances", json={"ip": "127.0.0.9", "tag": "web", "user": "deploy"}).json


def post_tasks(api: Api, instance: dict[str, Any], count: int) -> Any:
    return api.post("/tasks", json=[{**TASK, "instance": instance["id"]}] * count)


def test_tasks_beyond_the_users_limit_are_429_and_nothing_is_created(api: Api, unreachable: dict[str, Any]) -> None:
    operator = api.as_user("operator")
    assert post_tasks(operator, unreachable, 3).status_code == 201
    refused = post_tasks(operator, unreachable, 3)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "10"
    assert refused.json == {
        "error": "operator has 3 tasks queued or running; 3 more would exceed WSEXEC_USER_TASKS_MAX (5): "
                 "nothing was created",
        "detail": {"limit": TASKS, "active": 3, "tasks": 3, "retry_after": 10},
    }
    assert api.get("/tasks").json["count"] == 3
    assert post_tasks(api, unreachable, 3).status_code == 201  # another user has a quota of their own
    assert post_tasks(operator, unreachable, 2).status_code == 201  # up to the limit exactly


def test_finished_tasks_make_room(api: Api, unreachable: dict[str, Any]) -> None:
    operator = api.as_user("operator")
    ids = [task["id"] for task in post_tasks(operator, unreachable, TASKS).json]
    assert operator.post("/tasks", json={**TASK, "instance": unreachable["id"]}).status_code == 429
    assert operator.patch(f"/tasks/{ids[0]}", json={"state": "ABORT"}).json["state"] == "ABORT"
    assert operator.post("/tasks", json={**TASK, "instance": unreachable["id"]}).status_code == 201


def test_a_request_bigger_than_the_limit_is_422_it_can_never_pass(api: Api, unreachable: dict[str, Any]) -> None:
    response = post_tasks(api.as_user("operator"), unreachable, TASKS + 1)
    assert response.status_code == 422
    assert response.json["detail"] == {"limit": TASKS, "tasks": TASKS + 1}
    assert "WSEXEC_USER_TASKS_MAX" in response.json["error"]


def test_a_fan_out_counts_one_task_per_instance(api: Api, unreachable: dict[str, Any]) -> None:
    for _ in range(3):
        api.post("/instances", json={"ip": "127.0.0.9", "tag": "web", "user": "deploy"})
    operator = api.as_user("operator")
    assert operator.post("/tasks", json={**TASK, "target": {"tag": "web"}}).status_code == 201  # 4 instances
    response = operator.post("/tasks", json={**TASK, "target": {"tag": "web"}})
    assert response.status_code == 429
    assert response.json["detail"]["active"] == 4 and response.json["detail"]["tasks"] == 4


def test_a_users_waits_beyond_the_limit_are_429_and_create_no_task(gunicorn_url: str, api: Api,
                                                                    unreachable: dict[str, Any]) -> None:
    operator, admin = ("operator", PASSWORDS["operator"]), ("admin", PASSWORDS["admin"])
    url = f"{gunicorn_url}/wsexec/commands/uptime"
    statuses: list[int] = []

    def wait(seconds: int) -> None:
        statuses.append(requests.post(f"{url}?wait={seconds}", auth=operator, json={"instance": unreachable["id"]},
                                      timeout=30).status_code)

    waiters = [threading.Thread(target=wait, args=(4,)) for _ in range(WAITS)]
    for thread in waiters:
        thread.start()
    wait_for(lambda: api.get("/tasks").json["count"] == WAITS)
    refused = requests.post(f"{url}?wait=4", auth=operator, json={"instance": unreachable["id"]}, timeout=10)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 4 + 30
    assert refused.json()["detail"]["limit"] == WAITS and "WSEXEC_USER_WAITS_MAX" in refused.json()["error"]
    assert api.get("/tasks").json["count"] == WAITS  # the refused wait created nothing
    without_wait = requests.post(url, auth=operator, json={"instance": unreachable["id"]}, timeout=10)
    assert without_wait.status_code == 202
    other_user = requests.post(f"{url}?wait=1", auth=admin, json={"instance": unreachable["id"]}, timeout=10)
    assert other_user.status_code == 504
    for thread in waiters:
        thread.join()
    assert statuses == [504] * WAITS
    again = requests.post(f"{url}?wait=1", auth=operator, json={"instance": unreachable["id"]}, timeout=10)
    assert again.status_code == 504  # the finished waits gave their slots back


def test_a_wait_lease_of_a_crashed_process_expires(store: Store) -> None:
    """A web process killed mid-wait never releases its lease: it ends by itself, so the slot comes back."""
    lease, _ = store.limits.acquire_wait("operator", 0.5, 1)
    assert lease is not None
    refused, retry_after = store.limits.acquire_wait("operator", 0.5, 1)
    assert refused is None and retry_after == 1
    wait_for(lambda: store.limits.acquire_wait("operator", 0.5, 1)[0], timeout=5)


def test_post_tasks_waits_hold_their_slots_until_they_answer(gunicorn_url: str, api: Api,
                                                              unreachable: dict[str, Any]) -> None:
    """POST /tasks?wait takes its slot with the reads before the create and gives it back with its last read."""
    operator, url = ("operator", PASSWORDS["operator"]), f"{gunicorn_url}/wsexec/tasks"
    body = {**TASK, "instance": unreachable["id"]}
    statuses: list[int] = []

    def wait(seconds: int, json: Any = body) -> int:
        return requests.post(f"{url}?wait={seconds}", auth=operator, json=json, timeout=60).status_code

    waiters = [threading.Thread(target=lambda: statuses.append(wait(8))) for _ in range(WAITS)]
    for thread in waiters:
        thread.start()
    wait_for(lambda: api.get("/tasks").json["count"] == WAITS)
    assert wait(8) == 429
    assert wait(8, {"name": "no script"}) == 429  # the slot is asked for before the body is judged, as it always was
    assert api.get("/tasks").json["count"] == WAITS
    for thread in waiters:
        thread.join()
    assert statuses == [201] * WAITS
    for _ in range(WAITS + 1):  # a refused creation gives its slot back too
        assert wait(8, {**body, "instance": 9999}) == 422
    assert wait(1) == 201
