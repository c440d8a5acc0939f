"""What a request costs Redis, counted at redis-py's socket: a POST array's round trips do not grow with its size, and
a POST ?wait takes a fixed few besides its blocking reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.connection import AbstractConnection

from tests.helpers import CRON_TOKEN, Api, WorkerProcesses, task_body


class RoundTrips:
    """Every command or pipeline redis-py sends (each is one round trip), while counting; `sent` names each one's first
    command."""

    def __init__(self) -> None:
        self.count = 0
        self.sent: list[str] = []

    def __call__(self, body: Any) -> int:
        trips = self.count
        body()
        return self.count - trips

    def seen(self, command: Any) -> None:
        self.count += 1
        packed = b"".join(command) if isinstance(command, list) else command
        self.sent.append(packed.split(b"\r\n", 3)[2].decode().upper())


# 11 before the create answered the tasks and where the wait starts, and the jobs and the audit went in one step
POST_WAIT_ROUND_TRIPS = 5


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    counter = RoundTrips()
    send = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        counter.seen(command)
        send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    yield counter


@pytest.fixture
def instances(api: Api, sshd: Any, ssh_user: str) -> list[dict[str, Any]]:
    return [api.created("/instances", {"ip": sshd.host, "port": sshd.port, "tag": f"rt{i % 2}", "user": ssh_user})
            for i in range(10)]


def post(api: Api, body: Any) -> None:
    assert api.post("/tasks", json=body).status_code == 201


@pytest.mark.parametrize("shape", ["instance", "target", "run_after", "scheduled_at"])
def test_a_post_array_costs_the_round_trips_of_one_task(api: Api, instances: list[dict[str, Any]],
                                                         round_trips: RoundTrips, shape: str) -> None:
    (first,) = api.created("/tasks", [task_body(instances[0])])

    def item(i: int) -> dict[str, Any]:
        if shape == "target":
            return {k: v for k, v in task_body(1).items() if k != "instance"} | {"target": {"tag": f"rt{i % 2}"}}
        if shape == "run_after":
            return task_body(instances[i % 10], run_after=[first["id"]])
        if shape == "scheduled_at":
            return task_body(instances[i % 10], scheduled_at=time.time() + 3600)
        return task_body(instances[i % 10])

    def body(n: int) -> list[dict[str, Any]]:
        return [item(i) for i in range(n)]

    post(api, body(1))  # connections opened, scripts loaded
    one = round_trips(lambda: post(api, body(1)))
    hundred = round_trips(lambda: post(api, body(100)))
    assert hundred <= one + 2, (one, hundred)


def test_get_one_task_with_a_token_costs_one_round_trip(api: Api, instances: list[dict[str, Any]],
                                                        round_trips: RoundTrips) -> None:
    """The record and both streams in one pipeline; a right token asks Redis nothing (wsexec.auth.verify_token)."""
    (task,) = api.created("/tasks", [task_body(instances[0], name="read-me")])
    token = {"auth": None, "headers": {"Authorization": f"Bearer {CRON_TOKEN}"}}
    answers: list[Any] = []
    assert api.get(f"/tasks/{task['id']}", **token).status_code == 200  # connections opened
    assert round_trips(lambda: answers.append(api.get(f"/tasks/{task['id']}", **token))) == 1
    assert answers[0].status_code == 200
    assert answers[0].json["name"] == "read-me" and answers[0].json["stdout"] == ""
    missing = api.get("/tasks/999999", **token)
    assert missing.status_code == 404 and missing.json["error"] == "task 999999 not found"


def test_a_post_wait_costs_a_fixed_few_round_trips_besides_its_blocking_reads(
        api: Api, instances: list[dict[str, Any]], workers: WorkerProcesses, round_trips: RoundTrips) -> None:
    """Authentication, the wait's slot, the instance and quota, the create, the enqueue and audit, the answer: each
    folded into as few round trips as correctness allows; the blocking reads (XREAD) wake on the task's events."""
    workers.start()
    body = task_body(instances[0])
    assert api.post("/tasks?wait=30", json=body).status_code == 201  # connections opened, scripts loaded
    before = len(round_trips.sent)
    trips = round_trips(lambda: post_wait(api, body))
    sent = round_trips.sent[before:]
    reads = sent.count("XREAD")
    assert 1 <= reads <= 3, sent  # woken by 'finished', maybe by 'started' before it
    assert trips - reads == POST_WAIT_ROUND_TRIPS, sent


def post_wait(api: Api, body: dict[str, Any]) -> None:
    response = api.post("/tasks?wait=30", json=body)
    assert response.status_code == 201 and response.json["state"] == "DONE", response.json
