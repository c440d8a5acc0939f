"""The bootstrap, run by local shells as the login shell (no sshd): the script carried in the exec request or read
from stdin, exact bytes either way, no truncated runs, the script's rc."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from workers.ssh.errors import SshError
from workers.ssh.remote import GO, INLINE_MAX, SENTINEL_BYTES, framed, inline, via_stdin

# The login shell that runs the exec request (as `$SHELL -c COMMAND`) may be dash or bash.
SHELLS = ["dash", "bash"]
WAYS = ["inline", "stdin"]
# Bytes a shell might mangle: control characters, quotes, $ and \, UTF-8 whose continuation bytes are 0x81-0x88
# (dash's internal CTL* markers), a line that looks like the PID, and newlines at the very end.
TRICKY = ("".join(chr(c) for c in range(1, 32)) + "\x7f 'q' \"d\" $HOME `x` \\ \\n *"
          + "".join(chr(c) for c in range(0x100, 0x180)) + " 日本 ✓\n12345\n\n\n")


def run(tmp_path: Path, argv: list[str], sent: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run argv with `sent` on its stdin, in tmp_path, with its own TMPDIR (so a left-behind file would show)."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.run(argv, input=sent, capture_output=True, env=env, cwd=tmp_path, timeout=20)


def framing(way: str, script: str, run_as: str | None = None) -> tuple[str, bytes]:
    """The exec request and stdin bytes for `script`, the way asked (framed() picks by size)."""
    return (inline(script, run_as), GO) if way == "inline" else via_stdin(script, run_as)


def bootstrap(tmp_path: Path, shell: str, script: str, cut: int | None = None,
              way: str = "stdin") -> subprocess.CompletedProcess[bytes]:
    """The exec request run by `shell` as sshd runs the login shell, fed its stdin (only the first `cut` bytes)."""
    command, payload = framing(way, script)
    return run(tmp_path, [shell, "-c", command], payload[:cut])


def output(done: subprocess.CompletedProcess[bytes]) -> bytes:
    """What the script printed: all after the PID line."""
    pid, newline, rest = done.stdout.partition(b"\n")
    assert pid.isdigit() and newline, done
    return rest


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("way", WAYS)
def test_the_pid_line_then_the_output_and_the_scripts_rc(tmp_path: Path, shell: str, way: str) -> None:
    done = bootstrap(tmp_path, shell, "echo 'it''s'\nexit 7", way=way)
    assert output(done) == b"its\n"
    assert done.returncode == 7
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left behind


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("body", [TRICKY, TRICKY.rstrip("\n"), "日" * 21800 + "\n\n", "x"], ids=[
    "tricky-bytes-trailing-newlines", "no-final-newline", "unicode-64k", "one-byte"])
def test_the_script_arrives_byte_for_byte(tmp_path: Path, shell: str, way: str, body: str) -> None:
    """A here-document left open runs to the script's end: dash prints the rest of the script exactly."""
    done = bootstrap(tmp_path, shell, "cat <<'END'\n" + body, way=way)
    assert (done.returncode, done.stderr) == (0, b""), done
    assert output(done) == body.encode()


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("script", "stdout", "way"), [
    ("echo " + "'x'" * 21843, "x" * 21843 + "\n", "stdin"), (": " + "''" * 32767, "", "stdin"),
    ("printf abc", "abc", "inline"), ("echo a\n\n\n", "a\n", "inline")],
    ids=["quotes-64k", "empty-quotes-64k", "no-final-newline", "trailing-newlines"])
def test_scripts_from_the_issue_run_as_written(tmp_path: Path, shell: str, script: str, stdout: str,
                                               way: str) -> None:
    """framed() sends on stdin what quoting would blow past the exec request's limit (E2BIG at 128 KiB)."""
    assert len(script.encode()) <= 64 * 1024
    command, payload = framed(script)
    assert (payload != GO) == (way == "stdin")
    done = run(tmp_path, [shell, "-c", command], payload)
    assert (done.returncode, done.stderr, output(done)) == (0, b"", stdout.encode()), done


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize(("script", "rc", "stdout"), [("-x", 127, b""), ("--version", 127, b""),
                                                    ("-e\necho $0 $#", 0, b"wsexec 0\n")])
