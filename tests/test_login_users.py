"""Which login users a task may ask for: the instance's own user, its login_users, else WSEXEC_LOGIN_USERS."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.helpers import Api
from wsexec import create_app
from wsexec.config import Settings

TASK = {"name": "n", "tag": "t", "script": "true"}


def declare(api: Api, **fields: Any) -> dict[str, Any]:
    response = api.post("/instances", json={"ip": "127.0.0.9", "tag": "web", "user": "deploy", **fields})
    assert response.status_code == 201, response.json
    return response.json


def test_the_instances_own_user_by_default_and_nobody_else(api: Api) -> None:
    instance = declare(api)
    assert instance["login_users"] is None
    assert api.post("/tasks", json={**TASK, "instance": instance["id"]}).json["user"] == "deploy"
    assert api.post("/tasks", json={**TASK, "instance": instance["id"], "user": "deploy"}).status_code == 201
    refused = api.post("/tasks", json={**TASK, "instance": instance["id"], "user": "root"})
    assert refused.status_code == 403
    assert refused.json == {
        "error": f"user 'root' may not log in to instance {instance['id']}; allowed: deploy",
        "detail": {"instance": instance["id"], "user": "root", "allowed": ["deploy"]},
    }
    assert api.get("/tasks").json["count"] == 2


def test_login_users_of_the_instance(api: Api) -> None:
    instance = declare(api, login_users=["backup", "www-data"])
    assert instance["login_users"] == ["backup", "www-data"]
    for user in ("deploy", "backup", "www-data"):
        assert api.post("/tasks", json={**TASK, "instance": instance["id"], "user": user}).status_code == 201
    refused = api.post("/tasks", json={**TASK, "instance": instance["id"], "user": "root"})
    assert refused.json["detail"]["allowed"] == ["backup", "deploy", "www-data"]
    changed = api.patch(f"/instances/{instance['id']}", json={"login_users": ["root"]}).json
    assert changed["login_users"] == ["root"]
    assert api.post("/tasks", json={**TASK, "instance": instance["id"], "user": "root"}).status_code == 201
    assert api.post("/tasks", json={**TASK, "instance": instance["id"], "user": "backup"}).status_code == 403


def test_the_setting_applies_to_instances_without_a_list(settings: Settings, redis: Any) -> None:
    api = Api(create_app(dataclasses.replace(settings, login_users="backup nagios")).test_client())
    default, own = declare(api), declare(api, login_users=[])
    assert api.post("/tasks", json={**TASK, "instance": default["id"], "user": "nagios"}).status_code == 201
    assert api.post("/tasks", json={**TASK, "instance": own["id"], "user": "nagios"}).status_code == 403
    assert api.post("/tasks", json={**TASK, "instance": own["id"]}).status_code == 201


def test_an_instance_without_a_user_allows_only_its_list(api: Api) -> None:
    bare = declare(api, user=None)
    refused = api.post("/tasks", json={**TASK, "instance": bare["id"], "user": "deploy"})
    assert refused.status_code == 403
    assert refused.json["error"].endswith("allowed: none (set its user or login_users)")
    listed = declare(api, user=None, login_users=["deploy"])
    assert api.post("/tasks", json={**TASK, "instance": listed["id"], "user": "deploy"}).status_code == 201


def test_a_fan_out_or_array_naming_a_refused_user_creates_nothing_and_names_the_item(api: Api) -> None:
    first, second = declare(api), declare(api, user="other")
    refused = api.post("/tasks", json={**TASK, "target": {"tag": "web"}, "user": "deploy"})
    assert refused.status_code == 403
    assert refused.json["detail"] == {"instance": second["id"], "user": "deploy", "allowed": ["other"]}
    array = [{**TASK, "instance": first["id"]}, {**TASK, "instance": second["id"], "user": "root"}]
    refused = api.post("/tasks", json=array)
    assert refused.status_code == 403
    assert refused.json["error"].startswith("item 1: user 'root' may not log in to instance")
    assert refused.json["detail"]["item"] == 1
    assert api.get("/tasks").json["count"] == 0


def test_fixed_commands_obey_it_too(api: Api) -> None:
    instance = declare(api)
    refused = api.post("/commands/uptime", json={"instance": instance["id"], "user": "root"})
    assert refused.status_code == 403 and refused.json["detail"]["allowed"] == ["deploy"]


@pytest.mark.parametrize("value", [["Root"], ["a b"], "deploy", [1], ["x"] * 33])
def test_bad_login_users_are_422(api: Api, value: Any) -> None:
    response = api.post("/instances", json={"ip": "127.0.0.9", "tag": "web", "login_users": value})
    assert response.status_code == 422
    assert list(response.json["detail"]) == ["login_users"]
