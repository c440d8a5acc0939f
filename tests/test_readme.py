"""The README's shell blocks, run as written against real gunicorn, a worker and an sshd standing in for the demo
host; only the addresses change (gunicorn and sshd listen on free ports here, not 5000 and 2222)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORDS, ROOT
from tests.servers import SshServer, ensure_login_user, free_port

README = (ROOT / "README.md").read_text()


def block(name: str) -> str:
    """The ```sh block that follows <!-- name --> in the README."""
    found = re.search(rf"<!-- {name} -->\n```sh\n(.*?)```", README, re.S)
    assert found, f"README has no <!-- {name} --> block"
    return found.group(1)


@pytest.fixture
def demo_host(session_dir: Path, known_hosts: Path) -> Any:
    """Like `make demo-host`: user wsexec-demo on 127.0.0.1, trusting the service key."""
    server = SshServer(session_dir / "demo-host", "127.0.0.1", free_port(), ensure_login_user("wsexec-demo"),
                       session_dir / "authorized_keys").start()
    known_hosts.write_text(known_hosts.read_text() + server.known_hosts_line + "\n")
    yield server
    server.stop()


def run_blocks(
    names: list[str], gunicorn_url: str, demo_host: SshServer, tmp_path: Path
) -> subprocess.CompletedProcess:
    script = "\n".join(block(name) for name in names)
    script = script.replace("127.0.0.1:5000", gunicorn_url.removeprefix("http://")).replace("2222", str(demo_host.port))
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "admin.password").write_text(PASSWORDS["admin"] + "\n")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


def test_quickstart_and_follow(gunicorn_url: str, workers: Any, demo_host: SshServer, tmp_path: Path) -> None:
    workers.start(1)
    done = run_blocks(["quickstart", "follow"], gunicorn_url, demo_host, tmp_path)
    assert done.returncode == 0, done.stderr
    instance, created, task, listing = (json.loads(line) for line in done.stdout.splitlines())
    assert instance["id"] == 1 and instance["port"] == demo_host.port and instance["user"] == "wsexec-demo"
    assert created["state"] == "INIT" and created["created_by"] == "admin"
    assert task["state"] == "DONE" and task["rc"] == 3
    assert task["stdout"].startswith("hello from ") and task["stderr"].strip()
    assert listing["count"] == 1 and listing["results"][0]["id"] == 1
    assert done.stderr == task["stdout"] + task["stderr"]  # what follow printed


def test_settings_commands(tmp_path: Path) -> None:
    found = re.search(r"## Settings.*?```sh\n(.*?)```", README, re.S)
    assert found
    hash_line, token_line = found.group(1).splitlines()
    hashed = subprocess.run(hash_line.split("#")[0], shell=True, cwd=ROOT, capture_output=True, text=True)
    assert hashed.returncode == 0 and hashed.stdout.startswith(("scrypt:", "pbkdf2:"))
    token = subprocess.run(token_line.split("#")[0], shell=True, cwd=ROOT, capture_output=True, text=True)
    assert token.returncode == 0 and "nightly:operator:" in token.stdout
