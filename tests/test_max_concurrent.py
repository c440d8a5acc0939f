"""Per-instance concurrency limits: `max_concurrent` tasks at once on an instance over every worker process, the
others waiting in INIT saying why, started as slots free; a dead worker's slot freed by its lease. The tests watch
the sshd host itself (what each script records there, and its live processes in /proc) as well as the API."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from tests.helpers import Api, task_body, wait_finished, wait_for
from wsexec.store import Store, keys


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory on the sshd host (this machine) that the tasks' login user writes to."""
    path = Path("/tmp") / f"wsexec-limits-{uuid.uuid4().hex}"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def limited(api: Api, instance: dict[str, Any], limit: int | None) -> dict[str, Any]:
    response = api.patch(f"/instances/{instance['id']}", json={"max_concurrent": limit})
    assert response.status_code == 200, response.json
    return response.json


def counting_script(directory: Path, pause: str) -> str:
    """Marks itself running on the host, counts the marks, sleeps `pause` (a unique number: its processes are
    found in /proc by it), and appends 'start end marks-seen' to the host's log."""
    return (f'd={directory}; s=$(date +%s.%N); touch "$d/run.$$"; n=$(ls "$d" | grep -c "^run\\."); sleep {pause}; '
            f'rm "$d/run.$$"; echo "$s $(date +%s.%N) $n" >> "$d/log"')


def most_at_once(log: Path) -> tuple[int, int, int]:
    """(runs logged, most marks any run saw, most runs whose start..end overlap) from the host's log."""
    runs = [line.split() for line in log.read_text().splitlines()]
    edges = sorted([(float(start), 1) for start, _, _ in runs] + [(float(end), -1) for _, end, _ in runs])
    overlap = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        overlap += step
        most = max(most, overlap)
    return len(runs), max(int(seen) for _, _, seen in runs), most


class Watch(threading.Thread):
    """Samples, until stopped, the instance's CURRENT tasks (API) and the live `sleep <pause>` processes (/proc)."""

    def __init__(self, app: Any, instance_id: int, pause: str) -> None:
        super().__init__(daemon=True)
        self.api, self.instance_id = Api(app.test_client()), instance_id
        self.command = f"sleep\0{pause}\0".encode()
        self.stopping = threading.Event()
        self.most_current = self.most_sleeping = 0
        self.reasons: set[str] = set()

    def run(self) -> None:
        while not self.stopping.is_set():
            sleeping = sum(1 for cmdline in Path("/proc").glob("[0-9]*/cmdline") if _read(cmdline) == self.command)
            self.most_sleeping = max(self.most_sleeping, sleeping)
            current = self.api.get(f"/tasks?instance={self.instance_id}&state=CURRENT&page_size=1").json["count"]
            self.most_current = max(self.most_current, current)
            waiting = self.api.get(f"/tasks?instance={self.instance_id}&state=INIT&page_size=5").json["results"]
            self.reasons.update(task["waiting"] for task in waiting if task.get("waiting"))

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def count(api: Api, instance: dict[str, Any], state: str) -> int:
    return int(api.get(f"/tasks?instance={instance['id']}&state={state}&page_size=1").json["count"])


def burst(api: Api, app: Any, instance: dict[str, Any], directory: Path, tasks: int) -> Watch:
    """Create the tasks in one POST, watch them until every one is DONE."""
    pause = f"0.2{uuid.uuid4().int % 10**6:06d}"
    watch = Watch(app, instance["id"], pause)
    watch.start()
    try:
        api.created("/tasks", [task_body(instance, counting_script(directory, pause)) for _ in range(tasks)])
        wait_for(lambda: count(api, instance, "DONE") == tasks or count(api, instance, "ABORT"), timeout=240,
                 interval=0.5)
    finally:
        watch.stop()
    aborted = api.get("/tasks", query_string={"instance": instance["id"], "state": "ABORT"}).json["results"]
    assert count(api, instance, "DONE") == tasks, [(t["id"], t["error"]) for t in aborted]
    return watch


