"""Every way a task can be aborted gives `wsexec` the same answer: exit 255 (one task) or 3 (a fan-out), the reason
on stderr, whether the task ended before or after wsexec began to watch it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.clirun import Cli, declare, gate_script, start
from tests.helpers import WorkerProcesses
from wsexec.testing import SshServer


def aborted(done: Any, reason: str, stdout: str = "") -> None:
    """An aborted task's exit: 255, the output it had (none by default), the task and its reason on stderr."""
    assert done.returncode == 255 and done.stdout == stdout, done
    assert done.stderr.startswith("task ") and f" ABORT: {reason}" in done.stderr, done.stderr


def test_host_keys_are_verified_never_accepted(cli: Cli, make_sshd: Callable[..., SshServer], sshd: SshServer,
                                              ssh_user: str) -> None:
    stranger = make_sshd("127.0.1.5")  # in nobody's known_hosts
    unknown = declare(cli, stranger, "keys", ssh_user)
    aborted(cli("run", "-i", unknown, "--", "echo never"), f"unknown host key for [{stranger.host}]:{stranger.port}")

    wrong_key = stranger.known_hosts_line.split(" ", 1)[1]  # sshd's name, the stranger's key: a changed host key
    changed = declare(cli, sshd, "keys", ssh_user, "--host-key", wrong_key)
    aborted(cli("run", "-i", changed, "--", "echo never"), "host key changed for ")
    for after in (("show", "--wait"), ("show", "--follow")):  # asked again after its end: the same answer
        task = json.loads(cli("tasks", "-i", changed, "--json").stdout)["results"][0]["id"]
        aborted(cli(after[0], task, after[1]), "host key changed for ")

    done = cli("run", "-t", "keys", "--", "echo never")
    assert done.returncode == 3 and done.stdout == "", done
    assert done.stderr.splitlines()[-1] == "2 tasks: 2 ABORT", done.stderr


def test_run_user_picks_the_login(cli: Cli, sshd: SshServer, ssh_user: str) -> None:
    """--user logs in as another user the instance allows; the default one cannot log in, so the task aborts."""
    instance = declare(cli, sshd, "login", "wsexec-nobody", "--login-user", ssh_user)
    aborted(cli("run", "-i", instance, "--", "whoami"), "authentication failed for wsexec-nobody@")
    done = cli("run", "-i", instance, "--user", ssh_user, "--", "whoami")
    assert (done.returncode, done.stdout) == (0, f"{ssh_user}\n"), done.stderr
    done = cli("run", "-i", instance, "--user", "root", "--", "whoami")  # not allowed: the server's 403, one line
    assert done.returncode == 125 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "403 FORBIDDEN: user 'root' may not log in to instance" in done.stderr
    shown = json.loads(cli("instances", "show", instance, "--json").stdout)
    assert (shown["user"], shown["login_users"]) == ("wsexec-nobody", [ssh_user])


def test_a_worker_lost_while_following_exits_255(cli: Cli, cli_env: dict[str, str], workers: WorkerProcesses,
                                                 sshd: SshServer, ssh_user: str, gate: Path) -> None:
    instance = declare(cli, sshd, "lost", ssh_user)
    proc = start(cli_env, "run", "-i", instance, "--follow", "--", gate_script(gate, 0))
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline() == "first\n"  # running on the one worker
        (worker,) = workers.procs
        worker.kill()  # SIGKILL: it cannot end the task itself
        worker.wait()
        workers.start(1)  # reaps the lease, kills the remote command, ends the task ABORT
        assert proc.wait(120) == 255
        message = proc.stderr.read()
        assert message.startswith("task ") and " ABORT: worker lost" in message, message
        task = json.loads(cli("tasks", "-i", instance, "--json").stdout)["results"][0]["id"]
        aborted(cli("show", task, "--follow"), "worker lost", stdout="first\n")
    finally:
        gate.touch()  # lets the script end if anything of it still ran
        proc.kill()
        proc.wait()
