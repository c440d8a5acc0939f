"""/wsexec/commands: the configured commands, run as ordinary tasks by real workers over a real sshd."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.helpers import Api, wait_finished
from wsexec import create_app
from wsexec.config import DEFAULT_COMMANDS, Settings
from wsexec.testing import free_port


def test_list_is_the_configured_commands(api: Api) -> None:
    response = api.as_user("viewer").get("/commands")
    assert response.status_code == 200
    assert response.json == DEFAULT_COMMANDS


def test_run_with_wait_answers_the_output_as_text(api: Api, instance: dict[str, Any], workers: Any) -> None:
    workers.start(1)
    response = api.as_user("operator").post("/commands/uptime?wait=30", json={"instance": instance["id"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert "load average" in response.get_data(as_text=True)
    assert response.headers["X-Wsexec-Rc"] == "0"
    task = api.get(f"/tasks/{response.headers['X-Wsexec-Task']}").json
    assert (task["name"], task["tag"], task["script"], task["state"]) == ("uptime", "command", "uptime", "DONE")
    assert (task["user"], task["created_by"]) == (instance["user"], "operator")


def test_nonzero_rc_is_still_the_output_with_its_rc(api: Api, settings: Settings, instance: dict, workers: Any) -> None:
    api = Api(create_app(dataclasses.replace(settings, commands={"fail": "echo partial; exit 3"})).test_client())
    workers.start(1)
    response = api.post("/commands/fail?wait=30", json={"instance": instance["id"]})
    assert (response.status_code, response.mimetype) == (200, "text/plain")
    assert response.get_data(as_text=True) == "partial\n"
    assert response.headers["X-Wsexec-Rc"] == "3"


def test_run_without_wait_is_a_queued_task_that_ends_done(api: Api, instance: dict[str, Any], workers: Any) -> None:
    response = api.as_user("operator").post("/commands/df", json={"instance": instance["id"], "user": instance["user"]})
    assert response.status_code == 202, response.json
    assert (response.json["state"], response.json["script"]) == ("INIT", DEFAULT_COMMANDS["df"])
    workers.start(1)
    task = wait_finished(api, response.json["id"])
    assert (task["state"], task["rc"]) == ("DONE", 0)
    assert "Mounted on" in task["stdout"]
    audit = api.get("/audit").json["results"]
    assert any(e["action"] == "command.run" and e["target"] == "command:df" for e in audit)


def test_unknown_command_is_404_and_creates_nothing(api: Api, instance: dict[str, Any]) -> None:
    response = api.post("/commands/reboot", json={"instance": instance["id"]})
    assert response.status_code == 404
    assert response.json["error"] == "no command named 'reboot'"
    assert response.json["detail"] == {"commands": sorted(DEFAULT_COMMANDS)}
    assert api.get("/tasks").json["count"] == 0


@pytest.mark.parametrize("wait", ["0", "301", "-1", "1.5", "abc", ""])
def test_bad_wait_is_422(api: Api, instance: dict[str, Any], wait: str) -> None:
    response = api.post(f"/commands/uptime?wait={wait}", json={"instance": instance["id"]})
    assert response.status_code == 422, response.json
    assert "wait" in response.json["detail"]
    assert api.get("/tasks").json["count"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"script": "rm -rf /"}, "script"),  # only the configured command line can run
        ({}, "instance"),
        ({"instance": "x"}, "instance"),
        ({"user": "Bad User"}, "user"),
    ],
)
def test_bad_body_is_422(api: Api, instance: dict[str, Any], body: dict[str, Any], field: str) -> None:
    response = api.post("/commands/uptime", json={"instance": instance["id"], **body} if body else {})
    assert response.status_code == 422
    assert field in response.json["detail"]
    assert api.get("/tasks").json["count"] == 0


def test_viewer_may_list_but_not_run(api: Api, instance: dict[str, Any]) -> None:
    response = api.as_user("viewer").post("/commands/uptime", json={"instance": instance["id"]})
    assert response.status_code == 403
    assert response.json["detail"] == {"required": "operator"}


def test_aborted_run_is_502_with_the_task_and_its_error(api: Api, workers: Any) -> None:
    closed = api.post("/instances", json={"ip": "127.0.0.1", "port": free_port(), "tag": "gone", "user": "nobody"})
    workers.start(1)
    response = api.post("/commands/uptime?wait=30", json={"instance": closed.json["id"]})
    assert response.status_code == 502
    task = api.get(f"/tasks/{response.json['detail']['task']}").json
    assert task["state"] == "ABORT"
    assert response.json["detail"]["error"] == task["error"]
    assert task["error"] in response.json["error"]


def test_not_finished_in_time_is_504_with_the_task(settings: Settings, instance: dict[str, Any], workers: Any) -> None:
    api = Api(create_app(dataclasses.replace(settings, commands={"nap": "sleep 30"})).test_client())
    workers.start(1)
    response = api.post("/commands/nap?wait=1", json={"instance": instance["id"]})
    assert response.status_code == 504
    task_id = response.json["detail"]["task"]
    assert f"task {task_id} has not finished" in response.json["error"]
    assert api.get(f"/tasks/{task_id}").json["state"] in ("INIT", "CURRENT")
    assert api.patch(f"/tasks/{task_id}", json={"state": "ABORT"}).status_code == 200
    assert wait_finished(api, task_id)["state"] == "ABORT"


def test_idempotency_key_runs_the_command_once(api: Api, instance: dict[str, Any]) -> None:
    def post() -> Any:
        return api.post("/commands/uptime", json={"instance": instance["id"]}, headers={"Idempotency-Key": "k1"})

    first, again = post(), post()
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json["id"] == first.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.get("/tasks").json["count"] == 1


def test_openapi_documents_the_routes(api: Api) -> None:
    paths = api.get("/openapi.json").json["paths"]
    listing = paths["/wsexec/commands"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing["additionalProperties"] == {"type": "string"}
    run = paths["/wsexec/commands/{name}"]["post"]
    assert run["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CommandRun")
    assert [p["name"] for p in run["parameters"] if p["in"] == "query"] == ["wait"]
    responses = run["responses"]
    assert responses["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/Task")
    assert responses["200"]["content"]["text/plain"]["schema"] == {"type": "string"}
    assert set(responses["200"]["headers"]) == {"X-Wsexec-Task", "X-Wsexec-Rc"}
    assert {"403", "404", "422", "502", "504"} <= set(responses)