def test_a_burst_of_100_tasks_to_an_instance_with_max_concurrent_2_never_runs_more_than_2(
    api: Api, app: Any, instance: dict[str, Any], workers: Any, host_dir: Path
) -> None:
    assert limited(api, instance, 2)["max_concurrent"] == 2
    workers.start(2)
    watch = burst(api, app, instance, host_dir, 100)
    runs, most_seen, most_overlapping = most_at_once(host_dir / "log")
    assert runs == 100
    assert most_seen <= 2 and most_overlapping <= 2 and watch.most_sleeping <= 2  # on the host
    assert watch.most_current <= 2  # in the API: the others were INIT, not CURRENT waiting for a channel
    assert watch.reasons == {f"instance {instance['id']} at max_concurrent 2"}
    assert most_overlapping == 2  # and the limit was used, not serialised to 1


def test_max_concurrent_1_is_exclusive(
    api: Api, app: Any, instance: dict[str, Any], workers: Any, host_dir: Path
) -> None:
    limited(api, instance, 1)
    workers.start(2)
    watch = burst(api, app, instance, host_dir, 20)
    assert most_at_once(host_dir / "log") == (20, 1, 1)
    assert watch.most_sleeping <= 1 and watch.most_current <= 1


def blocking(directory: Path) -> str:
    """Runs until the test creates the file `go` on the host."""
    return f"while [ ! -e {directory}/go ]; do sleep 0.05; done"


def test_patching_max_concurrent_takes_effect_on_waiting_and_new_tasks(
    api: Api, instance: dict[str, Any], workers: Any, host_dir: Path
) -> None:
    limited(api, instance, 1)
    workers.start(1)
    tasks = api.created("/tasks", [task_body(instance, blocking(host_dir)) for _ in range(5)])
    wait_for(lambda: count(api, instance, "CURRENT") == 1 and len(waiting(api, instance)) == 4)
    assert set(waiting(api, instance).values()) == {f"instance {instance['id']} at max_concurrent 1"}

    limited(api, instance, 3)  # raised: two of the waiting tasks start at once
    wait_for(lambda: count(api, instance, "CURRENT") == 3 and len(waiting(api, instance)) == 2)
    limited(api, instance, None)  # removed: all of them start
    wait_for(lambda: count(api, instance, "CURRENT") == 5)
    assert api.get(f"/instances/{instance['id']}").json["max_concurrent"] is None

    limited(api, instance, 2)  # lowered below what runs: the running ones go on, new ones wait for two to end
    later = api.created("/tasks", [task_body(instance, "true") for _ in range(2)])
    wait_for(lambda: set(waiting(api, instance)) == {task["id"] for task in later})
    assert count(api, instance, "CURRENT") == 5
    (host_dir / "go").touch()
    for task in tasks + later:
        done = wait_finished(api, task["id"], timeout=30)
        assert done["state"] == "DONE" and done.get("waiting") is None


def waiting(api: Api, instance: dict[str, Any]) -> dict[int, str]:
    """The instance's INIT tasks that say they wait for a slot: id -> why."""
    found = api.get(f"/tasks?instance={instance['id']}&state=INIT&page_size=100").json["results"]
    return {task["id"]: task["waiting"] for task in found if task.get("waiting")}


def test_a_killed_worker_holding_the_slot_frees_it_when_its_lease_expires(
    api: Api, instance: dict[str, Any], workers: Any, settings: Any, host_dir: Path
) -> None:
    limited(api, instance, 1)
    first = api.create_task(instance, blocking(host_dir))
    (doomed,) = workers.start(1)
    wait_for(lambda: api.get(f"/tasks/{first['id']}").json["state"] == "CURRENT")
    rest = api.created("/tasks", [task_body(instance, "echo ran") for _ in range(3)])
    wait_for(lambda: len(waiting(api, instance)) == 3)
    doomed.kill()  # SIGKILL, holding the slot
    doomed.wait()
    workers.start(1)
    lost = wait_finished(api, first["id"], timeout=settings.lease_seconds + 20)
    assert lost["state"] == "ABORT" and lost["error"].startswith("worker lost")
    for task in rest:  # the slot came back with the lease: the waiting tasks ran, one after the other
        done = wait_finished(api, task["id"], timeout=30)
        assert (done["state"], done["stdout"]) == ("DONE", "ran\n")


