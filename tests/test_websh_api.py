"""websh's API without a websocket (Flask's test client): who may open, see and change sessions, bad input, and
sessions no web process serves any more."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis import Redis

from tests.helpers import CRON_TOKEN, Api
from wsexec.store import Store, keys
from wsexec.testing import SshServer
from wsexec.websh import service


@pytest.fixture
def api_instance(api: Api, sshd: SshServer, ssh_user: str) -> dict[str, Any]:
    return api.created("/instances", {"ip": sshd.host, "port": sshd.port, "tag": "websh", "user": ssh_user})


def test_who_may_open_see_and_change_sessions(api: Api, api_instance: dict[str, Any]) -> None:
    body = {"instance": api_instance["id"], "rows": 24, "cols": 80}
    assert api.as_user("viewer").post("/websh/sessions", json=body).status_code == 403
    mine = api.as_user("operator").created("/websh/sessions", body)
    assert mine["owner"] == "operator" and mine["user"] == api_instance["user"] and mine["state"] == "PENDING"
    assert mine["websocket"].startswith(f"ws://localhost/wsexec/websh/sessions/{mine['id']}/connect?ticket=")
    other = {"Authorization": f"Bearer {CRON_TOKEN}"}  # another operator
    assert api.client.get(f"/wsexec/websh/sessions/{mine['id']}", headers=other).status_code == 404
    assert api.client.patch(f"/wsexec/websh/sessions/{mine['id']}", headers=other,
                            json={"rows": 5, "cols": 5}).status_code == 404
    assert api.client.get("/wsexec/websh/sessions", headers=other).json["count"] == 0
    assert api.as_user("operator").get("/websh/sessions").json["results"][0]["id"] == mine["id"]
    assert api.get("/websh/sessions").json["count"] == 1  # an admin sees everyone's
    shown = api.as_user("operator").get(f"/websh/sessions/{mine['id']}").json
    assert shown["websocket"] is None and "ticket" not in json.dumps(shown)  # the ticket is shown once
    assert api.as_user("viewer").get(f"/websh/sessions/{mine['id']}").status_code == 404
    assert api.as_user("operator").delete(f"/websh/sessions/{mine['id']}").status_code == 204
    assert api.get(f"/websh/sessions/{mine['id']}").json["state"] == "ENDED"


@pytest.mark.parametrize("body, field", [
    ({"rows": 0, "cols": 80}, "rows"), ({"rows": 24, "cols": 0}, "cols"), ({"rows": 24.5, "cols": 80}, "rows"),
    ({"rows": 24, "cols": 5000}, "cols"), ({"cols": 80}, "rows"), ({"rows": "x", "cols": 80}, "rows"),
    ({"rows": 24, "cols": 80, "user": "Root!"}, "user"),
])
def test_bad_sizes_are_422(api: Api, api_instance: dict[str, Any], body: dict[str, Any], field: str) -> None:
    response = api.as_user("operator").post("/websh/sessions", json={"instance": api_instance["id"], **body})
    assert response.status_code == 422 and field in response.json["detail"], response.json


def test_unknown_instance_is_404_and_a_login_user_must_be_allowed(api: Api, api_instance: dict[str, Any]) -> None:
    assert api.post("/websh/sessions", json={"instance": 999, "rows": 24, "cols": 80}).status_code == 404
    response = api.post("/websh/sessions", json={"instance": api_instance["id"], "rows": 2, "cols": 2, "user": "root"})
    assert response.status_code == 403 and response.json["detail"]["allowed"] == [api_instance["user"]]


def test_a_session_no_web_process_serves_any_more_ends_as_lost(api: Api, api_instance: dict[str, Any],
                                                               store: Store, redis: Redis) -> None:
    """Its web process renews an alive key while it serves the websocket; without it, the session ends on read."""
    session = api.as_user("operator").created("/websh/sessions", {"instance": api_instance["id"], "rows": 5, "cols": 5})
    ticket = session["websocket"].partition("ticket=")[2]
    assert store.websh.admit(session["id"], service.digest(ticket)) == "ok"  # as its connect would
    assert api.get(f"/websh/sessions/{session['id']}").json["state"] == "ACTIVE"
    redis.delete(keys.websh_alive(session["id"]))  # the process holding it was killed: nobody renews it
    lost = api.get(f"/websh/sessions/{session['id']}").json
    assert lost["state"] == "ENDED" and lost["close_reason"].startswith("lost: no web process serves it")
    assert api.get("/websh/sessions").json["results"][0]["state"] == "ENDED"
