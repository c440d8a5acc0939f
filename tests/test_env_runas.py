"""A task's env and run_as over real sshd and workers: values byte for byte, names checked, sudo with and without a
rule, on fixed commands and fan-outs, and the values in no answer, audit entry, log or webhook."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pwd
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from tests import test_webhooks
from tests.clirun import WSEXEC
from tests.clirun import environment as cli_environment
from tests.helpers import ROOT, Api, task_body, wait_finished, wait_for
from tests.test_readme import QUICKSTART_LINES, json_lines, run_blocks
from tests.test_webhooks import Receiver, wait_delivery
from workers.schedules import ScheduleLoop
from wsexec import jobs
from wsexec.config import DEFAULT_COMMANDS, Settings
from wsexec.store import Store
from wsexec.tasks import environment
from wsexec.testing import SshServer, ensure_login_user

SECRET = "s3cr3t-wsexec-value-4f1e"
# what a shell would expand, split or choke on if the value were not quoted exactly
VALUES = {
    "SINGLE": "it's 'quoted'",
    "DOUBLE": 'say "hi" \\"there\\"',
    "DOLLAR": "$HOME ${USER} $(id -u) $$",
    "BACKTICK": "`id -un` and \\`",
    "BACKSLASH": "a\\b\\\\c\\n\\",
    "NEWLINES": "line 1\nline 2\n\n",
    "UNICODE": "héllo ✓ 日本 \u202e",
    "EMPTY": "",
    "SPACES": "  two  spaces\tand a tab ",
    "GLOB": "* ? [a-z] ~",
    "SEMICOLON": "x; exit 9 & | > /dev/null",
}
SEPARATOR = "\n--wsexec-separator--\n"


@dataclass(frozen=True)
class SudoUsers:
    """A user the login user may become with sudo (a NOPASSWD rule for /bin/sh only), and one it may not."""

    allowed: str
    refused: str


def _delete_user(name: str) -> None:
    subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


@pytest.fixture(scope="session")
def sudo_users(ssh_user: str, worker_id: str) -> Iterator[SudoUsers]:
    """Users and a sudoers.d rule of this test process (names prefixed wsexec-test-), removed at the end."""
    users = SudoUsers(f"wsexec-test-as-{worker_id}", f"wsexec-test-no-{worker_id}")
    rule = Path(f"/etc/sudoers.d/wsexec-test-{worker_id}")
    try:
        for name in (users.allowed, users.refused):
            ensure_login_user(name)
        draft = rule.with_name(f"wsexec-test-{worker_id}.draft")  # sudo ignores names with a dot
        draft.write_text(f"{ssh_user} ALL=({users.allowed}) NOPASSWD: /bin/sh\n")
        draft.chmod(0o440)
        subprocess.run(["visudo", "-c", "-q", "-f", str(draft)], check=True)
        draft.rename(rule)
        yield users
    finally:
        rule.unlink(missing_ok=True)
        for name in (users.allowed, users.refused):
            _delete_user(name)


receiver = test_webhooks.receiver  # the loopback webhook receiver, the same fixture


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    """A fixed command that shows who runs it and with what, and webhooks allowed to the receiver."""
    commands = {**DEFAULT_COMMANDS, "whoami": 'printf "%s %s" "$(id -un)" "$RELEASE"'}
    return dataclasses.replace(settings, commands=commands, webhook_allow=f"{receiver.url}/hooks",
                               webhook_secret="test-webhook-secret", webhook_backoff=0.3)


@pytest.fixture
def run(api: Api, workers: Any) -> Any:
    workers.start(1)

    def run(instance: dict[str, Any], script: str, **fields: Any) -> dict[str, Any]:
        return wait_finished(api, api.create_task(instance, script, **fields)["id"], timeout=60)

    return run


def printing(names: list[str]) -> str:
    """A script that prints each variable as a child process sees it (so exported), separated."""
    return f"printf '{SEPARATOR}'; ".join(f"/bin/sh -c 'printf %s \"${name}\"'; " for name in names)


# -- env -------------------------------------------------------------------------------------------------------------

def test_env_values_arrive_byte_exact(api: Api, run: Any, instance: dict[str, Any]) -> None:
    task = run(instance, printing(list(VALUES)), env=VALUES)
    assert task["state"] == "DONE" and task["rc"] == 0, task
    assert task["stdout"].split(SEPARATOR) == list(VALUES.values())
    assert task["env_names"] == sorted(VALUES)
    assert "env" not in task


def test_env_values_never_shown(api: Api, store: Store, run: Any, instance: dict[str, Any]) -> None:
    """The task, the list and the audit log name the variables; none of them holds a value, nor does Redis once the
    task has run."""
    task = run(instance, 'printf %s "$TOKEN" | sha256sum', env={"TOKEN": SECRET})
    stored = store.get_task(task["id"])
    assert "env" not in stored and stored["env_names"] == ["TOKEN"], stored
    assert task["stdout"].split()[0] == hashlib.sha256(SECRET.encode()).hexdigest(), task
    listed = api.get("/tasks").json["results"]
    audit = api.get("/audit").json
    for shown in (task, listed, audit):
        assert SECRET not in json.dumps(shown)
    assert listed[0]["env_names"] == ["TOKEN"]


@pytest.mark.parametrize("env, where", [
    pytest.param({"1ABC": "x"}, "1ABC", id="starts-with-digit"),
    pytest.param({"A-B": "x"}, "A-B", id="dash"),
    pytest.param({"A B": "x"}, "A B", id="space"),
    pytest.param({"": "x"}, "", id="empty"),
    pytest.param({"É": "x"}, "É", id="non-ascii"),
    pytest.param({"PATH": "/opt/bin"}, "PATH", id="reserved-PATH"),
    pytest.param({"IFS": ","}, "IFS", id="reserved-IFS"),
    pytest.param({"LD_PRELOAD": "/tmp/x.so"}, "LD_PRELOAD", id="reserved-LD"),
    pytest.param({"SUDO_USER": "root"}, "SUDO_USER", id="reserved-SUDO"),
    pytest.param({"A" * 129: "x"}, "A" * 129, id="long-name"),
])
def test_bad_env_names_are_422(api: Api, instance: dict[str, Any], env: dict[str, str], where: str) -> None:
    response = api.post("/tasks", json=task_body(instance, env=env))
    assert response.status_code == 422, response.json
    assert "key" in response.json["detail"]["env"][where]
    assert api.get("/tasks").json["count"] == 0


@pytest.mark.parametrize("env", [
    pytest.param({"A": "x\0y"}, id="nul"),
    pytest.param({"A": "é" * (environment.VALUE_MAX // 2 + 1)}, id="value-too-long"),
    pytest.param({"A": 3}, id="not-a-string"),
    pytest.param({f"V{n}": "x" for n in range(environment.COUNT_MAX + 1)}, id="too-many"),
    pytest.param(["A=1"], id="not-an-object"),
])
def test_bad_env_values_are_422(api: Api, instance: dict[str, Any], env: Any) -> None:
    response = api.post("/tasks", json=task_body(instance, env=env))
    assert response.status_code == 422, response.json
    assert "env" in response.json["detail"]


def test_env_counts_in_the_script_size(api: Api, instance: dict[str, Any], settings: Settings) -> None:
    """Quoting may grow a value 5 times: what runs (exports and script) must fit the script limit."""
    quotes = "'" * 4096
    room = settings.script_max - len(environment.exports({"A": quotes}).encode())
    response = api.post("/tasks", json=task_body(instance, "#" * (room + 1), env={"A": quotes}))
    assert response.status_code == 422, response.json
    assert "longer than" in response.json["detail"]["env"][0]
    assert api.post("/tasks", json=task_body(instance, "#" * room, env={"A": quotes})).status_code == 201


def test_env_and_run_as_cannot_change(api: Api, store: Store, instance: dict[str, Any]) -> None:
    """And a task cancelled before it ran drops its values too."""
    task = api.create_task(instance, "true", env={"A": SECRET}, run_as="nobody", scheduled_at=4102444800)
    assert store.get_task(task["id"])["env"] == {"A": SECRET}  # kept for the worker until the task ends
    for change in ({"env": {"A": "2"}}, {"run_as": "root"}):
        response = api.patch(f"/tasks/{task['id']}", json=change)
        assert response.status_code == 422, response.json
    assert api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"}).json["state"] == "ABORT"
    stored = store.get_task(task["id"])
    assert "env" not in stored and (stored["env_names"], stored["run_as"]) == (["A"], "nobody"), stored


# -- run_as ----------------------------------------------------------------------------------------------------------

def test_run_as_with_a_sudo_rule(run: Any, instance: dict[str, Any], sudo_users: SudoUsers) -> None:
    """The script runs as that user, with its env (sudo resets the environment: the exports come after it)."""
    task = run(instance, 'id -un; printf "%s\\n" "$GREETING"; exit 7', run_as=sudo_users.allowed,
               env={"GREETING": VALUES["DOLLAR"]})
    assert task["state"] == "DONE", task
    assert task["rc"] == 7  # the script's own rc, not sudo's
    assert task["stdout"] == f"{sudo_users.allowed}\n{VALUES['DOLLAR']}\n"
    assert task["run_as"] == sudo_users.allowed


def test_run_as_without_a_sudo_rule_aborts_at_once(run: Any, instance: dict[str, Any], sudo_users: SudoUsers,
                                                  ssh_user: str) -> None:
    """sudo -n refuses instead of asking for a password: ABORT saying so, long before the task's timeout."""
    task = run(instance, "touch /tmp/wsexec-test-should-not-run", run_as=sudo_users.refused, timeout=600)
    assert task["state"] == "ABORT", task
    assert task.get("rc") is None
    assert f"run_as {sudo_users.refused}" in task["error"]
    assert "password is required" in task["error"]
    assert f"{ssh_user} ALL=({sudo_users.refused}) NOPASSWD" in task["error"]
    assert task["end"] - task["start"] < task["timeout"] / 10
    assert not Path("/tmp/wsexec-test-should-not-run").exists()


