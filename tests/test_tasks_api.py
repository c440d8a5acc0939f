"""/wsexec/tasks through the API only: no worker runs here, so every task stays INIT until cancelled."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis import Redis
from rq import Queue

from tests.helpers import Api, task_body
from wsexec.config import Settings


@pytest.fixture
def new_task(instance: dict[str, Any]) -> dict[str, Any]:
    """A valid POST body for the instance fixture."""
    return task_body(instance, "uptime", name="uptime", tag="nightly")


def listed(api: Api, query: str = "") -> list[int]:
    return [task["id"] for task in api.get(f"/tasks?page_size=100&{query}").json["results"]]


def test_post_one_is_stored_init_and_enqueued(
    api: Api, new_task: dict[str, Any], instance: dict[str, Any], settings: Settings, redis: Redis
) -> None:
    task = api.as_user("operator").created("/tasks", new_task)
    assert isinstance(task["id"], int)
    assert task["state"] == "INIT"
    assert task["created_by"] == "operator"
    assert task["user"] == instance["user"]  # the instance's default login
    assert task["timeout"] == settings.task_timeout
    assert {k: task[k] for k in new_task} == new_task
    assert [task[k] for k in ("stdout", "stderr", "rc", "start", "end", "error")] == [None] * 6
    got = api.get(f"/tasks/{task['id']}").json
    assert (got["stdout"], got["stderr"]) == ("", "")  # one task is shown with its output so far
    assert {k: v for k, v in got.items() if k not in ("stdout", "stderr")} == {
        k: v for k, v in task.items() if k not in ("stdout", "stderr")}
    assert Queue(settings.queue, connection=redis).count >= 1


def test_post_with_optional_fields(api: Api, new_task: dict[str, Any]) -> None:
    first = api.created("/tasks", new_task)
    api.patch(f"/instances/{new_task['instance']}", json={"login_users": ["nobody"]})  # a user it allows
    when = "2030-01-01T00:00:00+00:00"
    task = api.created("/tasks", {**new_task, "user": "nobody", "timeout": 30, "run_after": [first["id"]],
                                  "scheduled_at": when, "name": "déploiement ✓ 🚀 \"q\" \\", "run_as": "www-data",
                                  "env": {"RELEASE": "2026.12 ✓"}})
    assert (task["user"], task["timeout"], task["run_after"]) == ("nobody", 30, [first["id"]])
    assert task["scheduled_at"] == 1893456000.0
    assert (task["name"], task["run_as"], task["env_names"]) == ("déploiement ✓ 🚀 \"q\" \\", "www-data", ["RELEASE"])
    got = api.get(f"/tasks/{task['id']}").json  # the answer is what was stored, not read back: the same as a read
    assert {k: v for k, v in got.items() if k not in ("stdout", "stderr")} == {
        k: v for k, v in task.items() if k not in ("stdout", "stderr")}


def test_post_an_array_creates_all(api: Api, new_task: dict[str, Any]) -> None:
    tasks = api.created("/tasks", [{**new_task, "name": f"n{i}"} for i in range(3)])
    assert [t["name"] for t in tasks] == ["n0", "n1", "n2"]
    ids = [t["id"] for t in tasks]
    assert ids == sorted(set(ids))
    assert listed(api) == ids[::-1]


def test_array_with_one_invalid_item_creates_nothing(api: Api, new_task: dict[str, Any]) -> None:
    response = api.post("/tasks", json=[new_task, new_task, {**new_task, "script": ""}, new_task])
    assert response.status_code == 422
    assert "item 2" in response.json["error"]
    assert list(response.json["detail"]) == ["2"]
    assert "script" in response.json["detail"]["2"]
    assert api.get("/tasks").json["count"] == 0


def test_array_with_an_unknown_instance_creates_nothing(api: Api, new_task: dict[str, Any]) -> None:
    response = api.post("/tasks", json=[new_task, {**new_task, "instance": 999}])
    assert response.status_code == 422
    assert response.json["error"].startswith("item 1: instance")
    assert api.get("/tasks").json["count"] == 0


def test_array_with_an_unknown_dependency_names_the_item_and_creates_nothing(
    api: Api, new_task: dict[str, Any]
) -> None:
    """The create script checks run_after in the same step as storing, and names the item like the schema does."""
    response = api.post("/tasks", json=[new_task, {**new_task, "run_after": [999]}])
    assert response.status_code == 422
    assert response.json["error"] == "item 1: run_after: task 999 does not exist"
    assert response.json["detail"] == {"1": {"run_after": ["task 999 does not exist"]}}
    assert api.get("/tasks").json["count"] == 0


def test_array_with_a_deactivated_instance_creates_nothing(
    api: Api, new_task: dict[str, Any], instance: dict[str, Any]
) -> None:
    other = api.post("/instances", json={"ip": "127.0.0.2", "tag": "off", "user": "nobody", "state": "DEACTIVATE"}).json
    response = api.post("/tasks", json=[new_task, {**new_task, "instance": other["id"]}])
    assert response.status_code == 409
    assert "DEACTIVATE" in response.json["error"]
    assert api.get("/tasks").json["count"] == 0


def test_instance_or_target_not_both(api: Api, new_task: dict[str, Any]) -> None:
    response = api.post("/tasks", json={**new_task, "target": {"tag": "test"}})
    assert response.status_code == 422
    assert "either instance" in str(response.json["detail"])
    assert api.get("/tasks").json["count"] == 0


def test_unknown_instance_is_422(api: Api, new_task: dict[str, Any]) -> None:
    response = api.post("/tasks", json={**new_task, "instance": 999})
    assert response.status_code == 422
    assert "instance" in response.json["detail"]
    assert "999" in response.json["error"]


@pytest.mark.parametrize("state", ["DEACTIVATE", "DEACTIVE"])
def test_deactivated_instance_is_409(api: Api, new_task: dict[str, Any], instance: dict[str, Any], state: str) -> None:
    api.patch(f"/instances/{instance['id']}", json={"state": state})
    response = api.post("/tasks", json=new_task)
    assert response.status_code == 409
    assert response.json["error"] == f"instance {instance['id']} is DEACTIVATE, not ACTIVE"
    assert api.get("/tasks").json["count"] == 0


BAD_NEW_TASKS: list[tuple[str, Any, str]] = [  # (field, value or MISSING, what the message must say)
    ("name", "MISSING", "Missing data"),
    ("tag", "MISSING", "Missing data"),
    ("script", "MISSING", "Missing data"),
    ("instance", "MISSING", "either instance"),
    ("name", "", "between 1 and 200"),
    ("name", None, "null"),
    ("name", 5, "string"),
    ("name", "n" * 201, "between 1 and 200"),
    ("tag", "a b", "characters"),
    ("tag", ["web"], "string"),
    ("script", "", "minimum length"),
    ("script", ["uptime"], "string"),
    ("instance", "web-1", "integer"),
    ("instance", 1.5, "integer"),
    ("instance", 0, "greater"),
    ("instance", True, "integer"),
    ("user", "Root", "POSIX"),
    ("user", None, "null"),
    ("timeout", 0, "greater"),
    ("timeout", "1h", "integer"),
    ("timeout", 86401, "at most"),
    ("timeout", 10**30, "at most"),
    ("run_after", [999], "does not exist"),
    ("run_after", 5, "list"),
    ("run_after", ["x"], "integer"),
    ("scheduled_at", "tomorrow", "ISO 8601"),
    ("scheduled_at", "2030-01-01T00:00:00", "UTC offset"),
    ("scheduled_at", True, "unix timestamp"),
    ("scheduled_at", 10**30, "unix timestamp"),
    ("scheduled_at", -1, "unix timestamp"),
    ("state", "DONE", "always INIT"),
    ("stdout", "x", "read-only"),
    ("stderr", "x", "read-only"),
    ("rc", 0, "read-only"),
    ("start", 1.0, "read-only"),
    ("end", 1.0, "read-only"),
    ("id", 7, "Unknown field"),
    ("created_by", "root", "Unknown field"),
    ("color", "red", "Unknown field"),
]


@pytest.mark.parametrize(("field", "value", "says"), BAD_NEW_TASKS)
def test_bad_new_task_is_422_naming_the_field(
    api: Api, new_task: dict[str, Any], field: str, value: Any, says: str
) -> None:
    body = {k: v for k, v in new_task.items() if k != field}
    if value != "MISSING":
        body[field] = value
    response = api.post("/tasks", json=body)
    assert response.status_code == 422, response.json
    assert list(response.json["detail"]) == [field]
    assert says in str(response.json["detail"][field]), response.json
    assert api.get("/tasks").json["count"] == 0


def test_script_too_large_is_422(api: Api, new_task: dict[str, Any], settings: Settings) -> None:
    response = api.post("/tasks", json={**new_task, "script": "#" * (settings.script_max + 1)})
    assert response.status_code == 422
    assert response.json["detail"] == {"script": [f"longer than {settings.script_max} bytes"]}
    assert api.created("/tasks", {**new_task, "script": "#" * settings.script_max})["state"] == "INIT"


@pytest.mark.parametrize("script", ["\0", "echo a\0b", "true\n\0"])
def test_a_script_with_a_nul_byte_is_422(api: Api, new_task: dict[str, Any], script: str) -> None:
    """No shell can run it as written (a shell variable or argument ends at NUL): refused, never altered."""
    response = api.post("/tasks", json={**new_task, "script": script})
    assert response.status_code == 422, response.json
    assert "NUL" in response.json["detail"]["script"][0], response.json
    assert api.get("/tasks").json["count"] == 0


@pytest.mark.parametrize("body", [[], {}, "uptime", 5, None, [None], [[{}]]])
def test_not_a_task_is_422(api: Api, body: Any) -> None:
    response = api.post("/tasks", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 422, response.json
    assert api.get("/tasks").json["count"] == 0


def test_get_unknown_is_404(api: Api) -> None:
    assert api.get("/tasks/999").json == {"error": "task 999 not found", "detail": None}


def test_list_is_paginated_newest_first(api: Api, new_task: dict[str, Any]) -> None:
    ids = [t["id"] for t in api.created("/tasks", [new_task] * 5)]
    page = api.get("/tasks?page_size=2").json
    assert page["count"] == 5
    assert page["previous"] is None
    seen = []
    while True:
        seen += [t["id"] for t in page["results"]]
        assert page["count"] == 5
        if page["next"] is None:
            break
        assert "page_size=2" in page["next"]
        page = api.client.get(page["next"], auth=api.auth).json
        assert page["previous"] is not None
    assert seen == ids[::-1]
    assert api.get("/tasks?page=9&page_size=2").json["results"] == []
    assert len(api.get("/tasks").json["results"]) == 5  # default page size is above 5
    assert len(api.get("/tasks?page_size=100").json["results"]) == 5


def test_list_keeps_the_filters_in_its_links(api: Api, new_task: dict[str, Any]) -> None:
    api.created("/tasks", [new_task, {**new_task, "tag": "other"}, new_task, new_task])
    page = api.get("/tasks?tag=nightly&page_size=1&page=2").json
    assert page["count"] == 3
    for link in (page["next"], page["previous"]):
        assert "tag=nightly" in link
        assert api.client.get(link, auth=api.auth).json["count"] == 3


@pytest.mark.parametrize(
    "query",
    ["page_size=101", "page_size=0", "page_size=-1", "page_size=x", "page=0", "page=-3", "page=x", "page=1.5",
     f"page={10**30}", "page_size=", "state=RUNNING", "state=init", "instance=x", "instance=1.5"],
)
def test_bad_list_query_is_422(api: Api, query: str) -> None:
    response = api.get(f"/tasks?{query}")
    assert response.status_code == 422, response.json
    assert list(response.json["detail"]) == [query.split("=")[0]]


def test_list_filters_and_their_combinations(api: Api, new_task: dict[str, Any], instance: dict[str, Any]) -> None:
    other = api.post("/instances", json={"ip": "127.0.0.2", "tag": "other", "user": "nobody"}).json
    a, b, c, d = (t["id"] for t in api.created("/tasks", [
        new_task,
        {**new_task, "name": "df", "tag": "daily"},
        {**new_task, "instance": other["id"]},
        {**new_task, "name": "df", "instance": other["id"]},
    ]))
    api.patch(f"/tasks/{a}", json={"state": "ABORT"})
    assert listed(api) == [d, c, b, a]
    assert listed(api, "state=INIT") == [d, c, b]
    assert listed(api, "state=ABORT") == [a]
    assert listed(api, "state=DONE") == []
    assert listed(api, f"instance={instance['id']}") == [b, a]
    assert listed(api, f"instance={other['id']}") == [d, c]
    assert listed(api, "instance=999") == []
    assert listed(api, "tag=nightly") == [d, c, a]
    assert listed(api, "tag=daily") == [b]
    assert listed(api, "name=df") == [d, b]
    assert listed(api, "name=nope") == []
    assert listed(api, "name=df&tag=nightly") == [d]
    assert listed(api, f"state=INIT&instance={instance['id']}") == [b]
    assert listed(api, f"state=INIT&tag=nightly&name=uptime&instance={other['id']}") == [c]
    assert api.get(f"/tasks?state=INIT&instance={other['id']}").json["count"] == 2


@pytest.mark.parametrize("method", ["put", "patch"])
def test_rename_and_retag_move_the_task_between_filters(api: Api, new_task: dict[str, Any], method: str) -> None:
    task = api.created("/tasks", new_task)
    response = getattr(api, method)(f"/tasks/{task['id']}", json={"name": "load", "tag": "hourly"})
    assert response.status_code == 200, response.json
    assert (response.json["name"], response.json["tag"], response.json["state"]) == ("load", "hourly", "INIT")
    assert api.get(f"/tasks/{task['id']}").json["name"] == "load"
    assert listed(api, "tag=hourly") == [task["id"]]
    assert listed(api, "name=load") == [task["id"]]
    assert listed(api, "tag=nightly") == []
    assert listed(api, "name=uptime") == []


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [("stdout", "forged", "read-only"), ("stderr", "", "read-only"), ("rc", 0, "read-only"),
     ("start", 1.0, "read-only"), ("end", 1.0, "read-only"), ("error", "x", "read-only"),
     ("script", "reboot", "cannot change"), ("instance", 2, "cannot change"), ("user", "root", "cannot change"),
     ("id", 5, "cannot change"), ("state", "DONE", "only ABORT"), ("state", "INIT", "only ABORT"),
     ("name", "", "between 1 and 200"), ("tag", "a b", "characters"), ("name", None, "null"),
     ("color", "red", "Unknown")],
)
@pytest.mark.parametrize("method", ["put", "patch"])
def test_bad_change_is_422_naming_the_field(
    api: Api, new_task: dict[str, Any], method: str, field: str, value: Any, says: str
) -> None:
    task = api.created("/tasks", new_task)
    response = getattr(api, method)(f"/tasks/{task['id']}", json={"name": "renamed", field: value})
    assert response.status_code == 422, response.json
    assert list(response.json["detail"]) == [field]
    assert says in str(response.json["detail"][field])
    assert api.get(f"/tasks/{task['id']}").json["name"] == "uptime"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_change_or_delete_unknown_is_404(api: Api, method: str) -> None:
    response = getattr(api, method)("/tasks/999", json={"state": "ABORT"} if method != "delete" else None)
    assert response.status_code == 404
    assert response.json == {"error": "task 999 not found", "detail": None}


def test_delete_waits_for_the_end_then_removes(api: Api, new_task: dict[str, Any]) -> None:
    task = api.created("/tasks", new_task)
    response = api.delete(f"/tasks/{task['id']}")
    assert response.status_code == 409
    assert "INIT" in response.json["error"]
    cancelled = api.as_user("operator").patch(f"/tasks/{task['id']}", json={"state": "ABORT"})
    assert cancelled.status_code == 200
    assert cancelled.json["state"] == "ABORT"
    assert cancelled.json["error"] == "cancelled by operator"
    assert "end" in cancelled.json
    assert listed(api, "state=ABORT") == [task["id"]]
    assert api.delete(f"/tasks/{task['id']}").status_code == 204
    assert api.get(f"/tasks/{task['id']}").status_code == 404
    assert api.delete(f"/tasks/{task['id']}").status_code == 404
    assert api.get("/tasks").json["count"] == 0
    assert listed(api, "state=ABORT") == listed(api, "tag=nightly") == []


def test_cancel_with_a_rename_applies_both(api: Api, new_task: dict[str, Any]) -> None:
    task = api.created("/tasks", new_task)
    response = api.put(f"/tasks/{task['id']}", json={"state": "ABORT", "name": "never"})
    assert (response.json["state"], response.json["name"]) == ("ABORT", "never")


def test_cancelling_a_finished_task_is_409(api: Api, new_task: dict[str, Any]) -> None:
    task = api.created("/tasks", new_task)
    api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"})
    response = api.patch(f"/tasks/{task['id']}", json={"state": "ABORT", "name": "again"})
    assert response.status_code == 409
    assert response.json == {"error": f"task {task['id']} is already ABORT", "detail": None}
    assert api.get(f"/tasks/{task['id']}").json["name"] == "uptime"
