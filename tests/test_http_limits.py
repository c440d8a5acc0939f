"""Over real gunicorn: what a client controls (body framing, Host, the basic-auth name) is bounded and never trusted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import requests
from redis import Redis

from tests.conftest import PASSWORDS, Api
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
