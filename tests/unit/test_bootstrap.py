"""The bootstrap that reads a script from stdin, run by local shells (no sshd): exact bytes, no truncated runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from workers.ssh.errors import SshError
from workers.ssh.remote import BOOTSTRAP, bootstrap_command, framed

# /bin/sh is dash on Debian and bash elsewhere; the login shell that runs the exec request may be either.
SHELLS = ["dash", "bash"]
# Bytes a shell might mangle: control characters, quotes, $ and \, UTF-8 whose continuation bytes are 0x81-0x88
# (dash's internal CTL* markers), a line that looks like the PID, and newlines at the very end.
TRICKY = ("".join(chr(c) for c in range(1, 32)) + "\x7f 'q' \"d\" $HOME `x` \\ \\n *"
          + "".join(chr(c) for c in range(0x100, 0x180)) + " 日本 ✓\n12345\n\n\n")


def run(tmp_path: Path, argv: list[str], sent: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run argv with `sent` on its stdin, in tmp_path, with its own TMPDIR (so a left-behind file would show)."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.run(argv, input=sent, capture_output=True, env=env, cwd=tmp_path, timeout=20)


def bootstrap(tmp_path: Path, shell: str, script: str, cut: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """The bootstrap run by `shell` as /bin/sh would, fed the framed script (only its first `cut` bytes if given)."""
    command, payload = framed(script)
    size, sentinel = command.rsplit(" ", 2)[1:]
    return run(tmp_path, [shell, "-c", BOOTSTRAP, "wsexec", size, sentinel], payload[:cut])


def output(done: subprocess.CompletedProcess[bytes]) -> bytes:
    """What the script printed: all after the PID line."""
    pid, newline, rest = done.stdout.partition(b"\n")
    assert pid.isdigit() and newline, done
    return rest


@pytest.mark.parametrize("shell", SHELLS)
def test_the_pid_line_then_the_output_and_the_scripts_rc(tmp_path: Path, shell: str) -> None:
    done = bootstrap(tmp_path, shell, "echo 'it''s'\nexit 7")
    assert output(done) == b"its\n"
    assert done.returncode == 7
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left behind


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("body", [TRICKY, TRICKY.rstrip("\n"), "日" * 21800 + "\n\n", "x"], ids=[
    "tricky-bytes-trailing-newlines", "no-final-newline", "unicode-64k", "one-byte"])
def test_the_script_arrives_byte_for_byte(tmp_path: Path, shell: str, body: str) -> None:
    """A here-document left open runs to the script's end: dash prints the rest of the script exactly."""
    done = bootstrap(tmp_path, shell, "cat <<'END'\n" + body)
    assert (done.returncode, done.stderr) == (0, b""), done
    assert output(done) == body.encode()


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("script", "stdout"), [
    ("echo " + "'x'" * 21843, "x" * 21843 + "\n"), (": " + "''" * 32767, ""), ("printf abc", "abc"),
    ("echo a\n\n\n", "a\n")], ids=["quotes-64k", "empty-quotes-64k", "no-final-newline", "trailing-newlines"])
def test_scripts_from_the_issue_run_as_written(tmp_path: Path, shell: str, script: str, stdout: str) -> None:
    assert len(script.encode()) <= 64 * 1024
    done = bootstrap(tmp_path, shell, script)
    assert (done.returncode, done.stderr, output(done)) == (0, b"", stdout.encode()), done


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("cut", [0, 1, 20, 46, 47 + 15, 47 + 31], ids=[
    "nothing", "one-byte", "mid-script", "all-but-the-last-script-byte", "half-the-sentinel", "all-but-one"])
def test_a_short_read_never_runs_the_truncated_script(tmp_path: Path, shell: str, cut: int) -> None:
    script = "touch ran-in-full; touch ran-truncated-as-well\n"  # 47 bytes, then the 32 of the sentinel
    done = bootstrap(tmp_path, shell, script, cut=cut)  # the connection died mid-way: stdin ends early
    assert done.returncode == 125, done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # neither file exists: nothing ran
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_a_wrong_sentinel_never_runs(tmp_path: Path, shell: str) -> None:
    command, payload = framed("touch ran")
    size, sentinel = command.rsplit(" ", 2)[1:]
    done = run(tmp_path, [shell, "-c", BOOTSTRAP, "wsexec", size, sentinel[::-1]], payload)
    assert done.returncode == 125
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_the_script_cannot_read_the_channel(tmp_path: Path, shell: str) -> None:
    command, payload = framed("cat; echo done")
    done = run(tmp_path, [shell, "-c", command], payload + b"MORE BYTES ON THE CHANNEL")
    assert output(done) == b"done\n"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("script", "rc"), [("kill -KILL $$", 137), ("kill -TERM $$", 143), ("true", 0),
                                            ("exit 255", 255)])
def test_a_script_killed_by_a_signal_exits_like_a_shell(tmp_path: Path, shell: str, script: str, rc: int) -> None:
    """The bootstrap waits for the script's shell (no exec, implicit or not), so 128+n comes back as an exit status."""
    command, payload = framed(script)
    assert run(tmp_path, [shell, "-c", command], payload).returncode == rc


@pytest.mark.parametrize("shell", SHELLS)
def test_the_pid_is_the_process_group_of_the_script(tmp_path: Path, shell: str) -> None:
    """What a stop kills: the PID line names the group the script (and what it starts) runs in."""
    command, payload = framed("ps -o pgid= -p $$")
    done = run(tmp_path, ["setsid", shell, "-c", command], payload)  # sshd makes the login shell a session leader
    pid, _, group = done.stdout.partition(b"\n")
    assert int(group) == int(pid), done


def test_each_script_gets_its_own_sentinel_and_the_size_counts_bytes() -> None:
    (first, payload), (second, _) = framed("echo ✓"), framed("echo ✓")
    assert first != second
    size, sentinel = first.rsplit(" ", 2)[1:]
    assert payload == "echo ✓".encode() + sentinel.encode()
    assert int(size) == len(payload)
    assert first == bootstrap_command(len(payload), sentinel)


def test_a_nul_byte_is_refused_not_altered() -> None:
    with pytest.raises(SshError, match="NUL"):
        framed("echo a\0b")
