"""Over real gunicorn: what a client controls (body framing, Host, the basic-auth name) is bounded and never trusted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from redis import Redis

from tests.helpers import CRON_TOKEN, PASSWORDS, Api, wait_for
from wsexec import create_app
from wsexec.config import Settings

ADMIN = ("admin", PASSWORDS["admin"])


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON string body of `total` bytes sent with Transfer-Encoding: chunked (requests does so for a generator)."""
    yield b'"'
    for start in range(0, total - 2, size):
        yield b"x" * min(size, total - 2 - start)
    yield b'"'


def test_chunked_body_over_the_limit_is_413_in_the_error_shape(gunicorn_url: str, settings: Settings) -> None:
    response = requests.post(f"{gunicorn_url}/wsexec/tasks", auth=ADMIN, data=chunks(settings.max_body + 1),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413, response.text
    assert response.json() == {"error": "request body too large", "detail": {"max_body": settings.max_body}}


def test_chunked_body_within_the_limit_reaches_the_view(gunicorn_url: str, settings: Settings) -> None:
    response = requests.post(f"{gunicorn_url}/wsexec/tasks", auth=ADMIN, data=chunks(settings.max_body),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 422, response.text


FORGED_HOST = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


def test_list_links_never_carry_a_forged_host(gunicorn_url: str) -> None:
    for tag in ("first", "second", "third"):
        requests.post(f"{gunicorn_url}/wsexec/instances", auth=ADMIN, json={"ip": "127.0.0.9", "tag": tag}, timeout=10)
    page = requests.get(f"{gunicorn_url}/wsexec/instances?page=2&page_size=1", auth=ADMIN, headers=FORGED_HOST,
                        timeout=10).json()
    assert (page["previous"], page["next"]) == ("/wsexec/instances?page=1&page_size=1",
                                                "/wsexec/instances?page=3&page_size=1")
    assert requests.get(gunicorn_url + page["next"], auth=ADMIN, timeout=10).json()["results"][0]["tag"] == "first"


@pytest.mark.parametrize("path", ["/wsexec//tasks", "/wsexec/tasks//1", "/wsexec/tasks/", "/wsexec//instances?page=2"])
def test_no_redirect_is_built_from_a_forged_host(gunicorn_url: str, path: str) -> None:
    """werkzeug would redirect "//tasks" to http://<Host>/wsexec/tasks: such paths are simply not found."""
    response = requests.get(gunicorn_url + path, auth=ADMIN, headers=FORGED_HOST, allow_redirects=False, timeout=10)
    assert (response.status_code, response.headers.get("Location")) == (404, None)
    assert set(response.json()) == {"error", "detail"}


def test_links_are_absolute_on_the_public_url_when_one_is_set(settings: Settings, redis: Redis) -> None:
    api = Api(create_app(dataclasses.replace(settings, public_url="https://wsexec.example.com/")).test_client())
    for tag in ("first", "second"):
        api.post("/instances", json={"ip": "127.0.0.9", "tag": tag})
    page = api.get("/instances?page_size=1", headers=FORGED_HOST).json
    assert page["next"] == "https://wsexec.example.com/wsexec/instances?page_size=1&page=2"


FORGED_NAME = 'mallory\n127.0.0.1 - admin [03/Dec/2026:06:00:00 +0000] "DELETE /wsexec/instances/1" \x1b[2J"'


def test_the_access_log_names_only_authenticated_users_escaped(gunicorn_url: str, tmp_path: Path) -> None:
    """gunicorn's %(u)s would print the Authorization header's name as sent: a newline forges a line, ESC codes."""
    log = tmp_path / "gunicorn.log"  # the gunicorn_url fixture's stdout: the access log
    forged = requests.get(f"{gunicorn_url}/wsexec/tasks?forged", auth=(FORGED_NAME, "x"), timeout=10,
                          headers={"Referer": 'a\\" "b'})  # gunicorn itself refuses control characters in headers
    assert forged.status_code == 401
    assert requests.get(f"{gunicorn_url}/wsexec/tasks?genuine", auth=ADMIN, timeout=10).ok
    token = requests.get(f"{gunicorn_url}/wsexec/tasks?token", timeout=10,
                         headers={"Authorization": f"Bearer {CRON_TOKEN}"})
    assert token.ok
    def logged() -> list[str]:
        lines = [line for line in log.read_text().splitlines() if "/wsexec/tasks?" in line]
        return lines if len(lines) == 3 else []

    lines = wait_for(logged)
    assert "\x1b" not in log.read_text() and "mallory" not in log.read_text()
    forged_line, genuine_line, token_line = lines
    assert forged_line.split()[2] == "-"
    assert ' "a\\\\\\" \\"b" ' in forged_line  # a\" "b: its backslash and quotes cannot end the field early
    assert genuine_line.split()[2] == "admin"
    assert token_line.split()[2] == "nightly"
