"""One worker process runs several RQ jobs at once (job slots, each an RQ worker): long tasks do not hold up the
others; graceful and forced stops, kill -9, dependencies and schedules across slots, and what `rq info` lists."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rq import Worker
from rq.registry import FailedJobRegistry

from tests.helpers import Api, WorkerProcesses, wait_finished, wait_for
from tests.test_engine import pid_file, process_alive, remote_pid, wait_state
from wsexec.config import Settings


def rq_workers(redis: Any) -> set[str]:
    """The worker names `rq info` shows."""
    return {worker.name for worker in Worker.all(connection=redis)}


def slots_of(worker: subprocess.Popen, settings: Settings) -> set[str]:
    return {f"{socket.gethostname()}.{worker.pid}.slot-{number}" for number in range(settings.worker_jobs)}


def state(api: Api, task: dict[str, Any]) -> str:
    return api.get(f"/tasks/{task['id']}").json["state"]


def cancel(api: Api, tasks: list[dict[str, Any]]) -> None:
    for task in tasks:
        api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"})
    for task in tasks:
        assert wait_finished(api, task["id"])["state"] == "ABORT"


def test_two_long_tasks_do_not_hold_up_an_admin_command(api: Api, instance: dict, workers: Any) -> None:
    operator = api.as_user("operator")
    sleepers = [operator.create_task(instance, "sleep 20") for _ in range(2)]  # two POSTs: two RQ jobs
    workers.start(1)
    for task in sleepers:
        wait_state(api, task["id"], "CURRENT")
    response = api.post("/commands/uptime?wait=15", json={"instance": instance["id"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "load average" in response.get_data(as_text=True)
    assert api.get(f"/tasks/{response.headers['X-Wsexec-Task']}").json["state"] == "DONE"
    assert [state(api, task) for task in sleepers] == ["CURRENT", "CURRENT"]
    cancel(api, sleepers)


def test_a_job_of_many_long_tasks_leaves_room_for_other_jobs(api: Api, instance: dict, make_sshd: Any,
                                                             ssh_user: str, known_hosts: Path, workers: Any) -> None:
    other_host = make_sshd("127.0.1.60")
    known_hosts.write_text(known_hosts.read_text() + other_host.known_hosts_line + "\n")
    other = api.post("/instances", json={"ip": other_host.host, "port": other_host.port, "tag": "other",
                                          "user": ssh_user}).json
    body = [{"name": f"long{i}", "tag": "long", "instance": instance["id"], "script": "sleep 30"} for i in range(16)]
    long = api.post("/tasks", json=body).json  # one RQ job as wide as a job may run (worker_threads)
    workers.start(1)
    wait_for(lambda: api.get("/tasks?tag=long&state=CURRENT&page_size=1").json["count"] == 16)
    short = api.post("/tasks", json=[{"name": f"short{i}", "tag": "short", "instance": other["id"],
                                      "script": "echo short"} for i in range(2)]).json
    assert [wait_finished(api, task["id"])["stdout"] for task in short] == ["short\n", "short\n"]
    assert api.get("/tasks?tag=long&state=CURRENT&page_size=1").json["count"] == 16
    cancel(api, long)


def test_sigterm_finishes_running_tasks_takes_no_new_one_and_unregisters(api: Api, instance: dict, workers: Any,
                                                                         settings: Settings, redis: Any) -> None:
    running = [api.create_task(instance, "sleep 8; echo finished") for _ in range(2)]
    (worker,) = workers.start(1)
    for task in running:
        wait_state(api, task["id"], "CURRENT")
    assert rq_workers(redis) == slots_of(worker, settings)  # every slot is an RQ worker of its own
    worker.terminate()
    wait_for(lambda: len(rq_workers(redis)) == 2)  # the idle slots quit at once; the busy ones finish first
    late = api.create_task(instance, "echo too late")
    assert worker.wait(30) == 0
    assert [api.get(f"/tasks/{task['id']}").json["stdout"] for task in running] == ["finished\n", "finished\n"]
    assert [state(api, task) for task in running] == ["DONE", "DONE"]
    assert state(api, late) == "INIT"  # left on the queue for the next worker
    assert rq_workers(redis) == set()


@pytest.mark.parametrize("how", ["grace", "second signal"])
def test_a_forced_stop_kills_running_tasks_and_ends_them_abort(api: Api, instance: dict, settings: Settings,
                                                               redis: Any, how: str) -> None:
    workers = WorkerProcesses(replace(settings, stop_grace=1 if how == "grace" else 3600))
    try:
        marker = pid_file()
        task = api.create_task(instance, f"echo $$ > {marker}; exec sleep 300")
        (worker,) = workers.start(1)
        wait_state(api, task["id"], "CURRENT")
        pid = remote_pid(marker)
        worker.terminate()
        if how == "second signal":
            wait_for(lambda: len(rq_workers(redis)) == 1)  # the first one was taken: only the busy slot is left
            worker.terminate()
        assert worker.wait(30) == 0
        done = api.get(f"/tasks/{task['id']}").json
        assert done["state"] == "ABORT" and done["rc"] is None
        assert done["error"] == {"grace": "worker stopped: still running 1 s after it was told to stop",
                                 "second signal": "worker stopped by a second SIGTERM"}[how]
        wait_for(lambda: not process_alive(pid), timeout=5)
        assert rq_workers(redis) == set()
    finally:
        workers.stop()


def test_killed_worker_with_several_busy_slots_leaves_each_task_abort_worker_lost(api: Api, instance: dict,
                                                                                 workers: Any, redis: Any) -> None:
    tasks = [api.create_task(instance, "sleep 60") for _ in range(3)]
    (doomed,) = workers.start(1)
    keys = [f"wsexec:task:{task['id']}" for task in tasks]
    wait_for(lambda: all(redis.hget(key, "remote_pid") for key in keys))  # CURRENT, and each command started
    doomed.kill()  # SIGKILL
    doomed.wait()
    workers.start(1)  # a surviving worker notices the leases expired
    for task in tasks:
        done = wait_finished(api, task["id"], timeout=30)
        assert done["state"] == "ABORT"
        assert done["error"].startswith("worker lost; its remote process group ") and "was killed" in done["error"]
    jobs = sorted(api.get(f"/tasks/{task['id']}").json["job"] for task in tasks)
    wait_for(lambda: sorted(FailedJobRegistry("wsexec", connection=redis).get_job_ids()) == jobs, timeout=10)


def test_run_after_and_scheduled_at_across_slots(api: Api, instance: dict, workers: Any) -> None:
    go = Path(f"/tmp/wsexec-test-{uuid.uuid4().hex}.go")
    first = api.create_task(instance, f"until [ -e {go} ]; do sleep 0.1; done; echo first")
    second = api.create_task(instance, "echo second", run_after=[first["id"]])
    at = time.time() + 3
    scheduled = api.create_task(instance, "echo scheduled", scheduled_at=at)
    meanwhile = api.create_task(instance, "echo meanwhile")
    workers.start(1)
    assert wait_finished(api, meanwhile["id"])["stdout"] == "meanwhile\n"  # while `first` holds another slot
    scheduled_done = wait_finished(api, scheduled["id"])
    assert (scheduled_done["stdout"], scheduled_done["start"] >= at) == ("scheduled\n", True)
    assert (state(api, first), state(api, second)) == ("CURRENT", "INIT")
    go.touch()
    first_done, second_done = wait_finished(api, first["id"]), wait_finished(api, second["id"])
    assert (first_done["stdout"], second_done["stdout"]) == ("first\n", "second\n")
    assert second_done["start"] >= first_done["end"]
    go.unlink()