def test_run_as_an_unknown_user(run: Any, instance: dict[str, Any], sudo_users: SudoUsers) -> None:
    task = run(instance, "true", run_as="wsexec-test-nobody-here")
    assert task["state"] == "ABORT", task
    assert "run_as wsexec-test-nobody-here" in task["error"]


def test_run_as_timeout_kills_the_script(run: Any, instance: dict[str, Any], sudo_users: SudoUsers) -> None:
    """The run's timeout kills what sudo started, too."""
    task = run(instance, "echo started; sleep 300", run_as=sudo_users.allowed, timeout=3)
    assert task["state"] == "ABORT" and "timeout" in task["error"], task
    uid = str(pwd.getpwnam(sudo_users.allowed).pw_uid)
    wait_for(lambda: subprocess.run(["pgrep", "-u", uid, "-f", "sleep 300"], capture_output=True).returncode == 1)


# -- fixed commands, fan-out -----------------------------------------------------------------------------------------

def test_fixed_command_with_env_and_run_as(api: Api, workers: Any, instance: dict[str, Any],
                                           sudo_users: SudoUsers) -> None:
    workers.start(1)
    response = api.post("/commands/whoami?wait=30", json={"instance": instance["id"], "run_as": sudo_users.allowed,
                                                          "env": {"RELEASE": SECRET}})
    assert response.status_code == 200, response.text
    assert response.text == f"{sudo_users.allowed} {SECRET}"
    task = api.get(f"/tasks/{response.headers['X-Wsexec-Task']}").json
    assert task["run_as"] == sudo_users.allowed and task["env_names"] == ["RELEASE"]
    (entry,) = [e for e in api.get("/audit").json["results"] if e["action"] == "command.run"]
    assert entry["detail"]["env_names"] == ["RELEASE"] and entry["detail"]["run_as"] == sudo_users.allowed
    assert SECRET not in json.dumps(api.get("/audit").json)
    bad = api.post("/commands/whoami", json={"instance": instance["id"], "env": {"PATH": "/x"}})
    assert bad.status_code == 422 and "env" in bad.json["detail"]


