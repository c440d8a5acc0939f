"""End to end over HTTP: real gunicorn, a real worker process, a real sshd, as a curl user would see it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.helpers import PASSWORDS, wait_for
from wsexec.testing import SshServer

ADMIN = ("admin", PASSWORDS["admin"])
OPERATOR = ("operator", PASSWORDS["operator"])


def test_declare_post_and_poll_until_done(gunicorn_url: str, workers: Any, sshd: SshServer, ssh_user: str) -> None:
    api = f"{gunicorn_url}/wsexec"
    workers.start(1)
    response = requests.post(f"{api}/instances", auth=ADMIN, timeout=10,
                             json={"ip": sshd.host, "port": sshd.port, "tag": "e2e", "user": ssh_user})
    assert response.status_code == 201, response.text
    instance = response.json()

    response = requests.post(f"{api}/tasks", auth=OPERATOR, timeout=10, json={
        "name": "e2e", "tag": "e2e", "instance": instance["id"],
        "script": "echo 'héllo ✓'; echo oops >&2; exit 4",
    })
    assert response.status_code == 201, response.text
    task = response.json()
    assert (task["state"], task["created_by"]) == ("INIT", "operator"), task

    def finished() -> dict[str, Any] | None:
        current = requests.get(f"{api}/tasks/{task['id']}", auth=OPERATOR, timeout=10).json()
        return current if current["state"] in ("DONE", "ABORT") else None

    done = wait_for(finished, timeout=30)
    assert (done["state"], done["rc"]) == ("DONE", 4), done
    assert (done["stdout"], done["stderr"]) == ("héllo ✓\n", "oops\n")
    assert done["end"] >= done["start"]

    health = requests.get(f"{api}/health", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["workers"] >= 1


def test_health_without_workers_is_degraded(gunicorn_url: str) -> None:
    """No worker process: health still answers without credentials, but says it cannot run tasks."""
    health = requests.get(f"{gunicorn_url}/wsexec/health", timeout=10)
    assert health.status_code == 503, health.text
    assert health.json() == {"error": "no worker seen", "detail": {"status": "degraded", "redis": True, "workers": 0}}


@pytest.mark.parametrize(("auth", "headers", "challenge"), [
    pytest.param(None, {}, "basic", id="none"),
    pytest.param(("admin", "wrong"), {}, "basic", id="bad-password"),
    pytest.param(None, {"Authorization": "Bearer not-a-token"}, "bearer", id="bad-token"),
])
def test_credentials_required_over_http(gunicorn_url: str, auth: tuple[str, str] | None, headers: dict[str, str],
                                        challenge: str) -> None:
    """401, JSON, and a challenge in the scheme the client tried (basic by default, so curl --anyauth works)."""
    response = requests.get(f"{gunicorn_url}/wsexec/tasks", auth=auth, headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].lower().startswith(challenge)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]
