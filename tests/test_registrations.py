"""Self-registration: an admin issues a token, a new server runs register.sh (the real script, with sh and curl,
against real gunicorn), and wsexec then runs tasks on it over SSH with the host key it registered pinned."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import PASSWORDS, Api, WorkerProcesses, wait_finished, wait_for
from wsexec.testing import SshServer, free_port

ADMIN = ("admin", PASSWORDS["admin"])


def issue(api: Api, **fields: Any) -> dict[str, Any]:
    return api.created("/registrations", {"tag": "fresh", "user": "wsexec-test", **fields})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class NewServer:
    """A fresh machine: its login user's HOME (empty, owned by it) and an sshd that reads that HOME's authorized_keys,
    with a host key of its own; register.sh runs there as that user, with sh and curl."""

    def __init__(self, root: Path, user: str) -> None:
        self.user = pwd.getpwnam(user)
        self.home = root / "home"
        self.home.mkdir()
        os.chown(self.home, self.user.pw_uid, self.user.pw_gid)
        self.sshd = SshServer(root / "sshd", "127.0.0.1", free_port("127.0.0.1"), user,
                              self.home / ".ssh" / "authorized_keys")
        self.sshd.start()
        self.host_key_file = root / "ssh_host_ed25519_key.pub"  # readable by the user (the sshd's dir is not)
        shutil.copy(f"{self.sshd.host_key}.pub", self.host_key_file)
        self.host_key_file.chmod(0o644)

    @property
    def authorized_keys(self) -> Path:
        return self.home / ".ssh" / "authorized_keys"

    def run(self, url: str, token: str, as_user: bool = True, **variables: str) -> subprocess.CompletedProcess[str]:
        """`curl -fsS -H "Authorization: Bearer $TOKEN" URL/wsexec/register.sh | sh`, as the README says."""
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "WSEXEC_HOST_KEY_FILE": str(self.host_key_file),
               "WSEXEC_PORT": str(self.sshd.port), "TOKEN": token, **variables}
        command = f'curl -fsS -H "Authorization: Bearer $TOKEN" {url}/wsexec/register.sh | sh'
        switch = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups"]
        return subprocess.run([*(switch if as_user else []), "sh", "-c", command], env=env, capture_output=True,
                              text=True, timeout=60)


@pytest.fixture
def new_server(ssh_user: str) -> Iterator[NewServer]:
    root = Path(tempfile.mkdtemp(prefix="wsexec-new-server-"))  # not pytest's tmp_path: root-only, the user can't enter
    root.chmod(0o755)
    server = NewServer(root, ssh_user)
    yield server
    server.sshd.stop()
    shutil.rmtree(root)


def test_a_new_server_registers_itself_and_runs_tasks_once_an_admin_activates_it(
    api: Api, gunicorn_url: str, workers: WorkerProcesses, new_server: NewServer, client_key: Path
) -> None:
    registration = issue(api, uses=2, expires_in=600)
    assert registration["command"] == (f'curl -fsS -H "Authorization: Bearer {registration["token"]}" '
                                       f'http://localhost/wsexec/register.sh | sh')
    result = new_server.run(gunicorn_url, registration["token"])
    assert result.returncode == 0, result.stderr
    service_key = Path(f"{client_key}.pub").read_text().split()[1]
    assert [line.split()[1] for line in new_server.authorized_keys.read_text().splitlines()] == [service_key]
    assert new_server.authorized_keys.stat().st_mode & 0o777 == 0o600
    assert (new_server.home / ".ssh").stat().st_mode & 0o777 == 0o700

    (instance,) = api.get("/instances").json["results"]
    assert instance == {**instance, "ip": "127.0.0.1", "port": new_server.sshd.port, "tag": "fresh",
                        "user": "wsexec-test", "state": "DEACTIVATE", "host_key": new_server.sshd.host_key_line}
    assert api.get(f"/registrations/{registration['id']}").json["uses_left"] == 1
    refused = api.post("/tasks", json={"name": "t", "tag": "t", "instance": instance["id"], "script": "true"})
    assert refused.status_code == 409 and "not ACTIVE" in refused.json["error"], refused.json

    assert api.patch(f"/instances/{instance['id']}", json={"state": "ACTIVE"}).status_code == 200
    workers.start()
    task = api.create_task(instance, "echo registered on $(id -un)")
    done = wait_finished(api, task["id"], timeout=60)
    assert (done["state"], done["rc"], done["stdout"]) == ("DONE", 0, "registered on wsexec-test\n"), done

    again = new_server.run(gunicorn_url, registration["token"])  # same address and port: an admin must decide
    assert again.returncode != 0
    assert "409" in again.stderr and f"instance {instance['id']} already has address 127.0.0.1" in again.stderr
    assert len(new_server.authorized_keys.read_text().splitlines()) == 1, "the key was added twice"
    entries = api.get("/audit").json["results"]
    registered = [e for e in entries if e["action"] == "instance.register"]
    assert [(e["user"], e["target"]) for e in registered] == [(f"registration:{registration['id']}",
                                                               f"instance:{instance['id']}")]


def test_a_second_run_adds_the_key_once_and_the_script_refuses_the_wrong_user(
    api: Api, gunicorn_url: str, new_server: NewServer
) -> None:
    registration = issue(api, uses=2, activate=True)
    wrong_user = new_server.run(gunicorn_url, registration["token"], as_user=False)  # root, not wsexec-test
    assert wrong_user.returncode != 0 and "run this as wsexec-test" in wrong_user.stderr
    assert not new_server.authorized_keys.exists()

    first = new_server.run(gunicorn_url, registration["token"])
    assert first.returncode == 0, first.stderr
    second = new_server.run(gunicorn_url, registration["token"], WSEXEC_ADDRESS="127.0.0.2")
    assert second.returncode == 0, second.stderr
    assert "already in" in second.stdout
    assert len(new_server.authorized_keys.read_text().splitlines()) == 1
    instances = api.get("/instances").json["results"]
    assert sorted((i["ip"], i["state"]) for i in instances) == [("127.0.0.1", "ACTIVE"), ("127.0.0.2", "ACTIVE")]
    assert api.get(f"/registrations/{registration['id']}").json["uses_left"] == 0
    used_up = new_server.run(gunicorn_url, registration["token"], WSEXEC_ADDRESS="127.0.0.3")
    assert "returned error: 401" in used_up.stderr  # curl -f: register.sh itself is refused, sh gets nothing to run
    assert len(api.get("/instances").json["results"]) == 2


def test_uses_are_taken_atomically_by_concurrent_registrations(
    api: Api, gunicorn_url: str, sshd: SshServer
) -> None:
    token = issue(api, uses=1)["token"]

    def register(port: int) -> int:
        body = {"host_key": sshd.host_key_line, "port": port, "name": f"racer-{port}"}
        answer = requests.post(f"{gunicorn_url}/wsexec/register", json=body, headers=bearer(token), timeout=60)
        return answer.status_code

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = sorted(pool.map(register, range(2200, 2212)))
    assert statuses == [201] + [401] * 11
    assert api.get("/instances").json["count"] == 1


def register_body(sshd: SshServer, **fields: Any) -> dict[str, Any]:
    return {"host_key": sshd.host_key_line, "name": "web-01", **fields}


def test_register_pins_the_key_with_the_tokens_tag_user_and_port(api: Api, sshd: SshServer) -> None:
    token = issue(api, tag="web", port=2022, activate=True)["token"]
    answer = api.client.post("/wsexec/register", json=register_body(sshd, address="10.0.0.5"), headers=bearer(token))
    assert answer.status_code == 201, answer.json
    assert answer.json == {**answer.json, "ip": "10.0.0.5", "port": 2022, "tag": "web", "user": "wsexec-test",
                           "state": "ACTIVE", "host_key": sshd.host_key_line}


def test_expired_revoked_and_used_up_tokens_are_refused(api: Api, sshd: SshServer) -> None:
    expiring = issue(api, expires_in=1)["token"]
    time.sleep(1.2)
    for token, reason in [(expiring, "expired")]:
        for response in (api.client.get("/wsexec/register.sh", headers=bearer(token)),
                         api.client.post("/wsexec/register", json=register_body(sshd), headers=bearer(token))):
            assert response.status_code == 401 and reason in response.json["error"], response.json
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    revoked = issue(api)
    assert api.delete(f"/registrations/{revoked['id']}").status_code == 204
    response = api.client.get("/wsexec/register.sh", headers=bearer(revoked["token"]))
    assert response.status_code == 401 and "not a registration token" in response.json["error"]
    once = issue(api)["token"]
    assert api.client.post("/wsexec/register", json=register_body(sshd), headers=bearer(once)).status_code == 201
    response = api.client.post("/wsexec/register", json=register_body(sshd, port=2), headers=bearer(once))
    assert response.status_code == 401 and "used up" in response.json["error"]
    assert api.get("/instances").json["count"] == 1


def test_an_address_another_instance_holds_is_409(api: Api, sshd: SshServer, instance: dict[str, Any]) -> None:
    token = issue(api, uses=5)["token"]
    body = register_body(sshd, address=sshd.host, port=sshd.port)
    response = api.client.post("/wsexec/register", json=body, headers=bearer(token))
    assert response.status_code == 409, response.json
    assert response.json["detail"] == {"instance": instance["id"]}
    assert "an admin must delete it" in response.json["error"]
    assert api.get("/registrations").json["results"][0]["uses_left"] == 5  # a refusal takes no use


@pytest.mark.parametrize("user", ["operator", "viewer"])
def test_only_admins_see_or_issue_registrations(api: Api, user: str) -> None:
    registration = issue(api)
    as_user = api.as_user(user)
    assert as_user.get("/registrations").status_code == 403
    assert as_user.get(f"/registrations/{registration['id']}").status_code == 403
    assert as_user.post("/registrations", json={"tag": "x", "user": "root"}).status_code == 403
    assert as_user.delete(f"/registrations/{registration['id']}").status_code == 403


def test_the_token_is_shown_once_and_opens_nothing_else(api: Api, sshd: SshServer) -> None:
    registration = issue(api)
    token = registration["token"]
    listed = api.get("/registrations").json["results"]
    assert [r["id"] for r in listed] == [registration["id"]]
    assert token not in str(listed) and "digest" not in listed[0]
    for method, path in [("get", "/wsexec/tasks"), ("get", "/wsexec/instances"), ("get", "/wsexec/registrations"),
                         ("post", "/wsexec/registrations")]:
        response = getattr(api.client, method)(path, headers=bearer(token), json={"tag": "x", "user": "root"})
        assert response.status_code == 401, (method, path)
    as_admin = api.client.get("/wsexec/register.sh", auth=ADMIN)  # a user's credentials don't open it either
    assert as_admin.status_code == 401 and as_admin.is_json
    assert api.client.post("/wsexec/register", json=register_body(sshd), auth=ADMIN).status_code == 401
    script = api.client.get("/wsexec/register.sh", headers=bearer(token))
    assert script.status_code == 200 and script.mimetype == "text/x-shellscript"
    assert script.text.startswith("#!/bin/sh") and "login_user=wsexec-test" in script.text


@pytest.mark.parametrize(("body", "status"), [
    ("{not json", 400),
    ("[]", 422),
    ('{"host_key": "ssh-ed25519 AAAA"}', 422),
    ('{"host_key": "SHA256:x", "port": 0}', 422),
    ('{"address": "224.0.0.1"}', 422),
    ('{"name": "a\\u0007b", "host_key": "SHA256:x"}', 422),
])
def test_garbage_registrations_are_400_or_422(api: Api, body: str, status: int) -> None:
    token = issue(api)["token"]
    response = api.client.post("/wsexec/register", data=body, content_type="application/json", headers=bearer(token))
    assert response.status_code == status and response.is_json, response.data
    assert api.get("/registrations").json["results"][0]["uses_left"] == 1


@pytest.mark.parametrize("body", [{"user": "root"}, {"tag": "x", "user": "Root!"}, {"tag": "x", "user": "r", "uses": 0},
                                  {"tag": "x", "user": "r", "expires_in": 31 * 86400}, {"tag": "x", "user": "r",
                                                                                         "port": 70000}])
def test_bad_registrations_are_422(api: Api, body: dict[str, Any]) -> None:
    response = api.post("/registrations", json=body)
    assert response.status_code == 422 and response.is_json, response.json


def test_an_api_without_the_key_gives_out_the_one_the_workers_published(
    settings: Any, redis: Any, client_key: Path, tmp_path: Path
) -> None:
    from wsexec import create_app

    api = Api(create_app(dataclasses.replace(settings, ssh_key=str(tmp_path / "not-on-this-host"))).test_client())
    response = api.post("/registrations", json={"tag": "fresh", "user": "wsexec-test"})
    assert response.status_code == 503, response.json  # no key here, no worker yet: refused now, not on the servers
    assert "no worker has published" in response.json["error"]
    workers = WorkerProcesses(settings)  # a worker on "another machine": it has the key, and says which it is
    try:
        workers.start(1)
        wait_for(lambda: api.post("/registrations", json={"tag": "fresh", "user": "wsexec-test"}).status_code == 201,
                 timeout=30)
    finally:
        workers.stop()
    token = issue(api)["token"]
    script = api.client.get("/wsexec/register.sh", headers=bearer(token)).get_data(as_text=True)
    assert Path(f"{client_key}.pub").read_text().split()[1] in script
