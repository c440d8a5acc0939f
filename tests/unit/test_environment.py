"""A task's env as the remote shell gets it, run by local shells (no sshd): every value byte for byte, bad names
refused, secrets kept out of what the audit log keeps; the bootstrap's run_as through local sudo."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_bootstrap import SHELLS, TRICKY, WAYS, framing
from wsexec.tasks import environment

VALUES = [TRICKY, TRICKY.rstrip("\n"), "", "'", "''\"'", "\\", "$(touch pwned)", "`touch pwned`", "a\nb", "-n",
          "日" * 10000, "\u202e", "x" * environment.VALUE_MAX]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("way", WAYS)
def test_every_value_arrives_byte_for_byte_and_exported(tmp_path: Path, shell: str, way: str) -> None:
    """Through the bootstrap as the login shell runs it: quoted once for the export, once more when inline."""
    env = {f"V{n}": value for n, value in enumerate(VALUES)}
    script = environment.script({"env": env, "script": 'for n in ' + " ".join(env) + '; do '
                                 'sh -c "printf %s \\"\\$$n\\""; printf "\\0"; done'})
    command, payload = framing(way, script)
    done = subprocess.run([shell, "-c", command], input=payload, capture_output=True, cwd=tmp_path, timeout=20,
                          env={"PATH": os.environ["PATH"]})
    assert (done.returncode, done.stderr) == (0, b""), done
    printed = done.stdout.split(b"\n", 1)[1]  # after the PID line
    assert printed.split(b"\0")[:-1] == [value.encode() for value in VALUES]
    assert not (tmp_path / "pwned").exists()


def test_exports_are_one_line_sorted_and_nothing_without_env() -> None:
    assert environment.exports({"B": "x y", "A": "it's"}) == "export A='it'\"'\"'s' B='x y'\n"
    assert environment.exports({}) == environment.exports(None) == ""
    assert environment.script({"script": "true"}) == "true"


@pytest.mark.parametrize("name", ["1A", "A-B", "A B", "", "É", "PATH", "IFS", "HOME", "LD_PRELOAD", "SUDO_UID",
                                  "WSEXEC_X", "A" * 129])
def test_bad_names(name: str) -> None:
    assert environment.name_problem(name)


@pytest.mark.parametrize("name", ["A", "_", "release_2", "path", "LDX", "A" * 128])
def test_good_names(name: str) -> None:
    assert environment.name_problem(name) is None


def test_values_with_nul_or_too_long_are_refused() -> None:
    assert environment.value_problem("a\0b") and environment.value_problem("é" * (environment.VALUE_MAX // 2 + 1))
    assert environment.value_problem("x" * environment.VALUE_MAX) is None


def test_redacted_keeps_names_not_values() -> None:
    kept = environment.redacted({"script": "true", "env": {"B": "secret", "A": "other"}, "run_as": "deploy"})
    assert kept == {"script": "true", "run_as": "deploy", "env_names": ["A", "B"]}
    assert environment.redacted({"script": "true"}) == {"script": "true"}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("sudo"), reason="needs root and sudo")
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("way", WAYS)
def test_the_bootstrap_runs_the_script_through_sudo_as_run_as(shell: str, way: str) -> None:
    script = environment.script({"env": {"A": "$x"}, "script": 'id -un; printf %s "$A"'})
    command, payload = framing(way, script, "nobody")
    done = subprocess.run([shell, "-c", command], input=payload, capture_output=True, timeout=20)
    assert (done.returncode, done.stdout.split(b"\n", 1)[1]) == (0, b"nobody\n$x"), done