def test_fan_out_tasks_carry_env_and_run_as(api: Api, workers: Any, make_sshd: Any, ssh_user: str,
                                            sudo_users: SudoUsers, known_hosts: Path) -> None:
    servers: list[SshServer] = [make_sshd("127.0.1.2"), make_sshd("127.0.1.3")]
    for server in servers:
        known_hosts.write_text(known_hosts.read_text() + server.known_hosts_line + "\n")
        api.created("/instances", {"ip": server.host, "port": server.port, "tag": "envfan", "user": ssh_user})
    workers.start(1)
    tasks = api.created("/tasks", {"name": "fan", "tag": "test", "target": {"tag": "envfan"},
                                   "script": 'echo "$(id -un) $A"', "env": {"A": "x y"}, "run_as": sudo_users.allowed})
    assert len(tasks) == 2
    for created in tasks:
        task = wait_finished(api, created["id"], timeout=60)
        assert task["stdout"] == f"{sudo_users.allowed} x y\n", task
        assert task["env_names"] == ["A"] and task["run_as"] == sudo_users.allowed


# -- the CLI, and where a value must never show ----------------------------------------------------------------------

def test_the_cli_sends_env_and_run_as(gunicorn_url: str, workers: Any, instance: dict[str, Any], tmp_path: Path,
                                      sudo_users: SudoUsers, capfd: pytest.CaptureFixture[str]) -> None:
    """`wsexec run --env K=V --run-as USER`: the values arrive as written, and no log line of gunicorn or the worker,
    nor the task as the CLI shows it, has the secret."""
    workers.start(1)
    env = cli_environment(gunicorn_url, "operator", tmp_path)

    def wsexec(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(WSEXEC), *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    done = wsexec("run", "-i", str(instance["id"]), "--env", f"QUOTED={VALUES['DOLLAR']}", "--env", f"TOKEN={SECRET}",
                  "--run-as", sudo_users.allowed, "--json", "--", 'id -un; printf "%s" "$QUOTED" | sha256sum; '
                                                                    'printf "%s" "$TOKEN" | sha256sum')
    task = json.loads(done.stdout)
    digests = [hashlib.sha256(value.encode()).hexdigest() for value in (VALUES["DOLLAR"], SECRET)]
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in task["stdout"].splitlines()] == [sudo_users.allowed, *digests], task
    assert task["env_names"] == ["QUOTED", "TOKEN"] and task["run_as"] == sudo_users.allowed

    done = wsexec("cmd", "whoami", "-i", str(instance["id"]), "--env", "RELEASE=2026.12", "--run-as",
                  sudo_users.allowed)
    assert (done.returncode, done.stdout) == (0, f"{sudo_users.allowed} 2026.12"), done.stderr

    refused = wsexec("run", "-i", str(instance["id"]), "--env", "PATH=/opt/bin", "--", "true")
    assert refused.returncode == 125 and "422" in refused.stderr and "PATH" in refused.stderr, refused.stderr
    assert wsexec("run", "-i", str(instance["id"]), "--env", "NOEQUALS", "--", "true").returncode == 2

    logs = capfd.readouterr()  # the worker's output (it inherits the test's stdout and stderr)
    gunicorn_log = (tmp_path / "gunicorn.log").read_text()
    assert "POST /wsexec/tasks" in gunicorn_log
    for text in (logs.out, logs.err, gunicorn_log, done.stdout):
        assert SECRET not in text


