"""Orphans are killed: a worker killed mid-task leaves its command running on the host until the worker that reaps
its lease kills the remote process group the task recorded, then ends it ABORT "worker lost"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import Api, wait_finished, wait_for
from wsexec.store import Store


def process_group(pgid: int) -> dict[int, bytes]:
    """PID -> command line of the live (not zombie) processes of a process group on this machine (the sshd host)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
    return found


def test_the_reaper_kills_the_remote_process_group_of_a_worker_killed_mid_task(
    api: Api, instance: dict, workers: Any, store: Store, settings: Any
) -> None:
    task = api.create_task(instance, "sleep 600")
    (doomed,) = workers.start(1)
    group = wait_for(lambda: store.get_task(task["id"]).get("remote_pid"))  # recorded as the command starts
    assert store.get_task(task["id"])["state"] == "CURRENT"
    assert b"sleep\x00600\x00" in wait_for(lambda: process_group(group).values())
    doomed.kill()  # SIGKILL: nothing of it runs to clean up
    doomed.wait()
    workers.start(1)  # the survivor reaps the lease
    done = wait_finished(api, task["id"], timeout=settings.lease_seconds + 20)
    assert done["state"] == "ABORT"
    assert done["error"] == f"worker lost; its remote process group {group} was killed over a new connection"
    wait_for(lambda: not process_group(group), timeout=5)  # TERM, then KILL a second later


def test_a_task_lost_before_its_command_started_says_so(api: Api, instance: dict, store: Store, workers: Any) -> None:
    task = api.create_task(instance, "true")
    assert store.claim(task["id"], "gone-worker", 1)  # claimed by a worker that died before the command started
    workers.start(1)
    done = wait_finished(api, task["id"], timeout=20)
    assert (done["state"], done["error"]) == ("ABORT", "worker lost")
