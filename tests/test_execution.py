"""Execution over real sshd: what a script prints and returns, host-key checks, unreachable hosts, task states."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Api, task_body, wait_finished, wait_for
from workers.ssh.remote import GO, INLINE_MAX, framed, inline
from wsexec.config import Settings
from wsexec.testing import SshServer, ensure_login_user, free_port

Run = Callable[..., dict[str, Any]]

UNICODE = "héllo ✓ 日本"


@pytest.fixture
def run(api: Api, workers: Any) -> Run:
    """POST a task (on `instance` or a given instance id) to one real worker process and wait until it ends."""
    workers.start(1)

    def run(instance_id: int, script: str, **fields: Any) -> dict[str, Any]:
        return wait_finished(api, api.create_task(instance_id, script, **fields)["id"])

    return run


def declare(api: Api, server: SshServer, user: str, **fields: Any) -> int:
    """Declare server as an instance and return its id."""
    response = api.post("/instances", json={"ip": server.host, "port": server.port, "tag": "exec",
                                            "user": user, **fields})
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def sha256_fingerprint(server: SshServer) -> str:
    """The host key's fingerprint as `ssh-keygen -l` prints it, computed without the code under test."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{server.host_key}.pub"],
                         check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def assert_aborted(task: dict[str, Any], error: str, settings: Settings) -> None:
    """ABORT, no rc, a clear error, and within the connect timeout (a retry loop or a hang would take far longer)."""
    assert task["state"] == "ABORT", task
    assert task.get("rc") is None, task  # the API omits unset result fields
    assert error in task["error"].lower(), task
    assert task["end"] - task["start"] < 2 * settings.connect_timeout, task


# -- what the script prints and returns --------------------------------------------------------------

OUTPUTS = [
    pytest.param("exit 3", "", "", 3, id="non-zero-rc"),
    pytest.param("exit 255", "", "", 255, id="rc-255"),
    pytest.param("echo out; echo err >&2; exit 1", "out\n", "err\n", 1, id="stderr-apart"),
    pytest.param(f"echo '{UNICODE}'; echo '{UNICODE}' >&2", f"{UNICODE}\n", f"{UNICODE}\n", 0, id="unicode"),
    pytest.param(r"printf '\377\376\000abc'", "\ufffd\ufffd\x00abc", "", 0, id="binary"),
    pytest.param("printf abc", "abc", "", 0, id="no-trailing-newline"),
    pytest.param("printf 12345", "12345", "", 0, id="digits-only-no-newline"),
    pytest.param("true", "", "", 0, id="empty"),
    pytest.param('for i in 1 2 3; do\n  echo "line $i"\ndone\necho end >&2', "line 1\nline 2\nline 3\n", "end\n", 0,
                 id="multi-line-loop"),
    pytest.param("cat; echo done", "done\n", "", 0, id="stdin-eof"),
    pytest.param("echo 42; echo 43", "42\n43\n", "", 0, id="digits-first-line"),
    pytest.param("echo before; kill -KILL $$", "before\n", "Killed\n", 137, id="killed-by-a-signal"),
]


@pytest.mark.parametrize(("script", "stdout", "stderr", "rc"), OUTPUTS)
def test_output_and_rc(api: Api, run: Run, instance: dict[str, Any], script: str, stdout: str, stderr: str,
                       rc: int) -> None:
    task = run(instance["id"], script)
    assert (task["state"], task["rc"]) == ("DONE", rc), task
    assert task["stdout"] == stdout
    assert task["stderr"] == stderr
    raw = api.get(f"/tasks/{task['id']}").get_data()
    assert json.loads(raw.decode("utf-8", errors="strict"))["stdout"] == stdout  # valid UTF-8 JSON on the wire


def test_multibyte_output_split_across_reads(run: Run, instance: dict[str, Any]) -> None:
    """~150 KB of 3-byte characters crosses many read and flush boundaries: none may be cut into U+FFFD."""
    line = "日本語のテキスト" * 3
    task = run(instance["id"], f"i=0; while [ $i -lt 2000 ]; do echo '{line}'; i=$((i+1)); done")
    assert task["state"] == "DONE", task
    assert task["stdout"] == f"{line}\n" * 2000


