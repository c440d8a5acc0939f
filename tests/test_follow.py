"""GET /wsexec/tasks/{id}/output?follow=true: output streamed as it is stored, as SSE or text, resumable, bounded."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import PASSWORDS, Api, sse_frames, task_body
from wsexec import create_app
from wsexec.config import Settings
from wsexec.store import Store, TaskState

SSE = {"Accept": "text/event-stream"}


def frames(api: Api, task_id: int, **headers: str) -> list[dict[str, Any]]:
    with api.get(f"/tasks/{task_id}/output?follow=true&timeout=0", headers={**SSE, **headers}) as response:
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/event-stream" and response.headers["X-Accel-Buffering"] == "no"
        return [f for f in sse_frames(response.get_data(as_text=True).split("\n")) if "event" in f]


def joined(found: Iterable[dict[str, Any]], stream: str) -> str:
    return "".join(f["data"] for f in found if f["event"] == stream)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, events_heartbeat=0.1)


@pytest.fixture
def finished_task(api: Api, store: Store, instance: dict) -> dict[str, Any]:
    """A task with multi-line stdout (a UTF-8 character split across two appends), stderr, rc 3."""
    task = api.create_task(instance)
    assert store.claim(task["id"], "test-worker", 60)
    pieces = [("stdout", b"line one\nline two\r\n"), ("stderr", b"warn\n"),
              ("stdout", "caf\u00e9".encode()[:-1]), ("stdout", "caf\u00e9".encode()[-1:] + b"\n\nend")]
    offsets = {"stdout": 0, "stderr": 0}
    for stream, data in pieces:
        store.append_output(task["id"], stream, data, offsets[stream])
        offsets[stream] += len(data)
    store.finish(task["id"], TaskState.DONE, rc=3)
    return task


def test_sse_events_then_end_with_state_rc_error(api: Api, finished_task: dict) -> None:
    found = frames(api, finished_task["id"])
    assert joined(found, "stdout") == "line one\nline two\ncaf\u00e9\n\nend"  # CRLF reaches an SSE client as \n
    assert joined(found, "stderr") == "warn\n"
    assert found[-1]["event"] == "end" and [f["event"] for f in found].count("end") == 1
    assert json.loads(found[-1]["data"]) == {"state": "DONE", "rc": 3, "error": None}
    stdout_bytes = len("line one\nline two\r\ncaf\u00e9\n\nend".encode())
    assert found[-1]["id"] == f"{stdout_bytes}.5"


def test_last_event_id_resumes_with_exactly_the_rest(api: Api, finished_task: dict) -> None:
    found = frames(api, finished_task["id"])
    for index, frame in enumerate(found[:-1]):
        rest = frames(api, finished_task["id"], **{"Last-Event-ID": frame["id"]})
        assert [(f["event"], f["data"]) for f in rest] == [(f["event"], f["data"]) for f in found[index + 1:]]


def test_text_plain_streams_the_raw_bytes(api: Api, finished_task: dict) -> None:
    response = api.get(f"/tasks/{finished_task['id']}/output?follow=true")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    body = response.get_data()
    assert body == "line one\nline two\r\ncaf\u00e9\n\nend".encode() + b"warn\n"  # each stream in order, stdout first
    resumed = api.get(f"/tasks/{finished_task['id']}/output?follow=true&stdout_offset=9&stderr_offset=4")
    assert resumed.get_data() == "line two\r\ncaf\u00e9\n\nend".encode() + b"\n"


def test_follow_false_keeps_the_json_answer(api: Api, finished_task: dict) -> None:
    answer = api.get(f"/tasks/{finished_task['id']}/output?follow=false").json
    assert answer["stderr"] == "warn\n" and answer["finished"] is True


def test_a_running_task_streams_until_it_ends(api: Api, store: Store, instance: dict) -> None:
    task = api.create_task(instance)
    assert store.claim(task["id"], "test-worker", 60)
    store.append_output(task["id"], "stdout", b"early\n", 0)
    response = api.get(f"/tasks/{task['id']}/output?follow=true&timeout=60", headers=SSE, buffered=False)
    lines = (line for chunk in response.response for line in chunk.decode().split("\n"))
    stream = sse_frames(lines)
    assert next(f for f in stream if "event" in f)["data"] == "early\n"
    assert next(f for f in stream if "comment" in f)["comment"] == "keepalive", "idle while the task runs"
    store.append_output(task["id"], "stderr", b"late", 0)
    assert next(f for f in stream if "event" in f)["data"] == "late"
    store.finish(task["id"], TaskState.ABORT, error="killed by test")
    end = next(f for f in stream if "event" in f)
    response.close()
    assert end["event"] == "end" and json.loads(end["data"]) == {"state": "ABORT", "rc": None,
                                                                 "error": "killed by test"}


def test_huge_output_streams_completely_in_slices_within_the_cap(settings: Settings, redis: Any,
                                                                 instance: dict) -> None:
    cap = 1536 * 1024
    app = create_app(dataclasses.replace(settings, output_cap=cap))
    store, api = app.extensions["wsexec_store"], Api(app.test_client())
    task = api.create_task(instance)
    assert store.claim(task["id"], "test-worker", 60)
    written = bytes(range(32, 127)) * (2 * 1024 * 1024 // 95)  # 2 MiB, beyond the cap
    for start in range(0, len(written), 100_000):
        store.append_output(task["id"], "stdout", written[start:start + 100_000], min(start, cap))
    store.finish(task["id"], TaskState.DONE, rc=0)
    response = api.get(f"/tasks/{task['id']}/output?follow=true", buffered=False)
    chunks = list(response.response)
    response.close()
    assert b"".join(chunks) == written[:cap]
    assert max(len(chunk) for chunk in chunks) <= 64 * 1024, "read in bounded slices"
    found = frames(api, task["id"])
    assert joined(found, "stdout") == written[:cap].decode()


def test_unknown_task_is_404_json(api: Api) -> None:
    for headers in ({}, SSE):
        response = api.get("/tasks/999999/output?follow=true", headers=headers)
        assert response.status_code == 404 and set(response.json) == {"error", "detail"}


@pytest.mark.parametrize("query, headers", [
    ("&timeout=86401", {}), ("&timeout=-1", {}), ("", {"Last-Event-ID": "12"}),
    ("", {"Last-Event-ID": "1-2"}), ("", {"Last-Event-ID": "99999999999999999999.0"}),
])
def test_bad_parameters_are_422(api: Api, finished_task: dict, query: str, headers: dict[str, str]) -> None:
    response = api.get(f"/tasks/{finished_task['id']}/output?follow=true{query}", headers=headers)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert set(response.json) == {"error", "detail"}


def test_output_streams_share_the_per_process_cap(settings: Settings, redis: Any, instance: dict) -> None:
    app = create_app(dataclasses.replace(settings, events_streams_max=1))
    api = Api(app.test_client())
    task = api.create_task(instance)
    first = api.get(f"/tasks/{task['id']}/output?follow=true", headers=SSE, buffered=False)
    assert first.status_code == 200
    refused = api.get(f"/tasks/{task['id']}/output?follow=true&timeout=0")
    assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
    assert api.as_user("viewer").get("/events?timeout=0").status_code == 503, "one cap for both kinds of stream"
    first.close()
    assert api.get(f"/tasks/{task['id']}/output?follow=true&timeout=0").status_code == 200


def test_output_arrives_live_through_gunicorn_from_real_workers(gunicorn_url: str, instance: dict,
                                                                workers: Any) -> None:
    go = Path(f"/tmp/wsexec-test-{uuid.uuid4().hex}.go")
    auth = ("operator", PASSWORDS["operator"])
    script = f"echo before; echo oops >&2; until [ -e {go} ]; do sleep 0.1; done; printf 'after\\nlast'; exit 4"
    task = requests.post(f"{gunicorn_url}/wsexec/tasks", json=task_body(instance, script),
                         auth=auth, timeout=30).json()
    workers.start(1)
    url = f"{gunicorn_url}/wsexec/tasks/{task['id']}/output?follow=true&timeout=60"
    try:
        with requests.get(url, auth=auth, headers=SSE, stream=True, timeout=60) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.headers["X-Accel-Buffering"] == "no"
            found = sse_frames(stream.iter_lines(decode_unicode=True))
            seen: list[dict[str, Any]] = []
            for frame in found:
                seen += [frame] if "event" in frame else []
                if frame.get("event") == "stdout":
                    break
            assert seen[-1]["data"] == "before\n", "output before the task ends"
            go.touch()
            seen += [f for f in found if "event" in f]
    finally:
        go.touch()
    assert "".join(f["data"] for f in seen if f["event"] == "stdout") == "before\nafter\nlast"
    assert "".join(f["data"] for f in seen if f["event"] == "stderr") == "oops\n"
    assert json.loads(seen[-1]["data"])["rc"] == 4 and seen[-1]["event"] == "end"
    resumed = requests.get(url, auth=auth, headers={**SSE, "Last-Event-ID": seen[0]["id"]}, timeout=30)
    rest = [f for f in sse_frames(resumed.text.split("\n")) if "event" in f]
    for kind in ("stdout", "stderr", "end"):  # between streams, the order is each round's (see follow.chunks)
        assert joined(rest, kind) == joined(seen[1:], kind)
    text = requests.get(url, auth=auth, stream=True, timeout=30)
    assert text.headers["Content-Type"].startswith("text/plain")
    assert text.content == b"before\nafter\nlast" + b"oops\n", "a finished task's: stdout, then stderr"
    go.unlink()


def stream_of(response: Any) -> Iterator[dict[str, Any]]:
    """The events (not comments) of an unbuffered test-client response, as they come."""
    lines = (line for chunk in response.response for line in chunk.decode().split("\n"))
    return (f for f in sse_frames(lines) if "event" in f)


@pytest.fixture
def printing(app: Any, api: Api, instance: dict) -> tuple[dict[str, Any], Store]:
    """A running task that printed "one\\n", and the app's store (its client rides out a Redis restart)."""
    store = app.extensions["wsexec_store"]
    task = api.create_task(instance)
    assert store.claim(task["id"], "test-worker", 600)
    store.append_output(task["id"], "stdout", b"one\n", 0)
    return task, store


