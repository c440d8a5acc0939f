"""The `wsexec` command, run as a subprocess against real gunicorn, a worker and sshd: its output and exit codes."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path

import requests

from tests.clirun import Cli, declare, environment, gate_script, on_terminal, start
from tests.helpers import CRON_TOKEN, PASSWORDS
from wsexec.testing import SshServer, free_port


def test_one_task_exits_with_its_rc_or_255_when_aborted(cli: Cli, sshd: SshServer, ssh_user: str,
                                                       tmp_path: Path) -> None:
    instance = declare(cli, sshd, "one", ssh_user)

    done = cli("run", "-i", instance, "--", "echo héllo; echo oops >&2; exit 3")
    assert (done.returncode, done.stdout) == (3, "héllo\n")
    assert done.stderr == "oops\n"
    assert cli("run", "-i", instance, "--", "true").returncode == 0

    done = cli("run", "-i", instance, "--env", "GREETING=it's a s3cret", "--user", ssh_user, "--json", "--",
               'echo "$GREETING"')
    task = json.loads(done.stdout)
    assert (done.returncode, task["stdout"]) == (0, "it's a s3cret\n"), done.stderr
    shown = json.loads(cli("show", task["id"], "--json").stdout)
    assert shown.pop("stdout") == task["stdout"] and "s3cret" not in json.dumps(shown)  # env: written, never read
    done = cli("run", "-i", instance, input="echo from stdin; exit 7\n")
    assert (done.returncode, done.stdout) == (7, "from stdin\n")
    script = tmp_path / "script.sh"
    script.write_text("echo from a file\nexit 9\n")
    done = cli("run", "-i", instance, "-f", script)
    assert (done.returncode, done.stdout) == (9, "from a file\n")

    done = cli("run", "-i", instance, "--timeout", 1, "--", "sleep 30")
    assert done.returncode == 255, done
    assert done.stderr.startswith("task ") and "ABORT: timeout after 1 s" in done.stderr, done.stderr

    done = cli("run", "-i", instance, "--json", "--", "echo out; exit 3")
    task = json.loads(done.stdout)
    assert done.returncode == 3 and (task["state"], task["rc"], task["stdout"]) == ("DONE", 3, "out\n")

    unreachable = cli("instances", "add", "127.0.0.1", "-p", free_port(), "-t", "gone", "--user", ssh_user,
                      user="admin").stdout.strip()
    done = cli("run", "-i", unreachable, "--", "true")
    assert done.returncode == 255 and done.stdout == ""
    assert done.stderr.startswith("task ") and " ABORT: " in done.stderr, done.stderr


def test_follow_streams_before_the_end_and_ctrl_c_detaches(cli: Cli, cli_env: dict[str, str], sshd: SshServer,
                                                          ssh_user: str, gate: Path) -> None:
    instance = declare(cli, sshd, "follow", ssh_user)
    proc = start(cli_env, "run", "-i", instance, "--follow", "--", gate_script(gate, 5))
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "first\n"  # shown while the task still waits for the gate
    gate.touch()
    assert proc.wait(60) == 5
    assert (proc.stdout.read(), proc.stderr.read()) == ("", "second\n")

    gate.unlink()
    proc = start(cli_env, "run", "-i", instance, "--follow", "--", gate_script(gate, 6))
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "first\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    message = proc.stderr.read()
    assert "detached" in message and "Traceback" not in message, message
    task_id = int(message.split("wsexec show ")[1].split()[0])
    assert message.strip().endswith(f"wsexec show {task_id} --follow")
    running = json.loads(cli("show", task_id, "--json").stdout)
    assert running["state"] == "CURRENT"

    # re-attached before the end, then after it: the same output and the same exit code
    proc = start(cli_env, "show", task_id, "--follow")
    assert proc.stdout is not None and proc.stdout.readline() == "first\n"
    gate.touch()
    assert proc.wait(60) == 6
    after = cli("show", task_id, "--follow")
    assert (after.returncode, after.stdout, after.stderr) == (6, "first\n", "second\n")
    assert cli("show", task_id, "--wait").returncode == 6
    assert cli("show", task_id).returncode == 0  # a plain show is not a wait


def test_ctrl_c_with_cancel_on_interrupt_and_cancel(cli: Cli, cli_env: dict[str, str], sshd: SshServer,
                                                   ssh_user: str, gate: Path) -> None:
    instance = declare(cli, sshd, "cancel", ssh_user)
    proc = start(cli_env, "run", "-i", instance, "--follow", "--cancel-on-interrupt", "--",
                 gate_script(gate, 0))
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "first\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    message = proc.stderr.read()
    assert message.startswith("cancelled task "), message
    task_id = int(message.split()[2])
    done = cli("show", task_id, "--wait")
    assert done.returncode == 255 and "ABORT: cancelled by operator" in done.stderr, done.stderr

    queued = cli("run", "-i", instance, "--no-wait", "--", "sleep 60")
    assert queued.returncode == 0 and "wsexec show" in queued.stderr
    task_id = int(queued.stdout)
    assert cli("cancel", task_id).stdout == f"task {task_id}: ABORT\n"
    done = cli("show", task_id, "--wait", "--json")
    assert done.returncode == 255 and json.loads(done.stdout)["state"] == "ABORT"


def test_fan_out_prefixes_lines_and_exits_0_4_or_3(cli: Cli, cli_env: dict[str, str], gate: Path,
                                                  make_sshd: Callable[..., SshServer], sshd: SshServer,
                                                  ssh_user: str) -> None:
    other = make_sshd("127.0.1.2")  # not in the workers' known_hosts: --scan pins its key
    declare(cli, sshd, "fan", ssh_user)
    scanned = cli("instances", "add", other.host, "-p", other.port, "-t", "fan", "--user", ssh_user, "--scan",
                  "--json", user="admin")
    assert scanned.returncode == 0, scanned.stderr
    assert "SHA256:" in scanned.stderr and json.loads(scanned.stdout)["host_key"] == other.known_hosts_line.split(
        " ", 1)[1]
    first, second = f"{sshd.host}:{sshd.port}", f"{other.host}:{other.port}"

    done = cli("run", "-t", "fan", "--", "echo one; echo two")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(f"{host}: {line}" for host in (first, second)
                                                      for line in ("one", "two"))
    assert done.stderr.strip() == "2 tasks: 2 DONE (rc 0: 2)"

    script = f'case "$SSH_CONNECTION" in *" {other.host} "*) echo bad >&2; exit 3;; esac; echo fine'
    for how in ((), ("--follow",)):
        done = cli("run", "-t", "fan", *how, "--", script)
        assert done.returncode == 4, done.stderr
        assert done.stdout == f"{first}: fine\n"
        assert done.stderr.splitlines() == [f"{second}: bad", "2 tasks: 2 DONE (rc 0: 1, rc 3: 1)"]

    proc = start(cli_env, "run", "-t", "fan", "--follow", "--", gate_script(gate, 0))
    assert proc.stdout is not None and proc.stderr is not None
    shown = sorted([proc.stdout.readline(), proc.stdout.readline()])
    assert shown == sorted([f"{first}: first\n", f"{second}: first\n"])
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130  # both followers stopped cleanly
    message = proc.stderr.read()
    assert "detached; the tasks go on. Re-attach with: wsexec show ID --follow, for ID in " in message, message
    gate.touch()

    batch = json.loads(cli("tasks", "--name", "echo one; echo two", "--json").stdout)["results"][0]["batch"]
    shown = cli("batch", batch, "--wait", "--json")
    assert shown.returncode == 0
    assert set(json.loads(shown.stdout)) == {"id", "total", "finished", "states", "rc", "tasks"}

    unreachable = cli("instances", "add", "127.0.0.1", "-p", free_port(), "-t", "fan", "--user", ssh_user,
                      user="admin")
    done = cli("run", "-t", "fan", "--json", "--", "exit 0")
    assert done.returncode == 3
    tasks = json.loads(done.stdout)
    assert sorted(task["state"] for task in tasks) == ["ABORT", "DONE", "DONE"]
    assert "127.0.0.1:" in done.stderr and "3 tasks: 2 DONE (rc 0: 2), 1 ABORT" in done.stderr
    assert cli("batch", tasks[0]["batch"], "--wait").returncode == 3
    assert cli("instances", "rm", unreachable.stdout.strip(), user="admin").returncode == 0

    two = cli("run", "-i", json.loads(cli("instances", "--json").stdout)["results"][-1]["id"],
              "-i", tasks[0]["instance"], "--", "exit 0")
    assert two.returncode == 0 and two.stderr.strip() == "2 tasks: 2 DONE (rc 0: 2)"


def test_listings_show_and_json_shapes(cli: Cli, gunicorn_url: str, sshd: SshServer, ssh_user: str) -> None:
    instance = declare(cli, sshd, "list", ssh_user)
    assert cli("run", "-i", instance, "--name", "listed", "--", "echo listed").returncode == 0

    listing = json.loads(cli("tasks", "--tag", "cli", "--state", "DONE", "--json").stdout)
    assert set(listing) == {"count", "next", "previous", "results"} and listing["count"] == 1
    task = listing["results"][0]
    plain = cli("tasks").stdout.splitlines()  # in a pipe: a header, then tab-separated rows
    assert plain[0].split("\t") == ["ID", "STATE", "RC", "INSTANCE", "TAG", "NAME", "CREATED_BY", "START", "END"]
    assert plain[1].split("\t")[:6] == [str(task["id"]), "DONE", "0", str(instance), "cli", "listed"]
    assert "\x1b[" not in "".join(plain)  # no colours in a pipe
    shown = cli("show", task["id"])
    assert re.search(r"^state: +DONE$", shown.stdout, re.M) and re.search(r"^stdout: +listed$", shown.stdout, re.M)
    api = requests.get(f"{gunicorn_url}/wsexec/tasks/{task['id']}", auth=("viewer", PASSWORDS["viewer"]), timeout=30)
    assert json.loads(cli("show", task["id"], "--json").stdout) == api.json()  # the API's own shape, unchanged

    instances = json.loads(cli("instances", "--json").stdout)
    assert set(instances) == {"count", "next", "previous", "results"} and instances["results"][0]["id"] == instance
    assert cli("instances").stdout.splitlines()[0].startswith("ID\tIP\tPORT\tTAG\tSTATE")
    assert json.loads(cli("instances", "show", instance, "--json").stdout)["port"] == sshd.port
    facts = cli("instances", "facts", instance, "--json", user="admin")
    assert facts.returncode == 0, facts.stderr
    assert json.loads(facts.stdout)["kernel"]

    commands = json.loads(cli("cmd", "--json").stdout)
    assert commands["uptime"] == "uptime"
    done = cli("cmd", "uptime", "-i", instance)
    assert done.returncode == 0 and "load average" in done.stdout
    assert json.loads(cli("cmd", "df", "-i", instance, "--json").stdout)["name"] == "df"

    events = cli("events", "--instance", instance, "--all", "--timeout", 0, "--json")
    assert events.returncode == 0, events.stderr
    seen = [json.loads(line) for line in events.stdout.splitlines()]
    assert {"created", "started", "finished"} <= {event["event"] for event in seen}
    assert all(set(event) == {"event", "id", "data"} and event["data"]["instance"] == instance for event in seen)
    assert f"finished task {task['id']} instance {instance} tag cli DONE rc 0" in cli(
        "events", "--all", "--timeout", 0).stdout.splitlines()

    assert cli("instances", "rm", instance, user="admin").stdout == f"instance {instance}: removed\n"


def test_bad_credentials_missing_server_and_config_files(cli: Cli, gunicorn_url: str, tmp_path: Path) -> None:
    env = environment(gunicorn_url, None, tmp_path) | {"WSEXEC_USER": "operator", "WSEXEC_PASSWORD": "wrong-pw"}
    done = cli("tasks", env=env)
    assert done.returncode == 125 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "401 UNAUTHORIZED" in done.stderr.upper(), done.stderr
    assert "wrong-pw" not in done.stderr

    env = environment(f"http://127.0.0.1:{free_port()}", "operator", tmp_path)
    done = cli("tasks", env=env)
    assert done.returncode == 125 and len(done.stderr.splitlines()) == 1
    assert "connection refused" in done.stderr and "WSEXEC_URL" in done.stderr

    no_password = environment(gunicorn_url, None, tmp_path) | {"WSEXEC_USER": "operator"}
    done = cli("tasks", env=no_password)  # stdin is not a terminal: no prompt
    assert done.returncode == 125 and "no password for operator" in done.stderr

    config = tmp_path / "config" / "wsexec" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{gunicorn_url}"\nuser = "viewer"\npassword = "{PASSWORDS["viewer"]}"\n')
    config.chmod(0o644)
    bare = environment("", None, tmp_path)
    del bare["WSEXEC_URL"]
    done = cli("tasks", env=bare)
    assert done.returncode == 125 and "readable by others" in done.stderr and "chmod 600" in done.stderr
    assert PASSWORDS["viewer"] not in done.stderr
    config.chmod(0o600)
    assert cli("tasks", "--json", env=bare).returncode == 0
    done = cli("--token", "not-a-token", "tasks", env=bare)  # an option wins over the file
    assert done.returncode == 125 and "401" in done.stderr

    usage = cli("--help", env=bare).stdout
    assert "Exit codes" in usage and "255" in usage and "125" in usage


def test_on_a_terminal_it_asks_the_password_and_draws_tables(cli: Cli, cli_env: dict[str, str], sshd: SshServer,
                                                            ssh_user: str) -> None:
    instance = declare(cli, sshd, "tty", ssh_user)
    assert cli("run", "-i", instance, "--", "true").returncode == 0
    env = {key: value for key, value in cli_env.items() if key != "WSEXEC_PASSWORD"}
    code, shown = on_terminal(env, ["tasks"], PASSWORDS["operator"])
    assert code == 0, shown
    assert "password for operator" in shown and PASSWORDS["operator"] not in shown  # asked, not echoed
    assert "┏━━━━┳" in shown and "\x1b[32mDONE" in shown, shown  # rich's table, the state in colour
    code, shown = on_terminal(env, ["run", "-t", "tty", "--", "exit 3"], PASSWORDS["operator"])
    assert code == 4 and "1 task: 1 DONE (rc 3: 1)" in shown, shown



def test_login_saves_a_config_file_only_its_owner_reads(cli: Cli, gunicorn_url: str, tmp_path: Path) -> None:
    bare = {key: value for key, value in environment(gunicorn_url, None, tmp_path).items() if key != "WSEXEC_URL"}
    code, shown = on_terminal(bare, ["login", "--url", gunicorn_url, "--user", "viewer"], PASSWORDS["viewer"])
    assert code == 0 and "saved to" in shown, shown
    config = tmp_path / "config" / "wsexec" / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600 and PASSWORDS["viewer"] not in shown
    assert json.loads(cli("tasks", "--json", env=bare).stdout)["count"] == 0
    code, shown = on_terminal(bare, ["login", "--url", gunicorn_url, "--user", "viewer"], "wrong")
    assert code == 125 and "401" in shown and config.stat().st_mode & 0o777 == 0o600
    assert cli("whoami", env=bare).stdout == "viewer (viewer)\n"  # refused credentials are not saved
    code, shown = on_terminal(bare, ["login", "--url", gunicorn_url, "--token"], CRON_TOKEN)
    assert code == 0 and CRON_TOKEN not in shown, shown
    assert cli("whoami", env=bare).stdout == "nightly (operator)\n" and config.stat().st_mode & 0o777 == 0o600