def test_schedules_and_webhooks_name_the_env_only(api: Api, store: Store, redis: Redis, settings: Settings,
                                                  workers: Any, instance: dict[str, Any], receiver: Receiver) -> None:
    """A schedule's template keeps its env for its fires; GET, the audit log and the webhook show the names."""
    schedule = api.created("/schedules", {"name": "nightly", "interval": 60, "template": {
        "instance": instance["id"], "script": 'test "$TOKEN" = "$(cat /dev/null)$EXPECTED"', "env": {
            "TOKEN": SECRET, "EXPECTED": SECRET}, "notify": {"url": f"{receiver.url}/hooks", "on": ["DONE"]}}})
    loop = ScheduleLoop(store, jobs.make_queue(redis, settings.queue), settings, "test-loop")
    fired = loop.fire(schedule["id"], schedule["next_run"] + 0.1)
    assert fired is not None
    (created,) = fired.tasks
    workers.start(1)
    task = wait_finished(api, created["id"], timeout=60)
    assert (task["state"], task["rc"], task["env_names"]) == ("DONE", 0, ["EXPECTED", "TOKEN"]), task
    delivery = wait_delivery(api, f"t{task['id']}-n")
    assert delivery["payload"]["task"]["env_names"] == ["EXPECTED", "TOKEN"]
    shown = api.get(f"/schedules/{schedule['id']}").json
    assert shown["template"]["env_names"] == ["EXPECTED", "TOKEN"]
    audit = api.get("/audit").json
    (entry,) = [e for e in audit["results"] if e["action"] == "schedule.create"]
    assert entry["detail"]["template"]["env_names"] == ["EXPECTED", "TOKEN"]
    for where in (shown, audit, receiver.bodies(), api.get("/webhooks/deliveries").json, task):
        assert SECRET not in json.dumps(where)