def test_runs_as_the_login_user(run: Run, instance: dict[str, Any], ssh_user: str) -> None:
    task = run(instance["id"], "id -un; echo $HOME")
    assert task["stdout"] == f"{ssh_user}\n/home/{ssh_user}\n", task
    assert task["user"] == ssh_user


# -- host keys ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stranger(make_sshd: Callable[..., SshServer]) -> SshServer:
    """An sshd whose host key is in no known_hosts file."""
    return make_sshd("127.0.1.2")


def test_unknown_host_key_is_refused_not_added(api: Api, run: Run, stranger: SshServer, ssh_user: str,
                                               known_hosts: Path, settings: Settings) -> None:
    before = known_hosts.read_bytes()
    task = run(declare(api, stranger, ssh_user), "echo should-not-run")
    assert_aborted(task, "unknown host key", settings)
    assert task["stdout"] == ""
    assert known_hosts.read_bytes() == before


def test_changed_host_key_is_refused(api: Api, run: Run, make_sshd: Callable[..., SshServer], ssh_user: str,
                                     known_hosts: Path, settings: Settings) -> None:
    server = make_sshd("127.0.1.3")
    with known_hosts.open("a") as f:
        f.write(server.known_hosts_line + "\n")
    instance_id = declare(api, server, ssh_user)
    assert run(instance_id, "echo ok")["stdout"] == "ok\n"  # and the worker now holds a pooled connection
    server.regenerate_host_key()
    task = run(instance_id, "echo should-not-run")
    assert_aborted(task, "host key changed", settings)
    assert task["stdout"] == ""


@pytest.mark.parametrize("pin", [
    pytest.param(lambda server, other: server.host_key_line, id="key-line"),
    pytest.param(lambda server, other: sha256_fingerprint(server), id="fingerprint"),
])
def test_pinned_host_key_trusted_without_known_hosts(api: Api, run: Run, stranger: SshServer, sshd: SshServer,
                                                     ssh_user: str, pin: Callable[..., str]) -> None:
    task = run(declare(api, stranger, ssh_user, host_key=pin(stranger, sshd)), "echo pinned")
    assert (task["state"], task["stdout"]) == ("DONE", "pinned\n"), task


@pytest.mark.parametrize("pin", [
    pytest.param(lambda server, other: other.host_key_line, id="key-line"),
    pytest.param(lambda server, other: sha256_fingerprint(other), id="fingerprint"),
])
def test_wrong_pinned_host_key_wins_over_known_hosts(api: Api, run: Run, sshd: SshServer, stranger: SshServer,
                                                      ssh_user: str, settings: Settings,
                                                      pin: Callable[..., str]) -> None:
    """sshd IS in known_hosts, but the instance pins another key: the pin decides, and it says no."""
    task = run(declare(api, sshd, ssh_user, host_key=pin(sshd, stranger)), "echo should-not-run")
    assert_aborted(task, "host key", settings)


def test_pin_applies_to_an_already_open_connection(api: Api, run: Run, sshd: SshServer, stranger: SshServer,
                                                   ssh_user: str, settings: Settings) -> None:
    """A worker that already holds a connection to the host must still check a newly pinned (wrong) key."""
    instance_id = declare(api, sshd, ssh_user)
    assert run(instance_id, "echo ok")["state"] == "DONE"
    response = api.patch(f"/instances/{instance_id}", json={"host_key": stranger.host_key_line})
    assert response.status_code == 200, response.json
    assert_aborted(run(instance_id, "echo should-not-run"), "host key", settings)


def test_broken_known_hosts_lines_cost_only_themselves(run: Run, instance: dict[str, Any], known_hosts: Path,
                                                      sshd: SshServer) -> None:
    """A garbage line and a truncated key line (same host) before the real one: OpenSSH skips them, so do we."""
    known_hosts.write_text(f"not a known_hosts line\n{sshd.known_hosts_line[:-7]}\n{known_hosts.read_text()}")
    task = run(instance["id"], "echo ok")
    assert (task["state"], task["stdout"]) == ("DONE", "ok\n"), task


# -- unreachable hosts and refused logins ---------------------------------------------------------------

