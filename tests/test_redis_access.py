"""Redis refuses whoever has no password: a stranger on the network, or a script that a task runs on a target
that can reach it, can neither read nor rewrite a queued task. wsexec's own ACL user can touch only its keys."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from tests.helpers import Api, wait_finished
from wsexec.testing import RedisServer

LATER = 1893456000  # 2030: the victim stays queued (INIT) for the whole test


def queued_victim(api: Api, instance: dict[str, Any]) -> dict[str, Any]:
    """An admin's task waiting for its time: the one an attacker would rewrite."""
    return api.create_task(instance, "echo admin", scheduled_at=LATER)


def raw_command(server: RedisServer, command: bytes) -> bytes:
    """What Redis answers a client that sends one command without AUTH (as `redis-cli` or /dev/tcp would)."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(256)


def test_a_client_without_the_password_gets_noauth(api: Api, instance: dict, redis_server: RedisServer) -> None:
    victim = queued_victim(api, instance)
    key = f"wsexec:task:{victim['id']}".encode()
    for command in (b"HGETALL " + key, b"HSET " + key + b" script x", b"KEYS *", b"FLUSHALL"):
        assert raw_command(redis_server, command + b"\r\n").startswith(b"-NOAUTH"), command
    stranger = Redis(host=redis_server.host, port=redis_server.port)
    with pytest.raises(AuthenticationError):
        stranger.hset(key, "script", "x")
    with pytest.raises(AuthenticationError):  # a wrong password is no better
        Redis(host=redis_server.host, port=redis_server.port, password="guess").get(key)
    assert api.get(f"/tasks/{victim['id']}").json["script"] == "echo admin"


def test_a_script_on_a_target_cannot_touch_wsexec_keys(api: Api, instance: dict, workers: Any,
                                                       redis_server: RedisServer) -> None:
    victim = queued_victim(api, instance)
    key, port = f"wsexec:task:{victim['id']}", redis_server.port
    attack = f"""redis-cli -h 127.0.0.1 -p {port} hset {key} script 'echo pwned'
redis-cli -h 127.0.0.1 -p {port} hgetall {key}
bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; printf "HSET {key} script x\\r\\n" >&3; read -r answer <&3; echo "$answer"'
"""
    attacker = api.create_task(instance, attack)
    workers.start(1)
    task = wait_finished(api, attacker["id"])
    assert task["state"] == "DONE", task
    output = task["stdout"] + task["stderr"]
    assert output.count("NOAUTH") == 3, output
    assert "admin" not in output  # hgetall read nothing
    after = api.get(f"/tasks/{victim['id']}").json
    assert (after["script"], after["state"]) == ("echo admin", "INIT")


def test_wsexec_acl_user_reaches_only_its_keys_and_no_admin_command(redis: Redis, redis_server: RedisServer) -> None:
    redis.set("wsexec:probe", "1")
    redis.delete("wsexec:probe")
    with pytest.raises(NoPermissionError):
        redis.set("other-app:key", "x")
    for command in (("CONFIG", "GET", "requirepass"), ("FLUSHALL",), ("KEYS", "*"), ("ACL", "LIST")):
        with pytest.raises(ResponseError, match="NOPERM|no permissions"):
            redis.execute_command(*command)
    assert Redis.from_url(redis_server.url).get("other-app:key") is None
