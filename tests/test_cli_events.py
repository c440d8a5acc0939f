"""`wsexec events`: a tail that shows events as they happen, filtered, and says when some are no longer kept."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.clirun import Cli, declare, environment, gate_script, gunicorn_workers, runner, start
from tests.helpers import PASSWORDS, task_body
from wsexec.config import Settings
from wsexec.testing import SshServer, free_port


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small window, so a few hundred tasks are enough to trim it."""
    return dataclasses.replace(settings, events_window=10)


def test_events_tail_a_batch_as_it_runs(cli: Cli, cli_env: dict[str, str], sshd: SshServer, ssh_user: str,
                                        gate: Path) -> None:
    instance = declare(cli, sshd, "tail", ssh_user)
    (task,) = json.loads(cli("run", "-t", "tail", "--no-wait", "--json", "--", gate_script(gate, 4)).stdout)
    cli("run", "-i", instance, "--", "true")  # another task's events: not in the batch
    proc = start(cli_env, "events", "--batch", task["batch"], "--all")
    assert proc.stdout is not None and proc.stderr is not None
    head = f"task {task['id']} instance {instance} tag tail batch {task['batch']}"
    assert proc.stdout.readline() == f"created {head} INIT\n"
    assert proc.stdout.readline() == f"started {head} CURRENT\n"
    gate.touch()  # the task ends only now: the tail shows it as it happens
    assert proc.stdout.readline() == f"finished {head} DONE rc 4\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0 and proc.stdout.read() == "" and proc.stderr.read() == ""


def test_events_no_longer_kept_are_a_gap_on_stderr(gunicorn_url: str, tmp_path: Path) -> None:
    cli = runner(gunicorn_url, tmp_path)  # no worker: the tasks stay queued
    instance = cli("instances", "add", "127.0.0.1", "-p", free_port(), "-t", "gap", "--user", "nobody",
                   user="admin").stdout.strip()
    created = requests.post(f"{gunicorn_url}/wsexec/tasks", json=[task_body(int(instance))] * 400, timeout=60,
                            auth=("operator", PASSWORDS["operator"]))
    assert created.status_code == 201, created.text
    done = cli("events", "--all", "--timeout", 0)
    assert done.returncode == 0 and done.stderr.startswith("events after 0-0 are no longer kept; going on from ")
    kept = done.stdout.splitlines()
    assert 10 <= len(kept) < 400 and kept[-1] == f"created task 400 instance {instance} tag test INIT", kept[-1]
    first = json.loads(cli("events", "--all", "--timeout", 0, "--json").stdout.splitlines()[0])
    assert first["event"] == "gap" and first["data"]["after"] == "0-0"  # --json: every event, as the server sent it


def test_an_endless_tail_outlives_a_redis_restart_and_a_broken_stream(gunicorn_url: str, tmp_path: Path,
                                                                      redis_server: Any) -> None:
    """Redis away (the server rides it out, or sends its error event) or the web process gone (SIGKILL: the stream
    breaks): wsexec goes on after the last event it saw and shows what came meanwhile, once."""
    cli = runner(gunicorn_url, tmp_path)  # no worker: the tasks stay queued
    instance = cli("instances", "add", "127.0.0.1", "-p", free_port(), "-t", "tail", "--user", "nobody",
                   user="admin").stdout.strip()
    cli("run", "-i", instance, "--no-wait", "--", "true")
    proc = start(environment(gunicorn_url, "viewer", tmp_path), "events", "--tag", "cli", "--all")
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == f"created task 1 instance {instance} tag cli INIT\n"  # it is reading
    redis_server.restart(down_seconds=3)
    cli("run", "-i", instance, "--no-wait", "--", "true")
    assert proc.stdout.readline() == f"created task 2 instance {instance} tag cli INIT\n"
    for pid in gunicorn_workers(gunicorn_url):  # the master starts new ones; the stream breaks
        os.kill(pid, signal.SIGKILL)
    cli("run", "-i", instance, "--no-wait", "--", "true")
    assert proc.stdout.readline() == f"created task 3 instance {instance} tag cli INIT\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0 and proc.stdout.read() == ""
    said = proc.stderr.read()
    assert said == "" or said.startswith("the event stream ended early (") and said.endswith("; reconnecting\n"), said
