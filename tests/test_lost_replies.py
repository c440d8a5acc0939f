"""A reply Redis never delivered: the command ran, the connection dropped before its answer, and the client (which
rides out restarts by retrying) sends it again. The task scripts must take their own repeat for what it is: a claim
repeated finds the task CURRENT, and must not take it for another worker's (the task then stayed CURRENT with no one
running it: test_engine's Redis restart test caught it about once in 30 runs). A Redis that restarted has lost its
scripts too, and redis-py loads a pipeline's scripts only before its first try: the repeat then meets NOSCRIPT."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis import Redis

from tests.helpers import Api
from wsexec.config import Settings
from wsexec.store import Store, TaskState, connect, keys


class ReplyDropper:
    """A TCP proxy to Redis that, once armed, passes the next request containing `marker` on and then closes the
    client's connection instead of relaying the reply."""

    def __init__(self, upstream: tuple[str, int], marker: bytes) -> None:
        self.upstream, self.marker = upstream, marker
        self.on_drop: Callable[[], Any] = lambda: None  # what else happens as the reply is lost
        self.armed = threading.Event()
        self.dropped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            dropping = threading.Event()
            threading.Thread(target=self._requests, args=(client, server, dropping), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, dropping), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, dropping: threading.Event) -> None:
        while data := _recv(client):
            if self.armed.is_set() and self.marker in data:
                self.armed.clear()
                dropping.set()
            server.sendall(data)

    def _replies(self, server: socket.socket, client: socket.socket, dropping: threading.Event) -> None:
        while data := _recv(server):
            if dropping.is_set():  # the request ran in Redis: its caller sees only a dropped connection
                self.on_drop()
                self.dropped.set()
                break
            client.sendall(data)
        for sock in (client, server):
            sock.close()

    def close(self) -> None:
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def dropper(settings: Settings) -> Iterator[ReplyDropper]:
    url = urlsplit(settings.redis_url)
    proxy = ReplyDropper((url.hostname or "127.0.0.1", url.port or 6379), b"EVALSHA")
    yield proxy
    proxy.close()


def proxied_store(settings: Settings, proxy: ReplyDropper) -> Store:
    url = urlsplit(settings.redis_url)
    netloc = f"{url.netloc.rpartition('@')[0]}@127.0.0.1:{proxy.port}"
    proxied = replace(settings, redis_url=urlunsplit(url._replace(netloc=netloc)))
    return Store.from_settings(connect(proxied), proxied)


@pytest.mark.parametrize("restarted", [False, True], ids=["connection-lost", "redis-restarted"])
def test_a_claim_whose_reply_was_lost_is_still_the_claimers(
    api: Api, instance: dict[str, Any], settings: Settings, store: Store, dropper: ReplyDropper, redis: Redis,
    restarted: bool
) -> None:
    task = api.create_task(instance, "true")
    if restarted:
        dropper.on_drop = redis.script_flush  # what a restarted Redis has forgotten
    proxied = proxied_store(settings, dropper)
    assert proxied.hold([task["id"]], "w1", 30, "w1/a") == [task["id"]]
    dropper.armed.set()
    claimed = proxied.claim(task["id"], "w1", 30, "w1/a")
    assert dropper.dropped.is_set()  # the first claim's answer was lost: what follows is the client's repeat
    assert claimed is not None and claimed["state"] == TaskState.CURRENT.value
    assert store.claim(task["id"], "w2", 30, "w2/b") is None  # another worker's claim still finds it taken


def test_a_hold_whose_reply_was_lost_as_redis_restarted_holds(
    api: Api, instance: dict[str, Any], settings: Settings, store: Store, dropper: ReplyDropper, redis: Redis
) -> None:
    task = api.create_task(instance, "true")
    dropper.on_drop = redis.script_flush
    dropper.armed.set()
    assert proxied_store(settings, dropper).hold([task["id"]], "w1", 30, "w1/a") == [task["id"]]
    assert dropper.dropped.is_set()
    assert redis.zscore(keys.HELD, task["id"]) is not None


def test_a_finish_whose_reply_was_lost_ends_the_task_once(
    api: Api, instance: dict[str, Any], settings: Settings, store: Store, dropper: ReplyDropper
) -> None:
    task = api.create_task(instance, "true")
    proxied = proxied_store(settings, dropper)
    proxied.hold([task["id"]], "w1", 30, "w1/a")
    assert proxied.claim(task["id"], "w1", 30, "w1/a") is not None
    dropper.armed.set()
    proxied.finish(task["id"], TaskState.DONE, rc=0)
    assert dropper.dropped.is_set()
    finished = store.get_task(task["id"])
    assert (finished["state"], finished["rc"]) == (TaskState.DONE.value, 0)
