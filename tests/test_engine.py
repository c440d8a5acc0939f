"""The execution engine under stress and failure: timeouts, cancel, live output, caps, lost workers, Redis restarts,
scheduling and dependencies, against real sshd, redis-server and worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rq.registry import FailedJobRegistry

from tests.helpers import Api, WorkerProcesses, wait_finished, wait_for


def pid_file() -> Path:
    return Path(f"/tmp/wsexec-test-{uuid.uuid4().hex}.pid")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def wait_state(api: Api, task_id: int, state: str, timeout: float = 15.0) -> dict[str, Any]:
    return wait_for(lambda: (t := api.get(f"/tasks/{task_id}").json)["state"] == state and t, timeout)


def remote_pid(path: Path) -> int:
    return int(wait_for(lambda: path.exists() and path.read_text().strip()))


def test_timeout_kills_the_remote_process(api: Api, instance: dict, workers: Any) -> None:
    marker = pid_file()
    task = api.create_task(instance, f"echo $$ > {marker}; exec sleep 300", timeout=1)
    workers.start(1)
    done = wait_finished(api, task["id"])
    assert done["state"] == "ABORT"
    assert done["error"] == "timeout after 1 s"
    assert done["rc"] is None
    pid = remote_pid(marker)
    wait_for(lambda: not process_alive(pid), timeout=5)


def test_timeout_above_the_maximum_is_refused(api: Api, instance: dict, settings: Any) -> None:
    response = api.post("/tasks", json={"name": "n", "tag": "t", "instance": instance["id"], "script": "true",
                                        "timeout": settings.task_timeout_max + 1})
    assert response.status_code == 422
    assert "timeout" in str(response.json["detail"])


def test_cancel_running_task_kills_it_within_a_second(api: Api, instance: dict, workers: Any) -> None:
    marker = pid_file()
    task = api.create_task(instance, f"echo started; echo $$ > {marker}; exec sleep 300")
    workers.start(1)
    wait_for(lambda: "started" in api.get(f"/tasks/{task['id']}/output").json["stdout"])
    pid = remote_pid(marker)
    started = time.monotonic()
    response = api.as_user("operator").patch(f"/tasks/{task['id']}", json={"state": "ABORT"})
    assert response.status_code == 200
    assert response.json["state"] == "ABORT"
    assert response.json["error"] == "cancelled by operator"
    assert response.json["stdout"] == "started\n"
    wait_for(lambda: not process_alive(pid), timeout=3)
    assert time.monotonic() - started < 3


def test_cancel_queued_task_never_runs(api: Api, instance: dict, workers: Any, redis: Any) -> None:
    marker = pid_file()
    task = api.create_task(instance, f"touch {marker}")
    response = api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"})
    assert response.json["state"] == "ABORT"
    assert response.json["error"] == "cancelled by admin"
    assert redis.llen("rq:queue:wsexec") == 0  # taken off RQ's queue
    workers.start(1, burst=True)[0].wait(30)
    after = api.get(f"/tasks/{task['id']}").json
    assert after["state"] == "ABORT" and after["start"] is None
    assert not marker.exists()
    assert api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"}).status_code == 409


def test_cancel_scheduled_task(api: Api, instance: dict, workers: Any) -> None:
    marker = pid_file()
    task = api.create_task(instance, f"touch {marker}", scheduled_at=time.time() + 2)
    workers.start(1)
    assert api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"}).json["state"] == "ABORT"
    time.sleep(3.5)
    assert api.get(f"/tasks/{task['id']}").json["state"] == "ABORT"
    assert not marker.exists()


def test_output_can_be_followed_while_it_runs(api: Api, instance: dict, workers: Any) -> None:
    task = api.create_task(instance, "for i in 1 2 3 4; do echo line$i; echo err$i >&2; sleep 0.4; done; printf 'é'")
    workers.start(1)
    stdout, stderr, offsets, seen_running = "", "", {"stdout_offset": 0, "stderr_offset": 0}, False
    while True:
        chunk = api.get(f"/tasks/{task['id']}/output", query_string=offsets).json
        stdout, stderr = stdout + chunk["stdout"], stderr + chunk["stderr"]
        offsets = {"stdout_offset": chunk["stdout_offset"], "stderr_offset": chunk["stderr_offset"]}
        if chunk["finished"]:
            break
        seen_running |= chunk["state"] == "CURRENT" and "line1" in stdout
        time.sleep(0.1)
    assert seen_running  # output was visible before the end
    assert stdout == "line1\nline2\nline3\nline4\né"
    assert stderr == "err1\nerr2\nerr3\nerr4\n"
    assert chunk["rc"] == 0
    assert offsets["stdout_offset"] == len(stdout.encode())


def test_output_offsets_past_the_end_return_nothing(api: Api, instance: dict, workers: Any) -> None:
    task = api.create_task(instance, "echo hello")
    workers.start(1)
    wait_finished(api, task["id"])
    chunk = api.get(f"/tasks/{task['id']}/output?stdout_offset=100&stderr_offset=7").json
    assert chunk["stdout"] == "" and chunk["finished"] is True
    assert api.get(f"/tasks/{task['id']}/output?stdout_offset=-1").status_code == 422


@pytest.fixture
def small_cap_settings(settings: Any) -> Any:
    return replace(settings, output_cap=1000)


def test_output_is_capped_and_the_drop_counted(api: Api, instance: dict, settings: Any) -> None:
    workers = WorkerProcesses(replace(settings, output_cap=1000))
    try:
        task = api.create_task(instance, "head -c 5000 /dev/zero | tr '\\0' a; echo tail >&2")
        workers.start(1)
        done = wait_finished(api, task["id"])
    finally:
        workers.stop()
    assert done["state"] == "DONE"
    assert done["stdout"] == "a" * 1000
    assert done["stdout_dropped"] == 4000
    assert done["stderr"] == "tail\n" and done["stderr_dropped"] == 0


def test_a_gigabyte_of_output_keeps_worker_memory_bounded(api: Api, instance: dict, workers: Any, redis: Any) -> None:
    task = api.create_task(instance, "head -c 1073741824 /dev/zero; echo done >&2")
    (worker,) = workers.start(1)
    done = wait_finished(api, task["id"], timeout=240)
    status = Path(f"/proc/{worker.pid}/status").read_text()
    peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    assert done["state"] == "DONE" and done["rc"] == 0
    assert done["stdout_dropped"] == 1073741824 - 1024 * 1024
    assert len(done["stdout"]) == 1024 * 1024
    assert redis.strlen(f"wsexec:task:{task['id']}:stdout") == 1024 * 1024
    assert peak_kib < 150 * 1024, f"worker peak RSS {peak_kib} KiB"


def test_killed_worker_leaves_its_task_abort_worker_lost(api: Api, instance: dict, workers: Any, redis: Any) -> None:
    marker = pid_file()
    task = api.create_task(instance, f"echo $$ > {marker}; exec sleep 300")
    dependent = api.create_task(instance, "echo never", run_after=[task["id"]])
    (doomed,) = workers.start(1)
    running = wait_state(api, task["id"], "CURRENT")
    remote_pid(marker)
    doomed.kill()  # SIGKILL
    doomed.wait()
    workers.start(1)  # a surviving worker notices the lease expired
    done = wait_finished(api, task["id"], timeout=30)
    assert done["state"] == "ABORT"
    assert done["error"].startswith("worker lost; its remote process group ")
    assert done["start"] == running["start"]
    # RQ's registries show it (the worker fails the job right after it marks the task)
    assert wait_for(lambda: FailedJobRegistry("wsexec", connection=redis).get_job_ids() == [done["job"]], timeout=5)
    # its dependent does not wait for RQ's timeout (an hour here): it ends ABORT at once
    assert wait_finished(api, dependent["id"], timeout=15)["error"] == f"dependency {task['id']} ended ABORT"
    time.sleep(2)
    assert api.get(f"/tasks/{task['id']}").json["start"] == running["start"]  # never re-run


def test_two_workers_never_run_a_task_twice(api: Api, instance: dict, workers: Any, tmp_path: Path) -> None:
    runs = Path(f"/tmp/wsexec-test-runs-{uuid.uuid4().hex}")
    runs.mkdir(mode=0o777)
    runs.chmod(0o777)
    body = [{"name": f"t{i}", "tag": "dup", "instance": instance["id"], "script": f"echo x >> {runs}/{i}"}
            for i in range(200)]
    ids = [t["id"] for t in api.post("/tasks", json=body).json]
    workers.start(3)
    wait_for(lambda: api.get("/tasks?tag=dup&state=DONE&page_size=1").json["count"] == len(ids), timeout=60)
    assert sorted(int(p.name) for p in runs.iterdir()) == list(range(200))
    assert all(p.read_text() == "x\n" for p in runs.iterdir())


def test_500_tasks_to_one_default_sshd_all_done(api: Api, make_sshd: Any, ssh_user: str, settings: Any,
                                                known_hosts: Path, workers: Any) -> None:
    server = make_sshd("127.0.1.50")  # sshd's defaults: MaxSessions 10, MaxStartups 10:30:100
    known_hosts.write_text(known_hosts.read_text() + server.known_hosts_line + "\n")
    target = api.post("/instances", json={"ip": server.host, "port": server.port, "tag": "burst",
                                          "user": ssh_user}).json
    body = [{"name": f"b{i}", "tag": "burst", "instance": target["id"], "script": "echo $((1+1))"}
            for i in range(500)]
    assert api.post("/tasks", json=body).status_code == 201
    workers.start(4)
    wait_for(lambda: api.get("/tasks?state=DONE&page_size=1").json["count"]
             + api.get("/tasks?state=ABORT&page_size=1").json["count"] == 500, timeout=120)
    assert api.get("/tasks?state=DONE&page_size=1").json["count"] == 500
    outputs = {t["id"]: api.get(f"/tasks/{t['id']}").json["stdout"]
               for t in api.get("/tasks?page_size=100").json["results"]}
    assert set(outputs.values()) == {"2\n"}


def test_redis_restart_mid_run_loses_no_task(api: Api, instance: dict, workers: Any, redis_server: Any) -> None:
    body = [{"name": f"r{i}", "tag": "restart", "instance": instance["id"], "script": f"sleep 0.05; echo {i}"}
            for i in range(100)]
    ids = [t["id"] for t in api.post("/tasks", json=body).json]
    workers.start(2)
    wait_for(lambda: api.get("/tasks?state=DONE&page_size=1").json["count"] >= 5)
    redis_server.restart(down_seconds=1)
    try:
        tasks = [wait_finished(api, task_id, timeout=90) for task_id in ids]
    except AssertionError:
        left = [api.get(f"/tasks/{task_id}").json for task_id in ids]
        raise AssertionError([task for task in left if task["state"] not in ("DONE", "ABORT")]) from None
    assert len(tasks) == 100
    for task in tasks:
        assert task["state"] in ("DONE", "ABORT")
        if task["state"] == "ABORT":
            assert task["error"]
        else:
            assert task["stdout"] == f"{task['name'][1:]}\n"


def test_scheduled_task_waits_until_its_time(api: Api, instance: dict, workers: Any) -> None:
    at = time.time() + 3
    task = api.create_task(instance, "date +%s", scheduled_at=at)
    workers.start(1)
    time.sleep(1)
    assert api.get(f"/tasks/{task['id']}").json["state"] == "INIT"
    done = wait_finished(api, task["id"], timeout=20)
    assert done["state"] == "DONE"
    assert done["start"] >= at


def test_run_after_waits_for_its_dependency(api: Api, instance: dict, workers: Any) -> None:
    first = api.create_task(instance, "sleep 1; echo first")
    second = api.create_task(instance, "echo second", run_after=[first["id"]])
    workers.start(2)
    first_done, second_done = wait_finished(api, first["id"]), wait_finished(api, second["id"])
    assert first_done["state"] == second_done["state"] == "DONE"
    assert second_done["start"] >= first_done["end"]


@pytest.mark.parametrize("make_it_fail", ["timeout", "cancel"])
def test_run_after_an_aborted_task_aborts(api: Api, instance: dict, workers: Any, make_it_fail: str) -> None:
    first = api.create_task(instance, "sleep 30", timeout=1 if make_it_fail == "timeout" else 60)
    second = api.create_task(instance, "echo never", run_after=[first["id"]])
    third = api.create_task(instance, "echo never", run_after=[second["id"]])
    if make_it_fail == "cancel":
        api.patch(f"/tasks/{first['id']}", json={"state": "ABORT"})
    workers.start(1)
    assert wait_finished(api, first["id"])["state"] == "ABORT"
    second_done = wait_finished(api, second["id"])
    assert second_done["state"] == "ABORT"
    assert second_done["error"] == f"dependency {first['id']} ended ABORT"
    assert second_done["rc"] is None and second_done["stdout"] == ""
    assert wait_finished(api, third["id"])["error"] == f"dependency {second['id']} ended ABORT"


def test_run_after_a_finished_task_runs_at_once(api: Api, instance: dict, workers: Any) -> None:
    first = api.create_task(instance, "exit 3")
    workers.start(1)
    assert wait_finished(api, first["id"])["rc"] == 3
    second = api.create_task(instance, "echo ok", run_after=[first["id"]])
    assert wait_finished(api, second["id"])["stdout"] == "ok\n"


def test_run_after_unknown_task_is_refused(api: Api, instance: dict) -> None:
    response = api.post("/tasks", json={"name": "n", "tag": "t", "instance": instance["id"], "script": "true",
                                        "run_after": [999999]})
    assert response.status_code == 422


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def sshd_sessions_above(pid: int, listener: int) -> list[int]:
    """The sshd processes (privsep monitor and session child) between a remote process and the sshd listener."""
    found = []
    while (pid := parent_pid(pid)) not in (listener, 0, 1):
        if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
            found.append(pid)
    assert pid == listener, "the remote process is not served by this sshd"
    return found


def test_a_dropped_connection_aborts_the_task_and_its_dependents_and_kills_the_remote_process(
    api: Api, instance: dict, workers: Any, sshd: Any
) -> None:
    marker = pid_file()
    task = api.create_task(instance, f"echo $$ > {marker}; exec sleep 300")
    dependent = api.create_task(instance, "echo never", run_after=[task["id"]])
    workers.start(1)
    pid = remote_pid(marker)
    shell = parent_pid(pid)  # the bootstrap shell: the process group the worker kills
    sessions = sshd_sessions_above(pid, sshd.proc.pid)
    assert sessions
    for session in sessions:  # the host stays up; only this connection's sshd dies
        with contextlib.suppress(ProcessLookupError):  # the monitor may exit on its own once its child is gone
            os.kill(session, signal.SIGKILL)
    done = wait_finished(api, task["id"])
    assert done["state"] == "ABORT", done
    assert done["error"].startswith("connection lost"), done
    assert "killed over a new connection" in done["error"], done
    assert done.get("rc") is None
    after = wait_finished(api, dependent["id"])
    assert (after["state"], after["error"]) == ("ABORT", f"dependency {task['id']} ended ABORT"), after
    assert after["stdout"] == ""
    wait_for(lambda: not process_alive(pid) and not process_alive(shell), timeout=5)