def test_a_script_starting_with_a_dash_is_a_script_not_options(tmp_path: Path, shell: str, way: str, script: str,
                                                               rc: int, stdout: bytes) -> None:
    done = bootstrap(tmp_path, shell, script, way=way)
    first = script.split("\n", 1)[0]
    assert done.stderr.endswith(f": {first}: not found\n".encode()), done
    assert (done.returncode, output(done)) == (rc, stdout), done


@pytest.mark.parametrize("shell", SHELLS)
def test_framed_carries_the_script_inline_up_to_the_limit_then_on_stdin(tmp_path: Path, shell: str) -> None:
    """At INLINE_MAX bytes of exec request the script is in it; one byte more and it comes on stdin, both exact."""
    filler = INLINE_MAX - len(inline("echo ok #").encode())
    at_limit, over = "echo ok #" + "#" * filler, "echo ok #" + "#" * (filler + 1)
    carried, read = framed(at_limit), framed(over)
    assert (len(carried[0].encode()), carried[1]) == (INLINE_MAX, GO)
    assert len(read[0].encode()) < 1024 and read[1].startswith(over.encode())
    for command, payload in (carried, read):
        done = run(tmp_path, [shell, "-c", command], payload)
        assert (done.returncode, done.stderr, output(done)) == (0, b"", b"ok\n"), done


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
def test_an_inline_script_never_runs_before_its_go(tmp_path: Path, shell: str) -> None:
    """The worker sends GO only once it has recorded the PID: a connection lost before then runs nothing."""
    done = run(tmp_path, [shell, "-c", inline("touch ran")], b"")
    assert done.returncode == 125, done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_wrong_sentinel_never_runs(tmp_path: Path, shell: str) -> None:
    command, payload = via_stdin("touch ran")
    sentinel = payload[-2 * SENTINEL_BYTES:].decode()
    done = run(tmp_path, [shell, "-c", command.replace(sentinel, sentinel[::-1])], payload)
    assert done.returncode == 125
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("way", WAYS)
def test_the_script_cannot_read_the_channel(tmp_path: Path, shell: str, way: str) -> None:
    command, payload = framing(way, "cat; echo done")
    done = run(tmp_path, [shell, "-c", command], payload + b"MORE BYTES ON THE CHANNEL")
    assert output(done) == b"done\n"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize(("script", "rc"), [("kill -KILL $$", 137), ("kill -TERM $$", 143), ("true", 0),
                                            ("exit 255", 255)])
def test_a_script_killed_by_a_signal_exits_like_a_shell(tmp_path: Path, shell: str, way: str, script: str,
                                                        rc: int) -> None:
    """The bootstrap waits for the script's shell (no exec, implicit or not), so 128+n comes back as an exit status."""
    command, payload = framing(way, script)
    assert run(tmp_path, [shell, "-c", command], payload).returncode == rc


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("way", WAYS)
def test_the_pid_is_the_process_group_of_the_script(tmp_path: Path, shell: str, way: str) -> None:
    """What a stop kills: the PID line names the group the script (and what it starts) runs in."""
    command, payload = framing(way, "ps -o pgid= -p $$")
    done = run(tmp_path, ["setsid", shell, "-c", command], payload)  # sshd makes the login shell a session leader
    pid, _, group = done.stdout.partition(b"\n")
    assert int(group) == int(pid), done


def test_each_script_gets_its_own_sentinel_and_the_size_counts_bytes() -> None:
    (first, payload), (second, _) = via_stdin("echo ✓"), via_stdin("echo ✓")
    assert first != second
    sentinel = payload[-2 * SENTINEL_BYTES:].decode()
    assert payload == "echo ✓".encode() + sentinel.encode()
    assert first.endswith(f" wsexec {len(payload)} {sentinel}")


def test_a_nul_byte_is_refused_not_altered() -> None:
    with pytest.raises(SshError, match="NUL"):
        framed("echo a\0b")
