"""Webhooks (notify) against real Redis, sshd and worker processes, delivered to a loopback receiver: retries with
backoff until a 2xx, signatures that verify, `on` filtering, allow-list refusals, a slow receiver that delays no task,
a fan-out's webhook once for the batch, a schedule's, and the admins' view of the deliveries."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from redis import Redis

from tests.helpers import Api, WorkerProcesses, task_body, wait_finished, wait_for
from workers.schedules import ScheduleLoop
from wsexec import create_app, jobs, notify
from wsexec.config import Settings
from wsexec.store import Store
from wsexec.testing import free_port

SECRET = "test-webhook-secret"
DELIVERY_TIMEOUT = 60.0  # generous: a loaded machine makes everything slower


class Receiver:
    """An HTTP server on 127.0.0.1 that answers 500 to the first `fail` POSTs, sleeps `delay` seconds on each, and
    keeps what it was sent."""

    def __init__(self) -> None:
        self.fail = 0
        self.delay = 0.0
        self.received: list[dict[str, Any]] = []
        self.sleeping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                          "payload": json.loads(body), "time": time.time()})
                if receiver.delay:
                    receiver.sleeping.set()
                    time.sleep(receiver.delay)
                    receiver.sleeping.clear()
                if "redirect" in self.path:
                    self.send_response(307)
                    self.send_header("Location", f"{receiver.url}/hooks/elsewhere")
                else:
                    self.send_response(500 if len(receiver.received) <= receiver.fail else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        return [r["payload"] for r in self.received if event is None or r["payload"]["event"] == event]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    """Webhooks allowed to the receiver only, signed, retried quickly."""
    return dataclasses.replace(settings, webhook_allow=f"{receiver.url}/hooks", webhook_secret=SECRET,
                               webhook_backoff=0.3, webhook_attempts=4, webhook_timeout=10.0)


def deliveries(api: Api) -> list[dict[str, Any]]:
    response = api.get("/webhooks/deliveries?page_size=100")
    assert response.status_code == 200, response.json
    return response.json["results"]


def wait_delivery(api: Api, delivery_id: str, state: str = "delivered") -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((d for d in deliveries(api) if d["id"] == delivery_id and d["state"] == state), None)

    return wait_for(found, DELIVERY_TIMEOUT, 0.2)


def sentinel(api: Api, instance: dict[str, Any], receiver: Receiver) -> None:
    """A last task with a webhook, once every other task has ended: with one worker, ends are read in order, so once
    its delivery has come every earlier end has been looked at."""
    task = api.create_task(instance, "true", notify={"url": f"{receiver.url}/hooks/last", "on": ["DONE"]})
    wait_finished(api, task["id"], DELIVERY_TIMEOUT)
    wait_delivery(api, f"t{task['id']}-n")


def test_a_failing_receiver_gets_retries_until_it_accepts_each_signed(api: Api, instance: dict[str, Any],
                                                                       workers: WorkerProcesses,
                                                                       receiver: Receiver) -> None:
    receiver.fail = 2
    task = api.create_task(instance, "echo hi", notify={"url": f"{receiver.url}/hooks/ci?x=1", "on": ["DONE"]})
    assert task["notify"] == {"url": f"{receiver.url}/hooks/ci?x=1", "on": ["DONE"]}
    workers.start(1)
    wait_finished(api, task["id"])
    delivery = wait_delivery(api, f"t{task['id']}-n")
    assert (delivery["attempts"], delivery["statuses"], delivery["last_error"]) == (3, [500, 500, 204], None)
    assert delivery["task"] == task["id"] and delivery["outcome"] == "DONE" and delivery["delivered_at"]
    assert len(receiver.received) == 3
    for request in receiver.received:
        headers = request["headers"]
        assert request["path"] == "/hooks/ci?x=1"
        assert headers[notify.DELIVERY_HEADER] == delivery["id"] and headers[notify.EVENT_HEADER] == "task.finished"
        assert notify.verify(SECRET, headers[notify.TIMESTAMP_HEADER], request["body"],
                             headers[notify.SIGNATURE_HEADER])
        assert not notify.verify("another secret", headers[notify.TIMESTAMP_HEADER], request["body"],
                                 headers[notify.SIGNATURE_HEADER])
    first, second, third = (r["time"] for r in receiver.received)
    assert second - first >= 0.3 and third - second >= 0.6  # backoff doubles
    payload = receiver.received[-1]["payload"]
    assert payload["outcome"] == "DONE" and payload["task"]["id"] == task["id"] and payload["task"]["rc"] == 0
    assert payload["delivery"] == delivery["id"] and delivery["payload"] == payload


def test_a_receiver_that_never_accepts_is_given_up_after_the_attempts(api: Api, instance: dict[str, Any],
                                                                      workers: WorkerProcesses,
                                                                      receiver: Receiver) -> None:
    receiver.fail = 100
    task = api.create_task(instance, notify={"url": f"{receiver.url}/hooks"})
    workers.start(1)
    delivery = wait_delivery(api, f"t{task['id']}-n", "failed")
    assert delivery["attempts"] == 4 and delivery["statuses"] == [500] * 4
    assert delivery["last_error"] == "HTTP 500 Internal Server Error" and len(receiver.received) == 4


def test_redirects_are_not_followed(api: Api, instance: dict[str, Any], workers: WorkerProcesses,
                                     receiver: Receiver) -> None:
    task = api.create_task(instance, notify={"url": f"{receiver.url}/hooks/redirect"})
    workers.start(1)
    delivery = wait_delivery(api, f"t{task['id']}-n", "failed")
    assert delivery["statuses"] == [307] * 4 and "307" in delivery["last_error"]
    assert {r["path"] for r in receiver.received} == {"/hooks/redirect"}


def test_a_pending_delivery_survives_a_worker_restart_and_is_sent_once(api: Api, instance: dict[str, Any],
                                                                       settings: Settings, receiver: Receiver) -> None:
    receiver.fail = 1
    slow_retry = dataclasses.replace(settings, webhook_backoff=15.0)
    task = api.create_task(instance, notify={"url": f"{receiver.url}/hooks"})
    first = WorkerProcesses(slow_retry)
    try:
        first.start(1)
        wait_for(lambda: any(d["attempts"] == 1 for d in deliveries(api)), DELIVERY_TIMEOUT)
    finally:
        first.stop()
    assert [d["state"] for d in deliveries(api)] == ["pending"]  # its retry is due in 15 s, when no worker is left
    second = WorkerProcesses(slow_retry)
    try:
        second.start(1)
        delivery = wait_delivery(api, f"t{task['id']}-n")
    finally:
        second.stop()
    assert delivery["attempts"] == 2 and delivery["statuses"] == [500, 204] and len(receiver.received) == 2


def test_on_chooses_the_outcomes(api: Api, instance: dict[str, Any], workers: WorkerProcesses,
                                 receiver: Receiver) -> None:
    nowhere = api.created("/instances", {"ip": "127.0.0.1", "port": free_port(), "tag": "gone",
                                         "user": instance["user"]})
    made = {}
    for outcome, where, script in (("DONE", instance, "true"), ("FAILED", instance, "exit 3"),
                                   ("ABORT", nowhere, "true")):
        others = [o for o in notify.OUTCOMES if o != outcome]
        made[outcome] = api.create_task(where, script, notify={"url": f"{receiver.url}/hooks/{outcome}",
                                                               "on": [outcome]})
        made[f"not {outcome}"] = api.create_task(where, script, notify={"url": f"{receiver.url}/hooks/other",
                                                                        "on": others})
    workers.start(1)
    for task in made.values():
        wait_finished(api, task["id"], DELIVERY_TIMEOUT)
    sentinel(api, instance, receiver)
    got = {r["path"]: r["payload"] for r in receiver.received if r["path"] != "/hooks/last"}
    assert set(got) == {"/hooks/DONE", "/hooks/FAILED", "/hooks/ABORT"}
    for outcome in notify.OUTCOMES:
        assert got[f"/hooks/{outcome}"]["outcome"] == outcome
        assert got[f"/hooks/{outcome}"]["task"]["id"] == made[outcome]["id"]
    assert got["/hooks/FAILED"]["task"]["rc"] == 3 and got["/hooks/ABORT"]["task"]["state"] == "ABORT"


@pytest.mark.parametrize("url, why", [
    ("http://10.0.0.1/hooks", "not under an allowed prefix"),
    ("{base}/hooksmith", "not under an allowed prefix"),
    ("{evil}/hooks", "not under an allowed prefix"),
    ("http://user:pw@127.0.0.1/hooks", "credentials"),
    ("file:///etc/passwd", "not an http"),
])
def test_urls_off_the_allow_list_are_422(api: Api, instance: dict[str, Any], receiver: Receiver, url: str,
                                         why: str) -> None:
    url = url.format(base=receiver.url, evil=receiver.url.replace("127.0.0.1", "127.0.0.1.evil.example"))
    for body in (task_body(instance, notify={"url": url}),
                 {**task_body(instance, notify={"url": url}), "instance": None, "target": {"tag": "test"}}):
        body = {k: v for k, v in body.items() if v is not None}
        response = api.post("/tasks", json=body)
        assert response.status_code == 422, response.json
        assert why in response.json["error"] and "notify" in response.json["detail"]
    response = api.post("/schedules", json={"name": "s", "interval": 60,
                                            "template": {"instance": instance["id"], "script": "true",
                                                         "notify": {"url": url}}})
    assert response.status_code == 422 and why in response.json["error"]
    assert api.get("/tasks").json["count"] == 0


@pytest.mark.parametrize("notify_body", [{"url": "x", "on": ["SOMETIMES"]}, {"on": ["DONE"]}, {"url": "x", "on": []},
                                         "http://x/", {"url": 5}])
def test_malformed_notify_is_422(api: Api, instance: dict[str, Any], notify_body: Any) -> None:
    response = api.post("/tasks", json=task_body(instance, notify=notify_body))
    assert response.status_code == 422 and "notify" in response.json["detail"]


def test_without_an_allow_list_or_a_secret_webhooks_are_refused(settings: Settings, redis: Redis,
                                                                receiver: Receiver) -> None:
    for changed, why in ((dataclasses.replace(settings, webhook_allow=""), "WSEXEC_WEBHOOK_ALLOW"),
                         (dataclasses.replace(settings, webhook_secret=""), "WSEXEC_WEBHOOK_SECRET")):
        api = Api(create_app(changed).test_client())
        instance = api.created("/instances", {"ip": "127.0.0.1", "port": 22, "tag": "t", "user": "nobody"})
        response = api.post("/tasks", json=task_body(instance, notify={"url": f"{receiver.url}/hooks"}))
        assert response.status_code == 422 and why in response.json["error"]


def test_a_slow_receiver_delays_no_task(api: Api, instance: dict[str, Any], workers: WorkerProcesses,
                                        receiver: Receiver) -> None:
    receiver.delay = 8.0
    first = api.create_task(instance, notify={"url": f"{receiver.url}/hooks"})
    workers.start(1)
    assert wait_finished(api, first["id"])["state"] == "DONE"
    wait_for(receiver.sleeping.is_set, DELIVERY_TIMEOUT)
    second = api.create_task(instance, "echo later", notify={"url": f"{receiver.url}/hooks"})
    assert wait_finished(api, second["id"])["stdout"] == "later\n"
    assert receiver.sleeping.is_set() and len(receiver.received) == 1  # still busy with the first
    receiver.delay = 0
    wait_delivery(api, f"t{second['id']}-n")


def test_a_fan_out_notifies_once_when_the_whole_batch_has_ended(api: Api, instance: dict[str, Any],
                                                                workers: WorkerProcesses,
                                                                receiver: Receiver) -> None:
    api.created("/instances", {"ip": instance["ip"], "port": instance["port"], "tag": "test",
                               "user": instance["user"]})
    body = {**task_body(instance, "sleep 1; exit 1", notify={"url": f"{receiver.url}/hooks/batch"}),
            "target": {"tag": "test"}}
    del body["instance"]
    tasks = api.created("/tasks", body)
    assert len(tasks) == 2
    workers.start(1)
    for task in tasks:
        wait_finished(api, task["id"])
    sentinel(api, instance, receiver)
    (payload,) = receiver.bodies("batch.finished")
    assert receiver.bodies("task.finished") == [receiver.received[-1]["payload"]]  # the sentinel's only
    assert payload["outcome"] == "FAILED" and payload["batch"]["id"] == tasks[0]["batch"]
    assert payload["batch"]["total"] == 2 and payload["batch"]["failed"] == 2
    assert sorted(t["id"] for t in payload["batch"]["tasks"]) == sorted(t["id"] for t in tasks)
    delivery = wait_delivery(api, f"b{tasks[0]['batch']}-n")
    assert delivery["batch"] == tasks[0]["batch"] and delivery["task"] is None


def test_a_schedule_s_template_notifies(api: Api, instance: dict[str, Any], store: Store, redis: Redis,
                                        settings: Settings, workers: WorkerProcesses, receiver: Receiver) -> None:
    schedule = api.created("/schedules", {"name": "nightly", "interval": 60,
                                          "template": {"instance": instance["id"], "script": "true",
                                                       "notify": {"url": f"{receiver.url}/hooks", "on": ["DONE"]}}})
    assert schedule["template"]["notify"]["on"] == ["DONE"]
    loop = ScheduleLoop(store, jobs.make_queue(redis, settings.queue), settings, "test-loop")
    fired = loop.fire(schedule["id"], schedule["next_run"] + 0.1)
    assert fired is not None
    (task,) = fired.tasks
    workers.start(1)
    delivery = wait_delivery(api, f"t{task['id']}-n")
    assert delivery["schedule"] == schedule["id"] and delivery["payload"]["task"]["schedule"] == schedule["id"]


def test_global_webhooks_from_the_settings(settings: Settings, redis: Redis, instance: dict[str, Any],
                                           receiver: Receiver) -> None:
    hooks = json.dumps([{"url": f"{receiver.url}/hooks/all", "on": ["FAILED"]},
                        {"url": "http://10.1.2.3/hooks", "on": ["FAILED"]}])  # not allowed: recorded, never sent
    changed = dataclasses.replace(settings, webhooks=hooks)
    api = Api(create_app(changed).test_client())
    processes = WorkerProcesses(changed)
    try:
        ok, failed = api.create_task(instance, "true"), api.create_task(instance, "exit 2")
        processes.start(1)
        delivered = wait_delivery(api, f"t{failed['id']}-g0")
        refused = wait_delivery(api, f"t{failed['id']}-g1", "failed")
        wait_finished(api, ok["id"])
    finally:
        processes.stop()
    assert delivered["payload"]["task"]["rc"] == 2 and [r["path"] for r in receiver.received] == ["/hooks/all"]
    assert refused["attempts"] == 1 and refused["statuses"] == [0] and "not sent" in refused["last_error"]
    assert not any(d["task"] == ok["id"] for d in deliveries(api))


@pytest.mark.parametrize("user, status", [("viewer", 403), ("operator", 403), ("admin", 200)])
def test_deliveries_are_for_admins(api: Api, user: str, status: int) -> None:
    assert api.as_user(user).get("/webhooks/deliveries").status_code == status


def test_deliveries_page_newest_first_and_are_bounded(api: Api, instance: dict[str, Any], settings: Settings,
                                                      store: Store) -> None:
    for n in range(5):
        store.webhooks.add(f"t{n}-n", {"id": f"t{n}-n", "state": "pending", "body": "{}"}, 1000 + n, keep=3)
    listing = api.get("/webhooks/deliveries?page_size=2").json
    assert listing["count"] == 3 and [d["id"] for d in listing["results"]] == ["t4-n", "t3-n"]
    assert [d["id"] for d in api.get("/webhooks/deliveries?page=2&page_size=2").json["results"]] == ["t2-n"]
    assert store.webhooks.get("t0-n") is None and store.webhooks.claim(2000, 1000, 10) == ["t2-n", "t3-n", "t4-n"]


def test_the_openapi_document_describes_notify_and_the_deliveries(api: Api) -> None:
    document = api.get("/openapi.json").json
    schemas = document["components"]["schemas"]
    url = schemas["Notify"]["properties"]["url"]["description"]
    assert notify.SIGNATURE_HEADER in url and notify.TIMESTAMP_HEADER in url and "WSEXEC_WEBHOOK_ALLOW" in url
    assert "notify" in schemas["Task"]["properties"] and "notify" in schemas["Template"]["properties"]
    operation = document["paths"]["/wsexec/webhooks/deliveries"]["get"]
    assert "403" in operation["responses"] and "200" in operation["responses"]