@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) but never sends an SSH banner."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.fixture(scope="module")
def locked_sshd(make_sshd: Callable[..., SshServer]) -> SshServer:
    """An sshd that authorizes no key at all for the test user."""
    return make_sshd("127.0.1.4", AuthorizedKeysCommand="/bin/true")


def test_closed_port_is_connection_refused(api: Api, run: Run, settings: Settings) -> None:
    response = api.post("/instances", json={"ip": "127.0.0.1", "port": free_port(), "tag": "exec", "user": "nobody"})
    task = run(response.json["id"], "echo should-not-run")
    assert_aborted(task, "connection refused", settings)


def test_silent_port_times_out(api: Api, run: Run, silent_port: int, settings: Settings) -> None:
    response = api.post("/instances", json={"ip": "127.0.0.1", "port": silent_port, "tag": "exec", "user": "nobody"})
    task = run(response.json["id"], "echo should-not-run")
    assert_aborted(task, "timeout", settings)


def test_unknown_user_is_an_authentication_error(api: Api, run: Run, instance: dict[str, Any],
                                                 settings: Settings) -> None:
    api.patch(f"/instances/{instance['id']}", json={"login_users": ["nosuchuser"]})  # allowed, but not on the host
    task = run(instance["id"], "echo should-not-run", user="nosuchuser")
    assert_aborted(task, "authentication failed", settings)
    assert "nosuchuser" in task["error"]


def test_key_not_authorized_is_an_authentication_error(api: Api, run: Run, locked_sshd: SshServer, ssh_user: str,
                                                       settings: Settings) -> None:
    task = run(declare(api, locked_sshd, ssh_user, host_key=locked_sshd.host_key_line), "echo should-not-run")
    assert_aborted(task, "authentication failed", settings)


# -- states -------------------------------------------------------------------------------------------

def test_current_while_running_then_done_with_times(api: Api, workers: Any, instance: dict[str, Any]) -> None:
    response = api.post("/tasks", json={"name": "slow", "tag": "exec", "instance": instance["id"],
                                        "script": "sleep 2; echo slept"})
    assert (response.status_code, response.json["state"]) == (201, "INIT"), response.json
    task_id = response.json["id"]
    workers.start(1)
    running = wait_for(lambda: (task := api.get(f"/tasks/{task_id}").json)["state"] == "CURRENT" and task)
    assert running["start"] is not None and running.get("end") is None, running
    assert running.get("rc") is None, running
    done = wait_finished(api, task_id)
    assert (done["state"], done["rc"], done["stdout"]) == ("DONE", 0, "slept\n"), done
    assert done["start"] == running["start"]
    assert done["end"] >= done["start"]


# -- scripts travel in the exec request or on stdin: any accepted script runs as written -----------------

CONTROL = "".join(chr(c) for c in range(1, 32) if chr(c) not in "\n'") + "\x7f"
SCRIPTS = [
    # quoting made these up to 5x longer as a command line: E2BIG, or a packet sshd reset the connection for
    pytest.param("echo " + "'x'" * 21843, "x" * 21843 + "\n", id="quotes-64k"),
    pytest.param(": " + "''" * 32767, "", id="empty-quotes-64k"),
    pytest.param(f"printf %s '{'日' * 21800}' | wc -c", "65400\n", id="unicode-64k"),
    pytest.param(f"printf %s '{CONTROL}'", CONTROL, id="control-bytes"),
    pytest.param(f"# {UNICODE}\necho '{UNICODE}'", f"{UNICODE}\n", id="unicode-comment"),
    pytest.param("echo one\n\n\n", "one\n", id="trailing-newlines"),
    pytest.param("cat <<EOF\nhere\nEOF", "here\n", id="heredoc-without-final-newline"),
    pytest.param('read line; echo "[$line]"; head -c 10; echo end', "[]\nend\n", id="reads-stdin-gets-eof"),
]


@pytest.mark.parametrize(("script", "stdout"), SCRIPTS)
def test_scripts_run_as_written(run: Run, instance: dict[str, Any], settings: Settings, script: str,
                                stdout: str) -> None:
    assert len(script.encode()) <= settings.script_max
    task = run(instance["id"], script)
    assert (task["state"], task["rc"], task["stderr"]) == ("DONE", 0, ""), task
    assert task["stdout"] == stdout