@pytest.mark.parametrize("value", [0, -1, 2.5, "2", "two", True, [1], {"n": 1}])
def test_max_concurrent_must_be_a_whole_number_of_at_least_1(
    api: Api, instance: dict[str, Any], value: Any
) -> None:
    created = api.post("/instances", json={"ip": "192.0.2.7", "tag": "x", "max_concurrent": value})
    patched = api.patch(f"/instances/{instance['id']}", json={"max_concurrent": value})
    for response in (created, patched):
        assert response.status_code == 422
        assert set(response.json["detail"]) == {"max_concurrent"}, response.json


def test_max_concurrent_is_set_on_create_and_shown(api: Api) -> None:
    created = api.created("/instances", {"ip": "192.0.2.8", "tag": "x", "max_concurrent": 3})
    assert api.get(f"/instances/{created['id']}").json["max_concurrent"] == 3
    assert api.created("/instances", {"ip": "192.0.2.9", "tag": "x"})["max_concurrent"] is None  # no limit


def test_a_task_whose_lease_lapsed_is_not_lost_while_its_worker_beats(
    api: Api, instance: dict[str, Any], store: Store, redis: Redis
) -> None:
    """A starved lease keeper is not a dead worker: the reaper leaves alone the tasks of a worker that still beats."""
    task = api.create_task(instance, "true")
    assert store.claim(task["id"], "busy-worker", 1)
    store.renew_leases([], "busy-worker", 30)  # its heartbeat, from any of its threads
    wait_for(lambda: not redis.exists(keys.lease(task["id"])), timeout=5)
    assert store.lost_tasks() == [] and store.reap_lost([task["id"]]) == []
    redis.delete(keys.worker_alive("busy-worker"))  # now it is gone
    assert store.lost_tasks() == [task["id"]]
    assert store.reap_lost([task["id"]]) == [task["id"]]


def test_holding_a_task_starts_its_holders_heartbeat(api: Api, instance: dict[str, Any], store: Store,
                                                      redis: Redis) -> None:
    """A worker's first tasks come before its lease keeper's first beat: until then, without this, its slots were
    taken for free and its tasks for lost by any reaper."""
    task = api.create_task(instance, "true")
    assert store.hold([task["id"]], "starting-worker", 30) == [task["id"]]
    assert redis.exists(keys.worker_alive("starting-worker"))


def test_a_reap_leaves_a_task_whose_lease_is_live_or_that_no_one_holds(
    api: Api, instance: dict[str, Any], store: Store, redis: Redis
) -> None:
    """The reap checks, in the same step as it ends the task, what the reaper saw a moment before: that the task is
    held, its lease gone and its holder silent. A claim or a wait for a slot in between must win."""
    leased, waiting = api.create_task(instance, "true"), api.create_task(instance, "true")
    limited(api, instance, 1)
    assert store.claim(leased["id"], "w1", 30)["state"] == "CURRENT"
    assert store.claim(waiting["id"], "w1", 30)["state"] == "INIT"  # no free slot: it waits, held by no one
    redis.delete(keys.worker_alive("w1"))
    assert store.reap_lost([leased["id"], waiting["id"]]) == []
    assert [t["state"] for t in store.get_tasks([leased["id"], waiting["id"]])] == ["CURRENT", "INIT"]
    redis.delete(keys.lease(leased["id"]))
    assert store.reap_lost([leased["id"], waiting["id"]]) == [leased["id"]]
    assert store.get_task(waiting["id"])["state"] == "INIT"


def test_a_worker_restarted_under_the_same_name_does_not_keep_its_predecessors_tasks(
    api: Api, instance: dict[str, Any], store: Store, redis: Redis
) -> None:
    task = api.create_task(instance, "true")
    assert store.claim(task["id"], "web-worker", 1, holder="web-worker/first")
    store.renew_leases([], "web-worker/second", 30)  # the new process beats, under its own token
    wait_for(lambda: store.lost_tasks() == [task["id"]], timeout=5)
    assert store.reap_lost([task["id"]]) == [task["id"]]
