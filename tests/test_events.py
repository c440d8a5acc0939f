"""GET /wsexec/events: lifecycle events written with the change they report, filtered, resumable, bounded."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import requests

from tests.helpers import PASSWORDS, Api, sse_frames, task_body
from wsexec import create_app
from wsexec.config import Settings
from wsexec.store import Store, TaskState


def parse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """SSE frames as dicts: event, id, data (decoded JSON), or a comment."""
    for found in sse_frames(lines):
        yield {**found, "data": json.loads(found["data"])} if "data" in found else found


def events(api: Api, query: str = "", **headers: str) -> list[dict[str, Any]]:
    """The events a bounded stream (timeout=0: what is already there) answers."""
    with api.as_user("viewer").get(f"/events?timeout=0{query}", headers=headers) as response:
        assert response.status_code == 200, response.json
        assert response.mimetype == "text/event-stream"
        return [f for f in parse(response.get_data(as_text=True).split("\n")) if "event" in f]


def lifecycle(found: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return [(f["event"], f["data"]["task"], f["data"]["state"]) for f in found]


def run(store: Store, task_id: int, rc: int = 0) -> None:
    """What a worker does to a task: claim it, then finish it."""
    assert store.claim(task_id, "test-worker", 60)
    store.finish(task_id, TaskState.DONE, rc=rc)


def test_create_start_finish_events_with_filters(api: Api, store: Store, instance: dict, make_sshd: Any,
                                                 ssh_user: str) -> None:
    other = make_sshd("127.0.1.7")
    second = api.created("/instances", {"ip": other.host, "port": other.port, "tag": "db", "user": ssh_user})
    first = api.create_task(instance, tag="web")
    fan_out = api.created("/tasks", {"name": "f", "tag": "all", "target": {"tag": "db"}, "script": "true"})
    run(store, first["id"], rc=3)
    store.abort_queued(fan_out[0]["id"], "cancelled by test")

    everything = events(api, last_event_id="0-0")
    assert lifecycle(everything) == [
        ("created", first["id"], "INIT"), ("created", fan_out[0]["id"], "INIT"),
        ("started", first["id"], "CURRENT"), ("finished", first["id"], "DONE"),
        ("finished", fan_out[0]["id"], "ABORT"),
    ]
    finished = everything[3]["data"]
    assert finished == {"task": first["id"], "tag": "web", "instance": instance["id"], "state": "DONE", "rc": 3}
    assert everything[4]["data"]["error"] == "cancelled by test"
    assert everything[4]["data"]["batch"] == fan_out[0]["batch"]
    assert len({f["id"] for f in everything}) == len(everything), "each event has its own id"

    by_instance = events(api, f"&instance={second['id']}", **{"Last-Event-ID": "0-0"})
    assert [f["data"]["task"] for f in by_instance] == [fan_out[0]["id"]] * 2
    web = lifecycle(events(api, "&tag=web&last_event_id=0-0"))
    assert web == [lifecycle(everything)[i] for i in (0, 2, 3)]
    assert len(events(api, f"&batch={fan_out[0]['batch']}&last_event_id=0-0")) == 2
    assert events(api, "&batch=nosuchbatch&last_event_id=0-0") == []
    assert events(api) == [], "without Last-Event-ID the stream starts from now"


def test_last_event_id_resumes_without_loss_or_duplicates(api: Api, store: Store, instance: dict) -> None:
    tasks = api.created("/tasks", [task_body(instance)] * 3)
    everything = events(api, last_event_id="0-0")
    resumed = events(api, **{"Last-Event-ID": everything[1]["id"]})
    run(store, tasks[0]["id"])
    later = events(api, **{"Last-Event-ID": everything[-1]["id"]})
    assert resumed == everything[2:]
    assert lifecycle(later) == [("started", tasks[0]["id"], "CURRENT"), ("finished", tasks[0]["id"], "DONE")]
    header_wins = events(api, f"&last_event_id={everything[-1]['id']}", **{"Last-Event-ID": everything[0]["id"]})
    assert header_wins == everything[1:] + later


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small window, so a few hundred tasks are enough to trim it; a fast heartbeat."""
    return dataclasses.replace(settings, events_window=10, events_heartbeat=0.1)


