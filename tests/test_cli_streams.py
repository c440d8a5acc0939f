"""Following a fan-out through a server with fewer stream slots than the fan-out has tasks (WSEXEC_EVENTS_STREAMS_MAX,
beyond which it answers 503): the tasks without a stream wait for one, and their output still comes, whole."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clirun import Cli, declare, gate_script, start
from wsexec.config import Settings
from wsexec.testing import SshServer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One stream a web process: gunicorn's two processes serve two streams at once, the third gets 503."""
    return dataclasses.replace(settings, events_streams_max=1)


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
