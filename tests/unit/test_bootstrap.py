"""The bootstrap that reads a script from stdin, run by a local /bin/sh (no sshd): exact reads, no truncated runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from workers.ssh.remote import bootstrap_command


def bootstrap(tmp_path: Path, script: bytes, sent: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the exec request as the login shell would, with `sent` (default: the script) on its stdin."""
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run(["/bin/sh", "-c", bootstrap_command(len(script))], input=script if sent is None else sent,
                          capture_output=True, env=env, cwd=tmp_path, timeout=10)


def test_the_pid_line_then_the_output_and_the_scripts_rc(tmp_path: Path) -> None:
    done = bootstrap(tmp_path, b"echo 'it''s'\nexit 7")
    pid, _, rest = done.stdout.partition(b"\n")
    assert pid.isdigit() and rest == b"its\n"
    assert done.returncode == 7
    assert list((tmp_path / "tmp").iterdir()) == []  # the temp file is gone


def test_a_short_read_never_runs_the_truncated_script(tmp_path: Path) -> None:
    script = b"touch ran-in-full; touch ran-truncated-as-well"
    done = bootstrap(tmp_path, script, sent=script[:15])  # the connection died mid-way: stdin ends early
    assert done.returncode == 125
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # neither file exists: nothing ran
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_script_cannot_read_the_channel(tmp_path: Path) -> None:
    done = bootstrap(tmp_path, b"cat; echo done", sent=b"cat; echo doneMORE BYTES ON THE CHANNEL")
    assert done.stdout.split(b"\n", 1)[1] == b"done\n"


@pytest.mark.parametrize(("script", "rc"), [(b"kill -KILL $$", 137), (b"kill -TERM $$", 143), (b"true", 0)])
def test_a_script_killed_by_a_signal_exits_like_a_shell(tmp_path: Path, script: bytes, rc: int) -> None:
    assert bootstrap(tmp_path, script).returncode == rc