def test_gap_event_when_asked_for_more_than_the_window(api: Api, instance: dict) -> None:
    api.created("/tasks", [task_body(instance)] * 400)  # MAXLEN ~ trims whole stream nodes (100 entries)
    with api.as_user("viewer").get("/events?timeout=0&last_event_id=0-0") as response:
        answer = response.get_data(as_text=True)
    frames = [f for f in parse(answer.split("\n")) if "event" in f]
    assert frames[0]["event"] == "gap" and frames[0]["data"]["after"] == "0-0"
    assert frames[1]["id"] == frames[0]["data"]["oldest"], "resumes from the oldest event kept"
    assert 10 <= len(frames) - 1 < 400 and all(f["event"] == "created" for f in frames[1:])
    tasks = [f["data"]["task"] for f in frames[1:]]
    assert tasks == list(range(tasks[0], 401)), "the kept events are the newest, in order"
    assert [f["event"] for f in events(api, **{"Last-Event-ID": frames[1]["id"]})][:1] == ["created"]


def test_idle_stream_sends_keepalive_comments(api: Api) -> None:
    with api.as_user("viewer").get("/events?timeout=1") as response:
        answer = response.get_data(as_text=True)
    assert answer.startswith("retry: ")
    assert ": keepalive\n\n" in answer


def test_a_heartbeat_longer_than_the_redis_socket_timeout(settings: Settings, redis: Any) -> None:
    """Idle for longer than redis-py's 5 s socket timeout: keepalives, and no error event from a read taken as lost."""
    viewer = Api(create_app(dataclasses.replace(settings, events_heartbeat=6)).test_client(), "viewer")
    with viewer.get("/events?timeout=7") as response:
        answer = response.get_data(as_text=True)
    assert ": keepalive" in answer and "event: error" not in answer


def test_streams_beyond_the_cap_are_503_with_retry_after(settings: Settings, redis: Any) -> None:
    viewer = Api(create_app(dataclasses.replace(settings, events_streams_max=1)).test_client(), "viewer")
    first = viewer.get("/events", buffered=False)
    assert first.status_code == 200
    refused = viewer.get("/events?timeout=0")
    assert refused.status_code == 503 and refused.json["error"].startswith("this process already serves 1")
    assert refused.headers["Retry-After"].isdigit()
    first.close()
    assert viewer.get("/events?timeout=0").status_code == 200, "a closed stream gives its slot back"


@pytest.mark.parametrize("query, headers", [
    ("?timeout=86401", {}), ("?timeout=-1", {}), ("?timeout=1.5", {}), ("?instance=0", {}), ("?tag=a%20b", {}),
    ("?last_event_id=latest", {}), ("", {"Last-Event-ID": "12"}), ("", {"Last-Event-ID": "1-2-3"}),
])
def test_bad_parameters_are_422(api: Api, query: str, headers: dict[str, str]) -> None:
    response = api.as_user("viewer").get(f"/events{query}", headers=headers)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert set(response.json) == {"error", "detail"}


def test_redis_restart_mid_stream_resumes_or_ends_with_an_error(api: Api, store: Store, instance: dict,
                                                               redis_server: Any) -> None:
    response = api.as_user("viewer").get("/events?timeout=60", buffered=False)
    lines = (line for chunk in response.response for line in chunk.decode().split("\n"))
    frames = parse(lines)
    assert next(f for f in frames if f.get("comment") == "keepalive"), "reading from Redis"
    redis_server.restart(down_seconds=0.5)
    task = api.create_task(instance)
    after = next(f for f in frames if "event" in f)
    response.close()
    assert after["event"] == "created" and after["data"]["task"] == task["id"] or after["event"] == "error"


def test_follow_tasks_run_by_real_workers_through_gunicorn(gunicorn_url: str, instance: dict, workers: Any) -> None:
    workers.start(1)
    auth = ("operator", PASSWORDS["operator"])
    url = f"{gunicorn_url}/wsexec/events"
    with requests.get(f"{url}?tag=followed&timeout=60", auth=auth, stream=True, timeout=60) as stream:
        assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines).startswith("retry: ")
        created = requests.post(f"{gunicorn_url}/wsexec/tasks", json=[task_body(instance, "echo hi", tag="followed"),
                                                                     task_body(instance, tag="other")],
                                auth=auth, timeout=30).json()
        seen: list[dict[str, Any]] = []
        for frame in parse(lines):
            if "event" in frame:
                seen.append(frame)
                if frame["event"] == "finished":
                    break
    assert lifecycle(seen) == [("created", created[0]["id"], "INIT"), ("started", created[0]["id"], "CURRENT"),
                               ("finished", created[0]["id"], "DONE")]
    assert seen[-1]["data"]["rc"] == 0
    resumed = requests.get(f"{url}?timeout=0", auth=auth, headers={"Last-Event-ID": seen[0]["id"]}, timeout=30)
    ids = [f["id"] for f in parse(resumed.text.split("\n")) if "event" in f]
    assert seen[1]["id"] in ids and seen[0]["id"] not in ids and len(ids) == len(set(ids))
