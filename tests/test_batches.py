"""GET /wsexec/batches/{id}: the summary of a fan-out, from queued to finished."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, WorkerProcesses, wait_for
from wsexec.testing import free_port


@pytest.fixture
def web(api: Api, instance: dict[str, Any], ssh_user: str) -> list[int]:
    """Three instances tagged web: two reach the test sshd, one points at a closed port."""
    closed = {"ip": "127.0.0.1", "port": free_port(), "tag": "web", "user": ssh_user}
    ids = [api.patch(f"/instances/{instance['id']}", json={"tag": "web"}).json["id"]]
    same = {key: instance[key] for key in ("ip", "port", "user")}
    ids.append(api.post("/instances", json={**same, "tag": "web"}).json["id"])
    ids.append(api.post("/instances", json=closed).json["id"])
    assert api.post("/instances", json={"ip": "127.0.0.1", "tag": "db", "user": ssh_user}).status_code == 201
    return ids


def fan_out(api: Api, script: str) -> list[dict[str, Any]]:
    response = api.post("/tasks", json={"name": "fan", "tag": "t", "target": {"tag": "web"}, "script": script})
    assert response.status_code == 201, response.json
    return response.json


def test_queued_batch(api: Api, web: list[int]) -> None:
    tasks = fan_out(api, "exit 3")
    batch = api.as_user("viewer").get(f"/batches/{tasks[0]['batch']}")
    assert batch.status_code == 200, batch.json
    assert batch.json == {
        "id": tasks[0]["batch"],
        "total": 3,
        "finished": False,
        "states": {"INIT": 3, "CURRENT": 0, "DONE": 0, "ABORT": 0},
        "rc": {str(instance): None for instance in web},
        "tasks": [task["id"] for task in tasks],
    }


def test_finished_batch_has_each_instance_rc(api: Api, web: list[int], workers: WorkerProcesses) -> None:
    tasks = fan_out(api, "exit 3")
    workers.start(1)
    batch = wait_for(lambda: (b := api.get(f"/batches/{tasks[0]['batch']}").json)["finished"] and b, timeout=30)
    assert batch["states"] == {"INIT": 0, "CURRENT": 0, "DONE": 2, "ABORT": 1}
    assert batch["rc"] == {str(web[0]): 3, str(web[1]): 3, str(web[2]): None}  # the closed port: no rc
    assert batch["total"] == 3 and batch["tasks"] == [task["id"] for task in tasks]


def test_batches_are_separate(api: Api, web: list[int]) -> None:
    first, second = fan_out(api, "true"), fan_out(api, "true")
    assert first[0]["batch"] != second[0]["batch"]
    assert api.get(f"/batches/{second[0]['batch']}").json["tasks"] == [task["id"] for task in second]


@pytest.mark.parametrize("batch", ["0123456789ab", "no-such-batch"])
def test_unknown_batch_is_404(api: Api, web: list[int], batch: str) -> None:
    fan_out(api, "true")
    response = api.get(f"/batches/{batch}")
    assert response.status_code == 404 and response.json["error"] == f"batch {batch} not found"


def test_tasks_without_a_batch_are_no_batch(api: Api, instance: dict[str, Any]) -> None:
    task = api.post("/tasks", json={"name": "one", "tag": "t", "instance": instance["id"], "script": "true"}).json
    assert task["batch"] is None
    assert api.get("/batches/None").status_code == 404


def test_needs_credentials(api: Api) -> None:
    assert api.get("/batches/0123456789ab", auth=None).status_code == 401
