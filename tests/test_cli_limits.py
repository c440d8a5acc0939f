"""The server's limits, and `wsexec` honest about them: a fan-out followed through fewer stream slots than it has tasks
(WSEXEC_EVENTS_STREAMS_MAX, beyond which the server answers 503) still shows all its output; output beyond the
server's cap (WSEXEC_OUTPUT_CAP) is said to be missing, never passed off as all of it; a follow outlives a Redis
restart."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.clirun import Cli, declare, gate_script, gunicorn_workers, start
from wsexec.config import Settings
from wsexec.testing import SshServer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One stream a web process (gunicorn's two processes serve two at once, the third gets 503); 1000 bytes of output
    kept of each stream."""
    return dataclasses.replace(settings, events_streams_max=1, output_cap=1000)


def test_a_fan_out_wider_than_the_stream_slots_shows_all_its_output(
        cli: Cli, cli_env: dict[str, str], sshd: SshServer, make_sshd: Callable[..., SshServer], ssh_user: str,
        gate: Path) -> None:
    servers = [sshd, make_sshd("127.0.1.7"), make_sshd("127.0.1.8")]
    for server in servers:
        declare(cli, server, "slots", ssh_user, *(["--scan"] if server is not sshd else []))
    proc = start(cli_env, "run", "-t", "slots", "--follow", "--", gate_script(gate, 0))
    assert proc.stdout is not None and proc.stderr is not None
    live = {proc.stdout.readline(), proc.stdout.readline()}  # the two tasks that got a stream, while all three wait
    hosts = {f"{server.host}:{server.port}" for server in servers}
    assert {line.split(": ")[0] for line in live} < hosts and all(line.endswith(": first\n") for line in live)
    gate.touch()
    assert proc.wait(60) == 0
    rest, stderr = proc.stdout.read(), proc.stderr.read()
    waited = (hosts - {line.split(": ")[0] for line in live}).pop()
    assert rest == f"{waited}: first\n", rest  # the third task's output, once a slot was free
    assert f"{waited}: GET /tasks/" in stderr and "503 SERVICE UNAVAILABLE" in stderr, stderr  # said once
    assert {line for line in stderr.splitlines() if line.endswith(": second")} == {f"{host}: second" for host in hosts}
    assert stderr.splitlines()[-1] == "3 tasks: 3 DONE (rc 0: 3)"


def test_output_beyond_the_cap_is_said_to_be_dropped(cli: Cli, sshd: SshServer, ssh_user: str) -> None:
    instance = declare(cli, sshd, "cap", ssh_user)
    script = "head -c 5000 /dev/zero | tr '\\0' a; echo small >&2; exit 3"
    for task, how in enumerate(((), ("--follow",)), start=1):  # waited, then followed: the same answer
        done = cli("run", "-i", instance, *how, "--", script)
        assert (done.returncode, done.stdout) == (3, "a" * 1000), how  # the task's rc; the head that was kept
        assert done.stderr.splitlines() == ["small", f"task {task}: 4000 more bytes of stdout than the server keeps "
                                            "(WSEXEC_OUTPUT_CAP) were dropped; what is shown is the head"], how


def test_a_follow_outlives_a_redis_restart_and_a_broken_stream(cli: Cli, cli_env: dict[str, str], sshd: SshServer,
                                                               ssh_user: str, gate: Path, redis_server: Any,
                                                               gunicorn_url: str) -> None:
    """Redis away (the server rides it out, or ends the stream with its error event) or the web process gone
    (SIGKILL: the stream breaks): wsexec reconnects with its Last-Event-ID and shows the rest, once."""
    instance = declare(cli, sshd, "restart", ssh_user)
    proc = start(cli_env, "run", "-i", instance, "--follow", "--", gate_script(gate, 5))
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "first\n"
    redis_server.restart(down_seconds=3)
    for pid in gunicorn_workers(gunicorn_url):  # the master starts new ones
        os.kill(pid, signal.SIGKILL)
    gate.touch()
    assert proc.wait(120) == 5
    assert (proc.stdout.read(), proc.stderr.read()) == ("", "second\n")
