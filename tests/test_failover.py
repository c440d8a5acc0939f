"""Redis failover: a real primary, a replica and three redis-sentinel processes; the primary goes down mid-run.

The web app (real gunicorn), two workers and RQ all find the primary through the sentinels (WSEXEC_REDIS_SENTINELS).
While 200 tasks are being posted and run, the primary is shut down; the sentinels promote the replica. Every task
must end DONE or ABORT with a reason, none lost, none run twice on the host, and the API must answer 503 with
Retry-After during the switch, never 500.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis

from tests.conftest import readme_acl_rules
from tests.helpers import CRON_TOKEN, PASSWORDS, wait_for
from wsexec.config import Settings
from wsexec.store import connect
from wsexec.testing.servers import RedisServer, SentinelServer, SshServer

MASTER = "wsexec"
POSTS, PER_POST = 10, 20
# The sentinels wait this long before declaring the primary down: about as long as a web request's retries (about
# 5 s), far shorter than a worker's (about 30 s), so requests may see 503 during the switch while workers ride it out.
DOWN_AFTER_MS = 5000


class RedisSet:
    """A primary, its replica and three sentinels (quorum 2) on loopback."""

    def __init__(self, workdir: Path) -> None:
        self.primary = RedisServer(workdir / "primary", users={"wsexec": readme_acl_rules()}).start()
        self.replica = RedisServer(workdir / "replica", replica_of=self.primary).start()
        wait_for(lambda: self._admin(self.replica).info("replication").get("master_link_status") == "up")
        self.sentinels = [SentinelServer(workdir / f"sentinel{n}", self.primary, down_after_ms=DOWN_AFTER_MS).start()
                          for n in range(3)]
        wait_for(self._sentinels_agree, timeout=30)

    @staticmethod
    def _admin(server: RedisServer) -> Redis:
        return Redis(server.host, server.port, password=server.password, socket_timeout=2)

    def _ask(self, sentinel: SentinelServer) -> dict[str, Any]:
        return Redis(sentinel.host, sentinel.port, socket_timeout=2, decode_responses=True).sentinel_master(MASTER)

    def _sentinels_agree(self) -> bool:
        """Each sentinel knows the replica and the two other sentinels: a failover can be voted."""
        return all(int(m["num-slaves"]) == 1 and int(m["num-other-sentinels"]) == 2
                   for m in map(self._ask, self.sentinels))

    def primary_port(self) -> int:
        return int(self._ask(self.sentinels[0])["port"])

    @property
    def addresses(self) -> str:
        return " ".join(f"{s.host}:{s.port}" for s in self.sentinels)

    def stop(self) -> None:
        for daemon in [*self.sentinels, self.replica, self.primary]:
            daemon.stop()


@pytest.fixture
def redis_set(tmp_path: Path) -> Iterator[RedisSet]:
    servers = RedisSet(tmp_path / "redis-set")
    yield servers
    servers.stop()


@pytest.fixture
def settings(redis_set: RedisSet, client_key: Path, known_hosts: Path, password_hashes: dict[str, str]) -> Settings:
    """The suite's settings, with Redis reached only through the sentinels (the URL's host and port are unused)."""
    users = " ".join(f"{user}:{user}:{digest}" for user, digest in password_hashes.items())
    url = redis_set.primary.user_url("wsexec").replace(f":{redis_set.primary.port}/", ":1/")
    return Settings(redis_url=url, redis_sentinels=redis_set.addresses, redis_sentinel_master=MASTER, users=users,
                    tokens=f"nightly:operator:{hashlib.sha256(CRON_TOKEN.encode()).hexdigest()}",
                    ssh_key=str(client_key), known_hosts=str(known_hosts), connect_timeout=3.0, lease_seconds=4)


@pytest.fixture
def redis(settings: Settings) -> Redis:
    return connect(settings)


class Prober(threading.Thread):
    """GETs a list every 50 ms until stopped, keeping each answer's status and Retry-After."""

    def __init__(self, session: requests.Session, url: str) -> None:
        super().__init__(daemon=True)
        self.session, self.url = session, url
        self.answers: list[tuple[int, str | None]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            response = self.session.get(self.url, timeout=30)
            self.answers.append((response.status_code, response.headers.get("Retry-After")))


def post_until_created(session: requests.Session, url: str, body: list[dict[str, Any]], key: str) -> list[int]:
    """What a careful client does: retry a 503 after Retry-After with the same Idempotency-Key (no duplicates)."""
    deadline = time.monotonic() + 60
    while True:
        response = session.post(url, json=body, headers={"Idempotency-Key": key}, timeout=30)
        if response.status_code == 201:
            return [task["id"] for task in response.json()]
        assert response.status_code == 503, (response.status_code, response.text)
        assert response.headers.get("Retry-After"), response.headers
        assert time.monotonic() < deadline, "POST still refused a minute after the failover"
        time.sleep(min(float(response.headers["Retry-After"]), 0.5))


def test_the_primary_fails_over_in_the_middle_of_200_tasks(
    redis_set: RedisSet, gunicorn_url: str, workers: Any, sshd: SshServer, ssh_user: str, runs_dir: Path
) -> None:
    api = requests.Session()
    api.auth = ("admin", PASSWORDS["admin"])
    base = f"{gunicorn_url}/wsexec"
    declared = api.post(f"{base}/instances", json={"ip": sshd.host, "port": sshd.port, "tag": "t", "user": ssh_user})
    assert declared.status_code == 201, declared.text
    instance = declared.json()["id"]
    workers.start(2)
    prober = Prober(requests.Session(), f"{base}/tasks?page_size=1")
    prober.session.auth = api.auth
    prober.start()

    old_primary = redis_set.primary_port()
    created: list[int] = []
    for post in range(POSTS):
        body = [{"instance": instance, "name": f"item-{n}", "tag": "failover",
                 "script": f"sleep 0.2; echo {n} >> {runs_dir}/runs"}
                for n in range(post * PER_POST, (post + 1) * PER_POST)]
        created += post_until_created(api, f"{base}/tasks", body, key=f"failover-{post}")
        if post == 2:  # tasks queued, running and finished: now the primary goes (SIGTERM waits for the replica)
            redis_set.primary.stop()
    wait_for(lambda: redis_set.primary_port() != old_primary, timeout=60)
    assert redis_set.primary_port() == redis_set.replica.port

    seen: Counter[str] = Counter()

    def all_finished() -> list[dict[str, Any]] | None:
        tasks: list[dict[str, Any]] = []
        for page in (1, 2):
            response = api.get(f"{base}/tasks", params={"tag": "failover", "page_size": 100, "page": page}, timeout=30)
            assert response.status_code in (200, 503), response.text
            if response.status_code != 200:
                return None
            tasks += response.json()["results"]
        seen.clear()
        seen.update(task["state"] for task in tasks)
        return tasks if seen.keys() <= {"DONE", "ABORT"} else None

    try:
        tasks = wait_for(all_finished, timeout=120, interval=0.5)
    except AssertionError:
        raise AssertionError(f"tasks still unfinished after the failover: {dict(seen)}") from None
    prober.done.set()
    prober.join()

    # none lost, none created twice: exactly the 200 items, each once, with the ids the POSTs answered
    assert len(created) == POSTS * PER_POST == len(set(created))
    assert sorted(task["id"] for task in tasks) == sorted(created)
    assert sorted(task["name"] for task in tasks) == sorted(f"item-{n}" for n in range(POSTS * PER_POST))
    # each ended with a reason, none ran twice on the host, every DONE one ran exactly once
    for task in tasks:
        assert task["state"] == "DONE" and task["rc"] == 0 or task["state"] == "ABORT" and task["error"], task
    runs = Counter((runs_dir / "runs").read_text().split())
    assert max(runs.values()) == 1, [n for n, count in runs.items() if count > 1]
    for task in tasks:
        if task["state"] == "DONE":
            assert runs[task["name"].removeprefix("item-")] == 1, task
    # the API said "try again" during the switch, never 500
    statuses = Counter(status for status, _ in prober.answers)
    assert set(statuses) <= {200, 503}, statuses
    assert all(retry_after for status, retry_after in prober.answers if status == 503)
    assert statuses[200] > 0
    # and while no primary can be found at all, "try again" is what it says, for reads and writes alike
    redis_set.replica.stop()
    for response in (api.get(f"{base}/tasks/{created[0]}", timeout=30),
                     api.post(f"{base}/tasks", json={"instance": instance, "script": "true"}, timeout=30)):
        assert response.status_code == 503 and response.headers.get("Retry-After"), (response.status_code,
                                                                                     response.text)
        assert response.json()["error"]
