"""Creation races: a task is stored and queued, or not stored and the answer says why; none is left INIT.

Threads hammer the real API (gunicorn) while real workers run the tasks over real SSH.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.helpers import PASSWORDS, task_body, wait_for

AUTH = ("admin", PASSWORDS["admin"])


class Client:
    """requests against the served API, one session per thread; every answer is recorded."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/wsexec"
        self.local = threading.local()
        self.answers: list[requests.Response] = []

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.auth = AUTH
        response = self.local.session.request(method, f"{self.url}{path}", timeout=60, **kwargs)
        self.answers.append(response)
        return response

    def all_tasks(self) -> dict[int, dict[str, Any]]:
        tasks, page = {}, 1
        while page:
            body = self.call("GET", "/tasks", params={"page": page, "page_size": 100}).json()
            tasks |= {task["id"]: task for task in body["results"]}
            page = page + 1 if body["next"] else 0
        return tasks

    def all_finished(self) -> dict[int, dict[str, Any]]:
        """Every stored task, once none is INIT or CURRENT any more."""
        def finished() -> dict[int, dict[str, Any]] | None:
            tasks = self.all_tasks()
            return tasks if all(t["state"] in ("DONE", "ABORT") for t in tasks.values()) else None

        return wait_for(finished, timeout=120, interval=0.5)

    def assert_no_5xx(self) -> None:
        for response in self.answers:
            assert response.status_code < 500, (response.status_code, response.text)
            if response.status_code >= 400:
                assert set(response.json()) == {"error", "detail"}, response.text


@pytest.fixture
def client(gunicorn_url: str) -> Client:
    return Client(gunicorn_url)


def run_all(calls: list[Callable[[], Any]], threads: int = 8) -> list[Any]:
    """Run the calls at the same time (as far as threads allow), in the order given."""
    start = threading.Barrier(min(threads, len(calls)))

    def run(call: Callable[[], Any]) -> Any:
        try:
            start.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass  # the last few calls run without partners
        return call()

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, calls))


def test_run_after_a_task_being_deleted_is_stored_only_if_answered_201(
    client: Client, instance: dict[str, Any], workers: Any
) -> None:
    workers.start(2)
    parents = client.call("POST", "/tasks", json=[task_body(instance)] * 40).json()
    client.all_finished()
    calls: list[Callable[[], Any]] = []
    for parent in parents:
        post = lambda p=parent: client.call("POST", "/tasks", json=task_body(instance, run_after=[p["id"]]))  # noqa: E731
        delete = lambda p=parent: client.call("DELETE", f"/tasks/{p['id']}")  # noqa: E731
        calls += [post, delete, post]
    answers = run_all(calls)

    created = {a.json()["id"] for a in answers if a.request.method == "POST" and a.status_code == 201}
    refused = [a for a in answers if a.request.method == "POST" and a.status_code != 201]
    deleted = {int(a.request.url.rsplit("/", 1)[1]) for a in answers if a.request.method == "DELETE"
               and a.status_code == 204}
    assert all(a.status_code == 422 and "does not exist" in a.json()["error"] for a in refused)
    assert created and refused and deleted  # both sides of the race happened
    stored = client.all_finished()
    assert set(stored) == created | ({p["id"] for p in parents} - deleted)  # nothing stored for a refusal
    client.assert_no_5xx()


def test_run_after_a_task_of_an_array_still_being_enqueued_waits_for_it(
    client: Client, instance: dict[str, Any], workers: Any
) -> None:
    workers.start(2)
    last = client.call("POST", "/tasks", json=task_body(instance)).json()["id"]
    size, slow = 1000, 3
    targets = list(range(last + size - slow + 1, last + size + 1))  # the array's last ids, known before it is stored
    array_body = [task_body(instance)] * (size - slow) + [task_body(instance, "sleep 2")] * slow
    dependents: list[requests.Response] = []

    def depend_on(target: int) -> None:
        while True:  # 422 until the array is stored, then 201 at once: often while its jobs are being enqueued
            response = client.call("POST", "/tasks", json=task_body(instance, "echo after", run_after=[target]))
            if response.status_code != 422:
                dependents.append(response)
                return

    calls = [lambda: client.call("POST", "/tasks", json=array_body)]
    calls += [lambda t=t: depend_on(t) for t in targets for _ in range(2)]
    (array, *_) = run_all(calls, threads=len(calls))

    assert array.status_code == 201 and [t["id"] for t in array.json()] == list(range(last + 1, last + size + 1))
    assert [d.status_code for d in dependents] == [201] * len(dependents)
    stored = client.all_finished()
    for dependent in (d.json() for d in dependents):
        (parent,) = dependent["run_after"]
        assert stored[parent]["state"] == "DONE"
        assert stored[dependent["id"]]["state"] == "DONE", stored[dependent["id"]]  # it waited: ran after its parent
        assert stored[dependent["id"]]["start"] >= stored[parent]["end"]
    client.assert_no_5xx()