def test_a_script_of_exactly_the_maximum_size_runs(run: Run, instance: dict[str, Any], settings: Settings) -> None:
    script = "echo ok #" + "#" * (settings.script_max - 9)
    assert len(script.encode()) == settings.script_max
    assert run(instance["id"], script)["stdout"] == "ok\n"


@pytest.mark.parametrize("extra", [0, 1], ids=["in-the-exec-request", "one-byte-over-on-stdin"])
def test_a_script_at_the_inline_limit_runs_either_way(run: Run, instance: dict[str, Any], extra: int) -> None:
    """The worker carries a script in the exec request up to INLINE_MAX bytes of request, and on stdin past it."""
    script = "echo ok #" + "#" * (INLINE_MAX - len(inline("echo ok #").encode()) + extra)
    assert (framed(script)[1] != GO) == bool(extra)
    task = run(instance["id"], script)
    assert (task["state"], task["rc"], task["stdout"], task["stderr"]) == ("DONE", 0, "ok\n", ""), task


def test_a_script_starting_with_a_dash_is_not_taken_for_shell_options(run: Run, instance: dict[str, Any]) -> None:
    task = run(instance["id"], "-x\necho $0 $#")
    assert (task["state"], task["rc"], task["stdout"]) == ("DONE", 0, "wsexec 0\n"), task
    assert task["stderr"].endswith(": -x: not found\n"), task


@pytest.fixture(scope="module")
def dash_login(session_dir: Path) -> Iterator[SshServer]:
    """A host whose login user's shell is /bin/sh, dash on Debian (the others log in with bash)."""
    server = SshServer(session_dir / "dash-login", "127.0.1.9", free_port("127.0.1.9"),
                       ensure_login_user("wsexec-dash", shell="/bin/sh"), session_dir / "authorized_keys").start()
    yield server
    server.stop()


def test_scripts_run_as_written_when_the_login_shell_is_dash(api: Api, run: Run, dash_login: SshServer) -> None:
    instance = declare(api, dash_login, dash_login.user, host_key=dash_login.host_key_line)
    scripts = [("echo $0; ps -o comm= -p $PPID", "wsexec\nsh\n", 0)]  # the script's shell, under the bootstrap's
    scripts += [(param.values[0], param.values[1], 0) for param in SCRIPTS] + [("echo x; kill -KILL $$", "x\n", 137)]
    for script, stdout, rc in scripts:
        task = run(instance, script)
        assert (task["state"], task["rc"], task["stdout"]) == ("DONE", rc, stdout), task


def test_a_shell_killed_without_exit_status_aborts_and_spares_the_connection(run: Run,
                                                                              instance: dict[str, Any]) -> None:
    """The bootstrap shell itself killed: no exit status, yet the connection is fine: ABORT, and say so."""
    task = run(instance["id"], "echo $SSH_CLIENT; kill -KILL $PPID")
    assert (task["state"], task.get("rc")) == ("ABORT", None), task
    assert "ended without an exit status" in task["error"], task
    assert run(instance["id"], "echo $SSH_CLIENT")["stdout"] == task["stdout"]  # the same connection serves on


def test_big_scripts_never_touch_a_task_sharing_their_connection(api: Api, workers: Any,
                                                                 instance: dict[str, Any]) -> None:
    """One job runs these at once over the worker's one pooled connection: the long task must end DONE rc 0."""
    big = [param.values[0] for param in SCRIPTS]
    scripts = ["echo $SSH_CLIENT; sleep 3; echo long-done", *big, "sleep 1; echo $SSH_CLIENT"]
    created = api.created("/tasks", [task_body(instance, script) for script in scripts])
    workers.start(1)
    tasks = [wait_finished(api, task["id"]) for task in created]
    assert [(t["state"], t["rc"]) for t in tasks] == [("DONE", 0)] * len(scripts), tasks
    long, last = tasks[0]["stdout"].splitlines(), tasks[-1]["stdout"]
    assert long[1] == "long-done"
    assert long[0] + "\n" == last  # same client port: the connection was never reset and reopened