def test_redis_restarted_mid_stream_the_stream_goes_on_or_resumes_by_last_event_id(
    api: Api, printing: tuple[dict[str, Any], Store], redis_server: Any
) -> None:
    """A short restart (AOF kept) is within the client's retries: the stream reads on. Should the restart outlast
    them (a loaded machine), the stream says `error` and ends; a reconnect with Last-Event-ID gets the rest.
    Either way: all of the output once, and one end."""
    task, store = printing
    url = f"/tasks/{task['id']}/output?follow=true&timeout=120"
    response = api.get(url, headers=SSE, buffered=False)
    events = stream_of(response)
    seen = [next(events)]
    assert (seen[0]["event"], seen[0]["data"]) == ("stdout", "one\n")
    redis_server.restart(down_seconds=0.5)
    store.append_output(task["id"], "stdout", b"two\n", 4)
    store.finish(task["id"], TaskState.DONE, rc=0)
    seen += [next(e for e in events if e["event"] in ("stdout", "end", "error"))]
    if seen[-1]["event"] == "stdout":  # read on after the restart
        seen += list(events)
    response.close()
    errored = seen[-1]["event"] == "error"
    if errored:
        seen = seen[:-1] + frames(api, task["id"], **{"Last-Event-ID": seen[-2]["id"]})
    print("\nRedis restart mid-stream:", "error event, resumed by Last-Event-ID" if errored else "the stream read on")
    assert joined(seen, "stdout") == "one\ntwo\n"
    assert [f["event"] for f in seen].count("end") == 1 and seen[-1]["event"] == "end"


def test_redis_down_beyond_the_retries_ends_the_stream_with_an_error_then_last_event_id_resumes(
    api: Api, printing: tuple[dict[str, Any], Store], redis_server: Any
) -> None:
    """Never a hang: the stream ends with `event: error` (what it could not do, and that Last-Event-ID resumes)."""
    task, store = printing
    response = api.get(f"/tasks/{task['id']}/output?follow=true&timeout=120", headers=SSE, buffered=False)
    events = stream_of(response)
    first = next(events)
    redis_server.stop()
    try:
        error = next(events)
        assert list(events) == [], "the error event is the last"
    finally:
        response.close()
        redis_server.start()
    assert error["event"] == "error" and "id" not in error
    assert json.loads(error["data"])["error"] == "Redis unreachable: the stream ends; reconnect with Last-Event-ID"
    store.append_output(task["id"], "stdout", b"two\n", 4)
    store.finish(task["id"], TaskState.DONE, rc=0)
    rest = frames(api, task["id"], **{"Last-Event-ID": first["id"]})
    assert [(f["event"], f["data"]) for f in rest] == [("stdout", "two\n"),
                                                        ("end", '{"state":"DONE","rc":0,"error":null}')]
