"""The README's shell blocks, run as written against real gunicorn, a worker and an sshd standing in for the demo
host; only the addresses change (gunicorn and sshd listen on free ports here, not 5000 and 2222)."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import CRON_TOKEN, PASSWORDS, ROOT
from wsexec.testing import SshServer

README = (ROOT / "README.md").read_text()


def block(name: str) -> str:
    """The ```sh block that follows <!-- name --> in the README."""
    found = re.search(rf"<!-- {name} -->\n```sh\n(.*?)```", README, re.S)
    assert found, f"README has no <!-- {name} --> block"
    return found.group(1)


def run_blocks(
    names: list[str], base_url: str, demo_port: int, workdir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run README blocks in bash from a folder holding var/admin.password, as a user of `make run` would;
    env, when given, is the whole environment."""
    script = "\n".join(block(name) for name in names)
    if "quickstart" not in names:  # later blocks use the WSEXEC and AUTH the quickstart sets first
        script = block("quickstart").split("\n\n")[0] + "\n" + script
    script = script.replace("http://127.0.0.1:5000", base_url).replace("2222", str(demo_port))
    (workdir / "var").mkdir(exist_ok=True)
    (workdir / "var" / "admin.password").write_text(PASSWORDS["admin"] + "\n")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, capture_output=True, text=True,
                          timeout=60, env=env)


QUICKSTART_LINES = 6  # what the quickstart prints: four JSON answers, then its task's stdout and stderr lines (curl -N)


def json_lines(done: subprocess.CompletedProcess, skip: int = 0) -> list[Any]:
    """The JSON answers printed, one a line, after the first `skip` lines."""
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()[skip:]]


def test_quickstart_and_follow(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    workers.start(1)
    done = run_blocks(["quickstart", "follow"], gunicorn_url, demo_host.port, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines(keepends=True)
    instance, created, task, listing = (json.loads(line) for line in lines[:4])
    assert instance["id"] == 1 and instance["port"] == demo_host.port and instance["user"] == "wsexec-demo"
    assert created["state"] == "INIT" and created["created_by"] == "admin"
    assert task["state"] == "DONE" and task["rc"] == 3
    assert task["stdout"].startswith("hello from ") and task["stderr"].strip()
    assert listing["count"] == 1 and listing["results"][0]["id"] == 1
    assert "".join(lines[4:]) == task["stdout"] + task["stderr"] + "1\n2\n3\n"  # what the two curl -N printed


def test_events_replay(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    workers.start(1)
    done = run_blocks(["quickstart", "events"], gunicorn_url, demo_host.port, tmp_path)
    assert done.returncode == 0, done.stderr
    replayed = done.stdout.split("\nretry: ", 1)[1]
    assert [line.removeprefix("event: ") for line in replayed.splitlines() if line.startswith("event: ")] == [
        "created", "started", "finished"]
    assert '"task":1,"tag":"demo","instance":1,"state":"DONE","rc":3' in replayed


def test_commands_fanout_and_cron(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    workers.start(1)
    quickstart = run_blocks(["quickstart"], gunicorn_url, demo_host.port, tmp_path)
    assert quickstart.returncode == 0 and len(quickstart.stdout.splitlines()) == QUICKSTART_LINES, quickstart.stderr

    commands = run_blocks(["commands"], gunicorn_url, demo_host.port, tmp_path).stdout.splitlines()
    listed, uptime, queued = json.loads(commands[0]), commands[1], json.loads(commands[2])
    assert listed["uptime"] == "uptime" and "load average" in uptime
    assert queued["name"] == "df" and queued["state"] == "INIT"

    tasks, batch = json_lines(run_blocks(["fanout"], gunicorn_url, demo_host.port, tmp_path))
    assert [t["instance"] for t in tasks] == [1]  # the one instance tagged demo
    assert tasks[0]["state"] == "DONE" and tasks[0]["stdout"].strip(), "?wait answered once it had finished"
    assert batch["total"] == 1 and batch["tasks"] == [tasks[0]["id"]] and batch["finished"]

    (tmp_path / "nightly.token").write_text(CRON_TOKEN + "\n")
    env = {**os.environ, "WSEXEC": f"{gunicorn_url}/wsexec", "TOKEN_FILE": str(tmp_path / "nightly.token")}
    first, retried = (json_lines(run_blocks(["cron"], gunicorn_url, demo_host.port, tmp_path, env)) for _ in "12")
    assert first == retried  # the Idempotency-Key: the retry answers the first tasks, creates nothing
    assert first[0][0]["created_by"] == "nightly" and first[0][0]["script"] == "df -P /"


def test_notes(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    workers.start(1)  # the quickstart's curl -N follows its task until it ends
    done = run_blocks(["quickstart", "notes"], gunicorn_url, demo_host.port, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    pinned, private, unpinned, listing = (json.loads(line) for line in lines[QUICKSTART_LINES:QUICKSTART_LINES + 4])
    assert pinned["pinned"] is True and pinned["author"] == "admin" and pinned["instance"] == 1
    assert private["private"] is True and private["id"] == 2
    assert unpinned["pinned"] is False and unpinned["content"] == pinned["content"]
    assert [note["id"] for note in listing["results"]] == [1, 2]  # both unpinned now: the last updated first
    assert lines[QUICKSTART_LINES + 4:] == ["204"]


def test_schedules(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    workers.start(1)
    nightly, heartbeat, shown, tasks, paused = json_lines(
        run_blocks(["quickstart", "schedules"], gunicorn_url, demo_host.port, tmp_path), QUICKSTART_LINES)
    assert (nightly["cron"], nightly["timezone"], nightly["template"]["target"]) == (
        "30 2 * * *", "Europe/Berlin", {"tag": "demo"})
    assert heartbeat["interval"] == 10 and heartbeat["overlap"] == "skip" and shown["id"] == heartbeat["id"] == 2
    assert shown["next_run"] and all(task["schedule"] == 2 for task in tasks["results"])
    assert paused["enabled"] is False and paused["next_run"] is None


def test_settings_commands() -> None:
    found = re.search(r"## Settings.*?```sh\n(.*?)```", README, re.S)
    assert found
    hash_line, token_line = found.group(1).splitlines()
    hashed = subprocess.run(hash_line.split("#")[0], shell=True, cwd=ROOT, capture_output=True, text=True)
    assert hashed.returncode == 0 and hashed.stdout.startswith(("scrypt:", "pbkdf2:"))
    token = subprocess.run(token_line.split("#")[0], shell=True, cwd=ROOT, capture_output=True, text=True)
    assert token.returncode == 0 and "nightly:operator:" in token.stdout


def test_files(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    workers.start(1)
    motd = Path(pwd.getpwnam(demo_host.user).pw_dir) / "motd"
    motd.unlink(missing_ok=True)
    try:
        done = run_blocks(["quickstart", "files"], gunicorn_url, demo_host.port, tmp_path)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        answers = lines[QUICKSTART_LINES:QUICKSTART_LINES + 4]
        first, refused, replaced, (fanned,) = (json.loads(line) for line in answers)
        assert (first["kind"], first["state"], first["rc"], first["mode"]) == ("upload", "DONE", 0, "0640"), first
        assert refused["state"] == "ABORT" and "already exists" in refused["error"], refused
        assert (replaced["state"], replaced["mode"]) == ("DONE", "0640") and fanned["state"] == "DONE"
        assert fanned["batch"] and motd.read_text() == "managed by wsexec\n"
        assert lines[QUICKSTART_LINES + 4:] == ["200 application/octet-stream"]
        assert (tmp_path / "os-release").read_bytes() == Path("/etc/os-release").read_bytes()
    finally:
        motd.unlink(missing_ok=True)


def test_cli(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    """The CLI block, with the venv's installed `wsexec` on PATH as `make run` has it (running this checkout's code)."""
    workers.start(1)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = run_blocks(["cli"], gunicorn_url, demo_host.port, tmp_path, env)
    assert done.returncode == 0, done.stderr
    whoami, *out = done.stdout.splitlines()
    assert whoami == "admin (admin)"
    host = f"127.0.0.1:{demo_host.port}"
    assert out[0] == "1" and out[1].startswith("hello from ") and out[2] == "exit code 3"
    assert out[3:6] == ["step 1", "step 2", "step 3"]
    assert out[6] == f"{host}: Linux"
    assert out[7].split("\t")[:3] == ["ID", "STATE", "RC"]  # the two tasks tagged cli (the fan-out's are demo)
    assert [row.split("\t")[:3] for row in out[8:10]] == [["2", "DONE", "0"], ["1", "DONE", "3"]]
    assert out[10] == "3" and "load average" in out[11]
    assert "SHA256:" in done.stderr and "1 task: 1 DONE (rc 0: 1)" in done.stderr


def test_websh(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    """A terminal from the shell: echo hi through its websocket (websocket-client from the venv), then its record."""
    workers.start(1)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    done = run_blocks(["quickstart", "websh"], gunicorn_url, demo_host.port, tmp_path, env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()[QUICKSTART_LINES:]
    assert "hi" in lines and "logout" in lines, lines  # the shell's own output, between the echoed typing
    refused = next(json.loads(line) for line in lines if line.startswith('{"detail"'))
    assert refused == {"detail": {"state": "ENDED"}, "error": "session 1 is ENDED"}
    header = next(json.loads(line) for line in lines if line.startswith('{"version"'))
    assert (header["version"], header["width"], header["height"]) == (2, 80, 24)
    assert any(line.startswith("[") and '"o"' in line and "hi\\r\\n" in line for line in lines)
