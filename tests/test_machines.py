"""Many machines, for real: the API, Redis and the sshd targets in one network namespace, two workers in two others.

Each worker "machine" has its own address, reaches Redis and the targets only over the veth link the test makes, and
shares nothing with the API but Redis: its own working directory, HOME, temp dir, copy of the service key and (empty)
known_hosts; the targets' host keys are pinned on the instances, in Redis. One worker's wall clock is 3 s ahead
(tests/clock). A 200-task run is spread over both; one machine loses power mid-run (every process in its namespace
frozen, its link cut, all killed): every task must end DONE, or ABORT because its worker was lost, none run twice,
and the other machine runs the rest.

Its own Redis, gunicorn and sshd daemons, in namespaces named after this process: it runs beside the rest of the suite.
The other test here: RQ's scheduler lock, which a lost machine keeps until it expires, is taken over then.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis
from rq.scheduler import RQScheduler

from tests.conftest import readme_acl_rules
from tests.helpers import PASSWORDS, ROOT, Api, WorkerProcesses, wait_finished, wait_for
from wsexec.config import Settings
from wsexec.testing import RedisServer, SshServer
from wsexec.testing.netns import Namespace, Network

TASKS, TARGETS = 200, 4
RUN_SECONDS = 3  # each task's run: long beside the instant between seeing a machine busy and killing it
SKEW = 3  # seconds the second machine's clock is ahead
CLOCK = Path(__file__).with_name("clock")  # its sitecustomize.py skews the clock of a Python that has it on its path
LOST = "worker lost"  # workers/job.py: the error of a task whose worker died ("worker lost; " + what became of it)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def network() -> Iterator[Network]:
    """Namespaces of this run only, deleted (everything in them killed) whatever the test did."""
    with Network() as net:
        yield net


@dataclass
class Fleet:
    """The hub's services as the machines see them, and the machines' worker processes."""

    network: Network
    settings: Settings
    api: str
    targets: list[SshServer]
    workdir: Path
    addresses: dict[str, str] = field(default_factory=dict)  # machine name -> its address
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def spawn(self, argv: list[str], log: Path, cwd: Path, env: dict[str, str]) -> None:
        self.logs.append(log)
        with log.open("ab") as out:
            self.procs.append(subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=subprocess.STDOUT))

    def log_tails(self, chars: int = 3000) -> str:
        """What the API and the workers said last: why a failed run failed."""
        return "\n".join(f"--- {log}:\n{log.read_text(errors='replace')[-chars:]}" for log in self.logs if log.exists())

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()

    def start_worker(self, name: str, key: Path, skewed: bool = False) -> Namespace:
        """A machine of its own running one worker process: nothing on its disk but what its operator put there."""
        machine, self.addresses[name] = self.network.machine(name)
        home = self.workdir / name
        for sub in ("home", "tmp", "ssh"):
            (home / sub).mkdir(parents=True)
        shutil.copy(key, home / "ssh/id_ed25519")  # the service key, deployed to each machine
        (home / "ssh/id_ed25519").chmod(0o600)
        env = {**self.settings.to_env(), "WSEXEC_SSH_KEY": str(home / "ssh/id_ed25519"),
               "WSEXEC_KNOWN_HOSTS": str(home / "ssh/known_hosts"),  # never written: trust is pinned, in Redis
               "HOME": str(home / "home"), "TMPDIR": str(home / "tmp"), "PATH": os.environ["PATH"],
               "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
        self.spawn(machine.command(sys.executable, "-m", "workers", "--name", name), home / "worker.log", home,
                   skewed_clock(env) if skewed else env)
        return machine


@pytest.fixture
def fleet(network: Network, tmp_path: Path, ssh_user: str, client_key: Path, session_dir: Path,
          password_hashes: dict[str, str]) -> Iterator[Fleet]:
    """Redis, gunicorn and the targets in the hub namespace; this thread stays in it for the test (its requests)."""
    with network.hub.inside():
        redis = RedisServer(tmp_path / "redis", network.service_address(), 6379,
                            users={"wsexec": readme_acl_rules()}).start()
        targets = [SshServer(tmp_path / f"target{n}", network.service_address(), 22, ssh_user,
                             session_dir / "authorized_keys").start() for n in range(TARGETS)]
        api_host = network.service_address()
        settings = Settings(
            redis_url=redis.user_url("wsexec"),
            users=f"admin:admin:{password_hashes['admin']}",
            tokens=f"nightly:operator:{hashlib.sha256(b'unused').hexdigest()}",
            ssh_key=str(tmp_path / "api/no-key"), known_hosts=str(tmp_path / "api/no-known-hosts"),
            connect_timeout=5.0, lease_seconds=4, reconcile_grace=6, tasks_per_job=5,
        )
        env = {**settings.to_env(), "WSEXEC_BIND": f"{api_host}:8000", "WSEXEC_GUNICORN_WORKERS": "1",
               "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
        fleet = Fleet(network, settings, f"http://{api_host}:8000/wsexec", targets, tmp_path / "machines")
        try:
            fleet.spawn([str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                        tmp_path / "gunicorn.log", ROOT, env)

            def serving() -> bool:
                try:
                    return requests.get(f"{fleet.api}/health", timeout=2).status_code in (200, 503)
                except requests.RequestException:
                    return False

            wait_for(serving, timeout=60, interval=0.2)
            yield fleet
        finally:
            fleet.stop()
            for daemon in [*targets, redis]:
                daemon.stop()
    # whatever else runs there dies with the namespaces (the network fixture)


def skewed_clock(env: dict[str, str]) -> dict[str, str]:
    """env for a Python whose wall clock is SKEW seconds ahead (tests/clock), checked: a skew that silently failed
    would prove nothing."""
    skewed = {**env, "WSEXEC_TEST_CLOCK_SKEW": str(SKEW), "PYTHONPATH": f"{CLOCK}:{env['PYTHONPATH']}"}
    before = time.time()
    shown = float(subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=skewed, check=True,
                                 capture_output=True, text=True).stdout)
    assert shown - before >= SKEW, (shown, before)
    return skewed


def all_tasks(session: requests.Session, api: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    for page in range(1, TASKS // 100 + 1):
        response = session.get(f"{api}/tasks", params={"tag": "machines", "page_size": 100, "page": page}, timeout=30)
        assert response.status_code == 200, response.text
        tasks += response.json()["results"]
    return tasks


def test_a_machine_lost_mid_run_loses_only_its_tasks_and_none_runs_twice(
    fleet: Fleet, client_key: Path, ssh_user: str, runs_dir: Path
) -> None:
    session = requests.Session()
    session.auth = ("admin", PASSWORDS["admin"])
    instances = []
    for target in fleet.targets:
        response = session.post(f"{fleet.api}/instances", timeout=30, json={
            "ip": target.host, "port": target.port, "tag": "machines", "user": ssh_user,
            "host_key": target.host_key_line})
        assert response.status_code == 201, response.text
        instances.append(response.json()["id"])

    doomed = fleet.start_worker("doomed", client_key)
    survivor = fleet.start_worker("survivor", client_key, skewed=True)
    # the machines reach the hub's addresses over their link and nothing else: no default route, no way out
    for machine in (doomed, survivor):
        routes = subprocess.run(["ip", "-n", machine.name, "route"], check=True, capture_output=True, text=True)
        assert "default" not in routes.stdout, routes.stdout
    wait_for(lambda: session.get(f"{fleet.api}/health", timeout=5).json().get("workers") == 2, timeout=60)
    # the API has no copy of the service key: register.sh carries the one the workers published in Redis
    registration = session.post(f"{fleet.api}/registrations", json={"tag": "new", "user": ssh_user}, timeout=30)
    assert registration.status_code == 201, registration.text
    script = requests.get(f"{fleet.api}/register.sh", timeout=30,
                          headers={"Authorization": f"Bearer {registration.json()['token']}"})
    assert script.status_code == 200 and Path(f"{client_key}.pub").read_text().split()[1] in script.text

    body = [{"name": f"item-{n}", "tag": "machines", "instance": instances[n % TARGETS],
             # SSH_CONNECTION: client address, port, server address, port: which machine ran it, on which target
             "script": f"set -- $SSH_CONNECTION; echo {n} $1 >> {runs_dir}/$3; sleep {RUN_SECONDS}"}
            for n in range(TASKS)]
    response = session.post(f"{fleet.api}/tasks", json=body, timeout=60)
    assert response.status_code == 201, response.text
    created = [task["id"] for task in response.json()]

    def mid_run() -> bool:
        """The doomed machine has finished tasks and runs others; the survivor runs some too."""
        tasks = all_tasks(session, fleet.api)
        states = Counter((task.get("worker"), task["state"]) for task in tasks)
        return bool(states["doomed", "DONE"] and states["doomed", "CURRENT"] and states["survivor", "CURRENT"])

    try:
        wait_for(mid_run, timeout=60, interval=0.1)
    except AssertionError:
        raise AssertionError(f"the two machines never ran tasks at the same time\n{fleet.log_tails()}") from None
    assert doomed.power_off()  # its worker and RQ's scheduler frozen, its link cut, then all killed

    seen: Counter[str] = Counter()

    def all_ended() -> list[dict[str, Any]] | None:
        tasks = all_tasks(session, fleet.api)
        seen.clear()
        seen.update(task["state"] for task in tasks)
        return tasks if seen.keys() <= {"DONE", "ABORT"} else None

    try:
        tasks = wait_for(all_ended, timeout=120, interval=0.5)
    except AssertionError:
        raise AssertionError(f"tasks unfinished long after the machine was lost: {dict(seen)}\n"
                             f"{fleet.log_tails()}") from None

    assert sorted(task["id"] for task in tasks) == sorted(created)
    runs: dict[str, list[tuple[str, str]]] = {}  # item -> (target, machine address) of each run
    for path in runs_dir.iterdir():
        for line in path.read_text().splitlines():
            item, client = line.split()
            runs.setdefault(item, []).append((path.name, client))
    assert runs and all(len(ran) == 1 for ran in runs.values()), {n: r for n, r in runs.items() if len(r) > 1}
    for task in tasks:
        item = int(task["name"].removeprefix("item-"))
        if task["state"] == "DONE":  # ran once, on its target, from the machine that says it ran it
            assert task["rc"] == 0, task
            assert runs[str(item)] == [(fleet.targets[item % TARGETS].host, fleet.addresses[task["worker"]])], task
        else:  # only the lost machine's tasks, each for that reason
            assert task["state"] == "ABORT" and task.get("worker") == "doomed", task
            assert task["error"] == LOST or task["error"].startswith(f"{LOST}; "), task
            if task["error"] == LOST:  # no remote process recorded: the worker sends the script only after that
                assert str(item) not in runs, task
    # the lost machine had tasks running (of RUN_SECONDS: they did not all end in the instant before the kill), and
    # the machine with the skewed clock ran all the others
    done_by = Counter(task.get("worker") for task in tasks if task["state"] == "DONE")
    assert seen["ABORT"] > 0 and done_by["doomed"] > 0 and done_by["survivor"] > 0, (seen, done_by)


def test_the_scheduler_lock_of_a_lost_machine_is_taken_over_once_it_expires(
    api: Api, instance: dict[str, Any], workers: WorkerProcesses, redis_server: RedisServer, settings: Settings
) -> None:
    """A machine that loses power keeps RQ's scheduler lock until it expires; then another worker must schedule, not
    wait for RQ's next maintenance (10 minutes) while tasks with scheduled_at stay INIT."""
    lock = RQScheduler.get_locking_key(settings.queue)
    Redis.from_url(redis_server.url).set(lock, "the-scheduler-of-a-lost-machine", ex=3)
    workers.start(1)  # finds the lock taken: no scheduler of its own at first
    task = api.create_task(instance, "echo scheduled", scheduled_at=time.time() + 1)
    done = wait_finished(api, task["id"], timeout=60)
    assert (done["state"], done["stdout"]) == ("DONE", "scheduled\n"), done