def test_the_openapi_document_describes_env_and_run_as(api: Api) -> None:
    schemas = api.as_user("viewer").get("/openapi.json").json["components"]["schemas"]
    props = {name: schema.get("properties", {}) for name, schema in schemas.items()}
    with_env = sorted(name for name, fields in props.items() if "env" in fields)
    assert any(name.startswith("Task") for name in with_env) and any("Command" in name for name in with_env)
    for name in with_env:
        env, run_as = props[name]["env"], props[name]["run_as"]
        assert env["type"] == "object" and env["additionalProperties"]["type"] == "string", env
        assert env.get("writeOnly") is True and "never shown" in env["description"], env
        assert run_as["type"] == "string" and "sudo -n -u" in run_as["description"]
    shown = [fields["env_names"] for fields in props.values() if "env_names" in fields]
    assert shown and all(f["type"] == "array" and f.get("readOnly") for f in shown), shown


@pytest.fixture
def demo_sudo_rule(demo_host: SshServer, worker_id: str) -> Iterator[None]:
    """The README's rule for the demo host's login user (www-data: Debian's own user), removed afterwards."""
    rule = Path(f"/etc/sudoers.d/wsexec-test-readme-{worker_id}")
    rule.write_text(f"{demo_host.user} ALL=(www-data) NOPASSWD: /bin/sh\n")
    rule.chmod(0o440)
    yield
    rule.unlink(missing_ok=True)


def test_the_readme_env_block(gunicorn_url: str, workers: Any, demo_host: SshServer, demo_sudo_rule: None,
                              tmp_path: Path) -> None:
    workers.start(1)
    done = run_blocks(["quickstart", "env"], gunicorn_url, demo_host.port, tmp_path)
    deployed, ran_as = json_lines(done, QUICKSTART_LINES)
    assert deployed["stdout"] == "release 2026.12, a password of 11 characters\n", deployed
    assert deployed["env_names"] == ["DB_PASSWORD", "RELEASE"]
    assert (ran_as["state"], ran_as["stdout"], ran_as["run_as"]) == ("DONE", "www-data\n", "www-data"), ran_as
    assert "w0rd" not in done.stdout
