"""The CLI's pure parts: exit codes, summaries, SSE parsing, error lines, the config file's checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import requests

from wsexec.cli import outcome
from wsexec.cli.client import Event, error_line, lines, sse_events
from wsexec.cli.commands import run_options
from wsexec.cli.config import ConfigError, Credentials, read_file, write_file
from wsexec.cli.events import event_line

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def task(state: str, rc: int | None = None) -> dict[str, Any]:
    return {"state": state, "rc": rc}


@pytest.mark.parametrize(("tasks", "single", "fanout"), [
    ([task("DONE", 0)], 0, 0),
    ([task("DONE", 3)], 3, 4),
    ([task("DONE", 255)], 255, 4),  # ran, with rc 255: a failure, not an abort, in a fan-out
    ([task("ABORT")], 255, 3),
    ([task("DONE", 0), task("DONE", 1)], None, 4),
    ([task("DONE", 1), task("ABORT")], None, 3),
    ([task("DONE", 0), task("DONE", 0)], None, 0),
])
def test_exit_codes(tasks: list[dict[str, Any]], single: int | None, fanout: int) -> None:
    if single is not None:
        assert outcome.single(tasks[0]) == single
    assert outcome.fanout(tasks) == fanout


def test_batch_codes_and_summary() -> None:
    states = {"INIT": 0, "CURRENT": 0, "DONE": 2, "ABORT": 0}
    assert outcome.batch({"states": states, "rc": {"1": 0, "2": 0}}) == 0
    assert outcome.batch({"states": states, "rc": {"1": 0, "2": 2}}) == 4
    assert outcome.batch({"states": states | {"DONE": 1, "ABORT": 1}, "rc": {"1": 0, "2": None}}) == 3
    assert outcome.summary([task("DONE", 3), task("DONE", 0), task("ABORT"), task("DONE", 0)]) == \
        "4 tasks: 3 DONE (rc 0: 2, rc 3: 1), 1 ABORT"
    assert outcome.summary([task("DONE", 0)]) == "1 task: 1 DONE (rc 0: 1)"


def test_sse_events_rebuild_multiline_data_and_skip_comments() -> None:
    stream = ["retry: 3000", "", ": keepalive", "", "event: stdout", "id: 6.0", "data: one", "data: two", "",
              "event: end", "data: {}", ""]
    assert list(sse_events(iter(stream))) == [Event("stdout", "6.0", "one\ntwo"), Event("end", "6.0", "{}")]


def test_lines_come_as_soon_as_complete_and_keep_split_characters() -> None:
    chunks = [b"event: a\r\nda", b"ta: \xc3", b"\xa9\n\n", b"tail"]
    assert list(lines(iter(chunks))) == ["event: a", "data: é", "", "tail"]


def response(status: int, body: bytes) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer.reason, answer._content = status, "Whatever", body
    return answer


def test_error_line_is_one_line_from_the_api_body() -> None:
    assert error_line(response(422, b'{"error": "invalid", "detail": {"timeout": ["too small"]}}')) == \
        "422 Whatever: invalid (timeout: too small)"
    assert error_line(response(502, b"<html>bad gateway</html>")) == "502 Whatever"
    repeated = b'{"error": "target: no tag \'x\'", "detail": {"target": ["no tag \'x\'"]}}'
    assert error_line(response(422, repeated)) == "422 Whatever: target: no tag 'x'"  # the detail only says it again


def test_event_lines() -> None:
    assert event_line("finished", {"task": 7, "tag": "web", "instance": 2, "batch": None, "state": "DONE",
                                   "rc": 0}) == "finished task 7 instance 2 tag web DONE rc 0"
    assert event_line("finished", {"task": 8, "tag": "web", "instance": 2, "state": "ABORT", "rc": None,
                                   "error": "timeout after 1 s"}) == \
        "finished task 8 instance 2 tag web ABORT error timeout after 1 s"


def test_the_exit_codes_in_the_readme_and_help_are_the_ones_used() -> None:
    table = README.split("**Exit codes are the task's truth**", 1)[1].split("\n\n", 2)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    used = {outcome.OK, outcome.USAGE, outcome.FANOUT_SOME_ABORTED, outcome.FANOUT_SOME_FAILED, outcome.CLIENT_ERROR,
            outcome.INTERRUPTED, outcome.ABORTED}
    assert documented == used
    assert all(re.search(rf"\b{code}\b", outcome.TABLE) for code in used)  # `wsexec --help` shows outcome.TABLE


def test_env_pairs_become_the_env_field() -> None:
    """Values as written (after the first '='), the last of a name wins; the server checks the names."""
    assert run_options(("A=it's", "B=", "C=x=y", "A=again"), None) == {"env": {"A": "again", "B": "", "C": "x=y"}}
    assert run_options((), "deploy") == {"run_as": "deploy"}
    assert run_options((), None) == {}
    for bad in ("NOEQUALS", "=value"):
        with pytest.raises(click.BadParameter):
            run_options((bad,), None)


def test_config_file_written_600_and_refused_when_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "wsexec" / "config.toml"
    write_file(path, {"url": "http://x", "user": "ops", "password": 'p"w'})
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_file(path) == {"url": "http://x", "user": "ops", "password": 'p"w'}
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by others"):
        read_file(path)
    assert read_file(tmp_path / "none.toml") == {}


def test_credentials_repr_hides_secrets() -> None:
    assert "s3cret" not in repr(Credentials("http://x", "ops", "s3cret", "tok-s3cret"))
