"""/wsexec/instances: declare, read, change and remove the servers tasks run on (admin only)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP74pObGtLagmD+Dthr3pQoGmgYAFNXTF/vaX54a6b/u"
ECDSA = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJNJRXdnrPC3yJMWn+13TBWey6U7B2HQbzixZPo4"
    "CToB4LQLCpPBUVVOJVcKe97gzi+obAs44eOMgwxGQHbeHEY="
)
FINGERPRINT = "SHA256:kTMs03z2ic3R8ZYMxjl/7x/xcyv4a0/vmDWsyrLwTV4"
MINIMAL = {"ip": "127.0.0.1", "tag": "web"}


def shown(instance: dict[str, Any]) -> dict[str, Any]:
    """The fields that have a value (every field is in the answer, null when unset)."""
    return {k: v for k, v in instance.items() if v is not None}


def declare(api: Api, **fields: Any) -> dict[str, Any]:
    response = api.post("/instances", json={**MINIMAL, **fields})
    assert response.status_code == 201, response.json
    return response.json


def test_declare_with_defaults_then_get(api: Api) -> None:
    created = declare(api)
    assert shown(created) == {"id": created["id"], "ip": "127.0.0.1", "port": 22, "tag": "web", "state": "ACTIVE"}
    assert created["user"] is created["host_key"] is None
    assert isinstance(created["id"], int)
    assert api.get(f"/instances/{created['id']}").json == created


def test_declare_with_every_field(api: Api) -> None:
    fields = {"ip": "db-1.example.com", "port": 2222, "tag": "db", "state": "DEACTIVATE", "user": "deploy",
              "host_key": ED25519}
    created = declare(api, **fields)
    assert shown(created) == {"id": created["id"], **fields}


def test_ids_are_increasing_integers(api: Api) -> None:
    ids = [declare(api)["id"] for _ in range(3)]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]


@pytest.mark.parametrize("ip", ["10.1.2.3", "::1", "2001:db8::42", "localhost", "web-1.example.com", "example.com."])
def test_ip_accepts_ipv4_ipv6_and_dns_names(api: Api, ip: str) -> None:
    assert declare(api, ip=ip)["ip"] == ip


@pytest.mark.parametrize("host_key", [ED25519, ECDSA, ED25519 + " root@web-1", FINGERPRINT])
def test_host_key_accepts_openssh_lines_and_fingerprints(api: Api, host_key: str) -> None:
    assert declare(api, host_key=host_key)["host_key"] == host_key


def test_old_deactive_spelling_is_accepted(api: Api) -> None:
    created = declare(api, state="DEACTIVE")
    assert created["state"] == "DEACTIVATE"
    assert api.patch(f"/instances/{created['id']}", json={"state": "ACTIVE"}).json["state"] == "ACTIVE"
    assert api.patch(f"/instances/{created['id']}", json={"state": "DEACTIVE"}).json["state"] == "DEACTIVATE"


BAD_FIELDS = [
    ("ip", ""),
    ("ip", "999.1.1.1"),
    ("ip", "1.2.3"),
    ("ip", "web 1"),
    ("ip", "-web.example.com"),
    ("ip", "http://web-1"),
    ("ip", "a" * 64 + ".example.com"),
    ("ip", "2001:db8::g"),
    ("ip", "0.0.0.0"),
    ("ip", "::"),
    ("ip", "224.0.0.1"),
    ("ip", "ff02::1"),
    ("ip", "255.255.255.255"),
    ("ip", "0x7f.0.0.1"),
    ("ip", "127.1"),
    ("ip", 10),
    ("ip", None),
    ("port", 0),
    ("port", 70000),
    ("port", -22),
    ("port", "x"),
    ("port", 22.5),
    ("port", True),
    ("port", None),
    ("port", [22]),
    ("port", 10**30),
    ("tag", ""),
    ("tag", "a b"),
    ("tag", "x:y"),
    ("tag", "t" * 65),
    ("tag", 5),
    ("state", "ON"),
    ("state", "active"),
    ("state", "DEACTIVATED"),
    ("state", 1),
    ("user", ""),
    ("user", "Root"),
    ("user", "1abc"),
    ("user", "-x"),
    ("user", "a b"),
    ("user", "root;reboot"),
    ("user", "u" * 33),
    ("user", "üser"),
    ("user", 0),
    ("host_key", ""),
    ("host_key", "ssh-ed25519"),
    ("host_key", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"),
    ("host_key", "ssh-ed25519 not*base64"),
    ("host_key", "ssh-ed25519 " + ECDSA.split()[1]),
    ("host_key", "SHA256:tooshort"),
    ("host_key", ED25519[:-8]),  # truncated by a bad copy-paste (still valid base64)
    ("host_key", "ssh-ed25519 " + "A" * 200_000),
    ("host_key", "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48"),
    ("host_key", {"type": "ssh-ed25519"}),
    ("id", 7),
    ("facts", {}),
    ("hostname", "web-1"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_bad_field_is_422_naming_it(api: Api, field: str, value: Any) -> None:
    response = api.post("/instances", json={**MINIMAL, field: value})
    assert response.status_code == 422, response.json
    assert list(response.json["detail"]) == [field]
    assert api.get("/instances").json["count"] == 0


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
@pytest.mark.parametrize("method", ["put", "patch"])
def test_bad_change_is_422_naming_it(api: Api, method: str, field: str, value: Any) -> None:
    created = declare(api)
    response = getattr(api, method)(f"/instances/{created['id']}", json={field: value})
    assert response.status_code == 422, response.json
    assert list(response.json["detail"]) == [field]
    assert api.get(f"/instances/{created['id']}").json == created


@pytest.mark.parametrize("missing", ["ip", "tag"])
def test_required_fields(api: Api, missing: str) -> None:
    body = {k: v for k, v in MINIMAL.items() if k != missing}
    response = api.post("/instances", json=body)
    assert response.status_code == 422
    assert response.json["detail"] == {missing: ["Missing data for required field."]}


@pytest.mark.parametrize("method", ["put", "patch"])
def test_change_only_the_given_fields(api: Api, method: str) -> None:
    created = declare(api, user="deploy", host_key=FINGERPRINT)
    changed = getattr(api, method)(f"/instances/{created['id']}", json={"port": 2200, "tag": "db"})
    assert changed.status_code == 200, changed.json
    assert changed.json == {**created, "port": 2200, "tag": "db"}
    assert api.get(f"/instances/{created['id']}").json == changed.json


def test_null_removes_the_optional_fields(api: Api) -> None:
    created = declare(api, user="deploy", host_key=ED25519)
    changed = api.patch(f"/instances/{created['id']}", json={"user": None, "host_key": None})
    assert shown(changed.json) == {k: v for k, v in shown(created).items() if k not in ("user", "host_key")}


def test_list_is_paginated_newest_first(api: Api) -> None:
    ids = [declare(api)["id"] for _ in range(3)]
    first = api.get("/instances?page_size=2").json
    assert first["count"] == 3
    assert [i["id"] for i in first["results"]] == [ids[2], ids[1]]
    assert first["previous"] is None
    second = api.client.get(first["next"], auth=api.auth).json
    assert [i["id"] for i in second["results"]] == [ids[0]]
    assert second["next"] is None


def test_list_filters_follow_changes(api: Api) -> None:
    web = declare(api, tag="web")
    db = declare(api, tag="db", state="DEACTIVATE")

    def listed(query: str) -> list[int]:
        return [i["id"] for i in api.get(f"/instances?{query}").json["results"]]

    assert listed("tag=web") == [web["id"]]
    assert listed("state=DEACTIVATE") == [db["id"]]
    assert listed("state=DEACTIVE") == [db["id"]]
    assert listed("tag=db&state=ACTIVE") == []
    api.patch(f"/instances/{db['id']}", json={"tag": "web", "state": "ACTIVE"})
    assert listed("tag=web") == [db["id"], web["id"]]
    assert listed("tag=db") == []
    assert listed("state=DEACTIVATE") == []


@pytest.mark.parametrize("query", ["state=ON", "state=", "page_size=101", "page=0"])
def test_bad_list_query_is_422(api: Api, query: str) -> None:
    response = api.get(f"/instances?{query}")
    assert response.status_code == 422
    assert list(response.json["detail"]) == [query.split("=")[0]]


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_unknown_id_is_404(api: Api, method: str) -> None:
    response = getattr(api, method)("/instances/999", json={"tag": "x"} if method in ("put", "patch") else None)
    assert response.status_code == 404
    assert response.json == {"error": "instance 999 not found", "detail": None}


def test_delete(api: Api) -> None:
    created = declare(api)
    assert api.delete(f"/instances/{created['id']}").status_code == 204
    assert api.get(f"/instances/{created['id']}").status_code == 404
    assert api.get("/instances").json["count"] == 0
    assert api.get("/instances?tag=web").json["count"] == 0


def test_delete_is_409_while_a_task_waits_then_ok(api: Api) -> None:
    created = declare(api, user="deploy")
    other = declare(api, user="deploy")
    task = api.post("/tasks", json={"name": "n", "tag": "t", "instance": created["id"], "script": "true"}).json
    assert task["state"] == "INIT"  # queued: no worker runs in this test
    response = api.delete(f"/instances/{created['id']}")
    assert response.status_code == 409
    assert response.json["error"] == f"instance {created['id']} has INIT or CURRENT tasks"
    assert api.get(f"/instances/{created['id']}").status_code == 200
    assert api.delete(f"/instances/{other['id']}").status_code == 204  # another instance's task does not block
    assert api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"}).json["state"] == "ABORT"
    assert api.delete(f"/instances/{created['id']}").status_code == 204
    assert api.get(f"/instances/{created['id']}").status_code == 404
