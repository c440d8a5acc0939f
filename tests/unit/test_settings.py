"""Settings from WSEXEC_* variables: each converted to its field's type, round-tripped to child processes."""

from __future__ import annotations

import pytest

from wsexec.config import DEFAULT_COMMANDS, SCRIPT_MAX_LIMIT, Settings


def test_no_variables_give_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings().commands == DEFAULT_COMMANDS


def test_each_variable_is_converted_to_its_fields_type() -> None:
    settings = Settings.from_env({
        "WSEXEC_TASK_TIMEOUT": "60",
        "WSEXEC_CONNECT_TIMEOUT": "2.5",
        "WSEXEC_RETENTION_DAYS": "0.5",
        "WSEXEC_QUEUE": "other",
        "WSEXEC_COMMANDS": '{"disk": "df -h"}',
        "WSEXEC_UNKNOWN": "ignored",
        "PATH": "/usr/bin",
    })
    assert (settings.task_timeout, settings.connect_timeout, settings.queue) == (60, 2.5, "other")
    assert settings.retention_seconds == 43200
    assert settings.commands == {"disk": "df -h"}


def test_overrides_win_over_the_environment() -> None:
    assert Settings.from_env({"WSEXEC_QUEUE": "env"}, queue="given").queue == "given"


def test_to_env_reproduces_the_settings_in_another_process() -> None:
    settings = Settings(task_timeout=7, connect_timeout=0.25, commands={"a": "echo 'x y'"}, users="u:admin:h")
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(("name", "raw"), [
    ("WSEXEC_TASK_TIMEOUT", "ten"),
    ("WSEXEC_CONNECT_TIMEOUT", "1,5"),
    ("WSEXEC_COMMANDS", "uptime"),
    ("WSEXEC_COMMANDS", '["uptime"]'),
    ("WSEXEC_COMMANDS", '{"n": 1}'),
])
def test_a_bad_value_names_its_variable(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: raw})


@pytest.mark.parametrize("raw", ["0", "-1", str(SCRIPT_MAX_LIMIT + 1), str(128 * 1024)])
def test_a_script_max_no_host_could_take_is_refused(raw: str) -> None:
    """The script is one argument of /bin/sh on the host: Linux takes 128 KiB at most, the environment included."""
    with pytest.raises(ValueError, match="WSEXEC_SCRIPT_MAX"):
        Settings.from_env({"WSEXEC_SCRIPT_MAX": raw})
    assert Settings.from_env({"WSEXEC_SCRIPT_MAX": str(SCRIPT_MAX_LIMIT)}).script_max == SCRIPT_MAX_LIMIT
