"""POST /wsexec/instances/{id}/facts: one script over real SSH (the sshd is this machine), stored on the instance."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from typing import Any

import pytest

from tests.helpers import Api
from wsexec.instances.facts import SCRIPT
from wsexec.testing import free_port


def test_facts_are_gathered_stored_and_shown(api: Api, instance: dict[str, Any], workers: Any) -> None:
    workers.start(1)
    before = time.time()
    response = api.post(f"/instances/{instance['id']}/facts?wait=30")
    assert response.status_code == 200, response.json
    facts = response.json["facts"]
    assert facts["os"] == platform.freedesktop_os_release()["PRETTY_NAME"]
    assert facts["kernel"] == platform.release()
    assert facts["cpu_cores"] == os.cpu_count()
    assert 0 < facts["memory"]["available"] <= facts["memory"]["total"]
    root = next(disk for disk in facts["disks"] if disk["mount"] == "/")
    assert root["size"] == shutil.disk_usage("/").total  # both from statvfs, in 1 KiB blocks
    assert 0 < root["used"] <= root["size"] and root["available"] > 0
    assert 0 < facts["uptime_seconds"] <= time.clock_gettime(time.CLOCK_BOOTTIME) + 1
    assert before <= response.json["facts_at"] <= time.time()
    shown = api.as_user("viewer").get(f"/instances/{instance['id']}").json
    assert (shown["facts"], shown["facts_at"]) == (facts, response.json["facts_at"])
    task = api.get("/tasks?name=facts").json["results"][0]
    assert (task["state"], task["tag"], task["instance"], task["created_by"]) == ("DONE", "command", instance["id"],
                                                                                   "admin")


def test_script_prints_json_under_dash() -> None:
    """The same script run by Debian's /bin/sh (dash) locally: one JSON object, every field present."""
    printed = subprocess.run(["sh", "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    facts = json.loads(printed)
    assert set(facts) == {"os", "kernel", "cpu_cores", "memory", "disks", "uptime_seconds"}
    assert all(set(disk) == {"filesystem", "mount", "size", "used", "available"} for disk in facts["disks"])


@pytest.mark.parametrize("user", ["operator", "viewer"])
def test_facts_need_admin(api: Api, instance: dict[str, Any], user: str) -> None:
    response = api.as_user(user).post(f"/instances/{instance['id']}/facts")
    assert response.status_code == 403
    assert api.get("/tasks").json["count"] == 0


@pytest.mark.parametrize("wait", ["0", "301", "x"])
def test_bad_wait_is_422(api: Api, instance: dict[str, Any], wait: str) -> None:
    response = api.post(f"/instances/{instance['id']}/facts?wait={wait}")
    assert response.status_code == 422
    assert "wait" in response.json["detail"]


def test_unknown_instance_is_404(api: Api) -> None:
    response = api.post("/instances/999/facts")
    assert response.status_code == 404
    assert api.get("/tasks").json["count"] == 0


def test_not_gathered_in_time_is_504_with_the_task(api: Api, instance: dict[str, Any]) -> None:
    response = api.post(f"/instances/{instance['id']}/facts?wait=1")  # no worker runs: the task stays queued
    assert response.status_code == 504
    task = api.get(f"/tasks/{response.json['detail']['task']}").json
    assert (task["name"], task["state"]) == ("facts", "INIT")
    assert api.get(f"/instances/{instance['id']}").json["facts"] is None


def test_unreachable_instance_is_502(api: Api, workers: Any) -> None:
    closed = api.post("/instances", json={"ip": "127.0.0.1", "port": free_port(), "tag": "gone", "user": "nobody"})
    workers.start(1)
    response = api.post(f"/instances/{closed.json['id']}/facts")
    assert response.status_code == 502
    assert api.get(f"/tasks/{response.json['detail']['task']}").json["state"] == "ABORT"
    assert api.get(f"/instances/{closed.json['id']}").json["facts"] is None
