"""The tools people use by hand: one `ssh host true` per command, and `ansible -m command -f 20`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.lab import Lab
from wsexec.testing import SshServer


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    """Run a command, failing with its output when it fails (a benchmark of errors is worthless)."""
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:3])}... exited {done.returncode}:\n{output}")
    return done.stdout


class SshCli:
    """OpenSSH's client with its defaults (sntrup761 kex), a new connection per command, host keys checked."""

    name = "ssh"

    def __init__(self, lab: Lab) -> None:
        self.base = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={lab.known_hosts}",
                     "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", str(lab.key),
                     "-l", lab.user]

    def prepare(self, servers: list[SshServer], warm: bool) -> None:
        """Nothing to prepare: every command opens its own connection."""

    def run_true(self, server: SshServer) -> None:
        _run([*self.base, "-p", str(server.port), server.host, "true"])

    def fanout(self, servers: list[SshServer], warm: bool) -> float:
        """One host after the other, as a shell `for` loop does."""
        start = time.perf_counter()
        for server in servers:
            self.run_true(server)
        return time.perf_counter() - start

    def sequential(self, server: SshServer, count: int, warm: bool) -> float:
        start = time.perf_counter()
        for _ in range(count):
            self.run_true(server)
        return time.perf_counter() - start

    def close(self) -> None:
        """Nothing stays open."""


class Ansible:
    """Debian's ansible-core with its default ssh settings (ControlPersist within a run), host keys checked."""

    name = "ansible"

    def __init__(self, lab: Lab) -> None:
        home = lab.workdir / "ansible"
        self.control_dir = home / "cp"
        self.control_dir.mkdir(parents=True, exist_ok=True)
        (home / "ansible.cfg").write_text("[defaults]\n")  # ignore any /etc/ansible/ansible.cfg
        self.inventory = self._write_inventory(lab, home / "inventory.ini")
        self.hosts = len(lab.servers)
        self.env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(home / "ansible.cfg"),
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            # ansible's default ssh_args, plus our known_hosts: each host's first connection stays open as a
            # master for the module's later steps (fanout closes them, so every run starts cold).
            "ANSIBLE_SSH_ARGS": f"-C -o ControlMaster=auto -o ControlPersist=60s "
                                f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
            "ANSIBLE_NOCOLOR": "1",
        }

    @staticmethod
    def _write_inventory(lab: Lab, path: Path) -> Path:
        lines = ["[bench]"] + [f"h{i:02d} ansible_host={s.host} ansible_port={s.port}"
                               for i, s in enumerate(lab.servers, 1)]
        lines += ["", "[bench:vars]", f"ansible_user={lab.user}", f"ansible_ssh_private_key_file={lab.key}",
                  "ansible_python_interpreter=/usr/bin/python3"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def prepare(self, servers: list[SshServer], warm: bool) -> None:
        """Nothing to prepare: the previous run closed its masters."""

    def fanout(self, servers: list[SshServer], warm: bool) -> float:
        if len(servers) != self.hosts:
            raise ValueError("the ansible fan-out targets every benchmark host")
        start = time.perf_counter()
        try:
            out = _run(["ansible", "bench", "-i", str(self.inventory), "-m", "command", "-a", "true",
                        "-f", str(len(servers))], self.env)
            elapsed = time.perf_counter() - start
        finally:
            self.close()
        if out.count("| CHANGED | rc=0") != len(servers):
            raise RuntimeError(f"ansible did not run `true` on all {len(servers)} hosts:\n{out[-2000:]}")
        return elapsed

    def close(self) -> None:
        """Stop the ControlPersist masters (they left our process tree): nothing outlives a run."""
        for socket_path in self.control_dir.iterdir():
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={socket_path}", "bench"],
                           stdin=subprocess.DEVNULL, capture_output=True)
