"""`wsexec` as a person and a script use it: where the credentials come from, one line per error, shell completion,
tables and progress bars on a terminal (plain text in a pipe)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.clirun import WSEXEC, Cli, declare, environment, gate_script, on_terminal
from tests.helpers import CRON_TOKEN, PASSWORDS, ROOT
from wsexec.cli.config import write_file
from wsexec.testing import SshServer, free_port

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_credentials_options_win_over_the_environment_which_wins_over_the_file(cli: Cli, gunicorn_url: str,
                                                                               tmp_path: Path) -> None:
    def whoami(env: dict[str, str], *options: str) -> str:
        done = cli(*options, "whoami", env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    bare = {key: value for key, value in environment(gunicorn_url, None, tmp_path).items() if key != "WSEXEC_URL"}
    assert whoami(bare | {"WSEXEC_URL": gunicorn_url, "WSEXEC_TOKEN": CRON_TOKEN}) == "nightly (operator)\n"
    operator = environment(gunicorn_url, "operator", tmp_path)
    assert whoami(operator) == "operator (operator)\n"
    dead = operator | {"WSEXEC_URL": f"http://127.0.0.1:{free_port()}"}
    assert whoami(dead, "--url", gunicorn_url) == "operator (operator)\n"
    assert whoami(operator | {"WSEXEC_PASSWORD": PASSWORDS["viewer"]}, "--user", "viewer") == "viewer (viewer)\n"
    assert whoami(operator, "--token", CRON_TOKEN) == "nightly (operator)\n"

    write_file(tmp_path / ".config" / "wsexec" / "config.toml",  # ~/.config: where it is without XDG_CONFIG_HOME
               {"url": gunicorn_url, "user": "viewer", "password": PASSWORDS["viewer"]})
    home_only = {key: value for key, value in bare.items() if key != "XDG_CONFIG_HOME"}
    assert whoami(home_only) == "viewer (viewer)\n"
    assert whoami(home_only | {"WSEXEC_USER": "admin", "WSEXEC_PASSWORD": PASSWORDS["admin"]}) == "admin (admin)\n"
    assert whoami(home_only, "--user", "viewer") == "viewer (viewer)\n"  # the file's password goes with its user

    given = cli("--password", PASSWORDS["viewer"], "whoami", env=home_only)  # a secret never on a command line
    assert given.returncode == 2 and "no --password: " in given.stderr and PASSWORDS["viewer"] not in given.stderr


def test_a_server_error_is_one_line_with_its_status(cli: Cli, sshd: SshServer, ssh_user: str) -> None:
    instance = declare(cli, sshd, "errors", ssh_user)
    for args, user, line in [
        (["show", 999], "operator", "GET /tasks/999: 404 NOT FOUND: task 999 not found"),
        (["show", 999, "--follow"], "operator", "GET /tasks/999: 404 NOT FOUND: task 999 not found"),
        (["batch", "nope", "--wait"], "operator", "GET /batches/nope: 404 NOT FOUND: batch nope not found"),
        (["run", "-i", instance, "--", "true"], "viewer",
         "POST /tasks: 403 FORBIDDEN: your role may not do this (required: operator)"),
        (["run", "-t", "nowhere", "--", "true"], "operator",
         "POST /tasks: 422 UNPROCESSABLE ENTITY: target: no ACTIVE instance has tag 'nowhere'"),
        (["run", "-i", instance, "--env", "1X=y", "--", "true"], "operator",
         "POST /tasks: 422 UNPROCESSABLE ENTITY: item 0 is invalid; nothing was created (0: env: 1X: key: not a shell"
         " variable name"),
        (["cmd", "reboot", "-i", instance], "operator", "POST /commands/reboot: 404 NOT FOUND: no command named"),
        (["instances", "rm", 999], "admin", "DELETE /instances/999: 404 NOT FOUND: instance 999 not found"),
    ]:
        done = cli(*args, user=user)
        assert done.returncode == 125 and done.stdout == "", done
        assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(f"Error: {line}"), done.stderr


def test_shell_completion_as_documented(tmp_path: Path) -> None:
    """The --help and README line, eval'd in bash, completes commands, subcommands and options."""
    usage = subprocess.run([WSEXEC, "--help"], env=environment("", None, tmp_path), capture_output=True, text=True)
    setup = 'eval "$(_WSEXEC_COMPLETE=bash_source wsexec)"'
    assert setup in usage.stdout and setup in (ROOT / "README.md").read_text()
    env = environment("", None, tmp_path) | {"PATH": f"{WSEXEC.parent}:{os.environ['PATH']}"}
    for words, expected in [("wsexec ru", "run"), ("wsexec instances a", "add"), ("wsexec run --fo", "--follow"),
                            ("wsexec show 1 --", "--follow --wait --cancel-on-interrupt --json --help")]:
        script = f'{setup}\nCOMP_WORDS=({words}); COMP_CWORD={len(words.split()) - 1}\n' \
                 '_wsexec_completion wsexec; echo "${COMPREPLY[*]}"'
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (0, f"{expected}\n", ""), words


def test_terminal_tables_fit_its_width_and_fan_outs_show_a_progress_bar(
        cli: Cli, cli_env: dict[str, str], sshd: SshServer, make_sshd: Callable[..., SshServer],
        ssh_user: str) -> None:
    other = make_sshd("127.0.1.6")
    declare(cli, sshd, "bars", ssh_user)
    declare(cli, other, "bars", ssh_user, "--scan")
    code, shown = on_terminal(cli_env, ["run", "-t", "bars", "--", "echo a long line of output to widen it"], "")
    assert code == 0, shown
    bar = ANSI.sub("", shown)
    assert re.search(r"waiting ━+ 0/2", bar), shown  # rich's bar on the terminal, gone once done (transient)
    assert f"{other.host}:{other.port}: a long line of output to widen it" in bar
    batch = json.loads(cli("tasks", "--json").stdout)["results"][0]["batch"]
    code, shown = on_terminal(cli_env, ["batch", batch, "--wait"], "")
    assert code == 0 and re.search(r"waiting ━+ 2/2", ANSI.sub("", shown)), shown
    piped = cli("batch", batch, "--wait")
    assert "━" not in piped.stderr + piped.stdout and "\x1b[" not in piped.stdout  # none of it in a pipe

    widths = {}
    for columns in (120, 72):
        code, shown = on_terminal(cli_env, ["tasks"], "", columns=columns)
        lines = ANSI.sub("", shown).splitlines()
        assert code == 0 and lines[1].startswith("┏━"), shown
        widths[columns] = max(len(line) for line in lines)
    assert widths[72] <= 72 < widths[120] <= 120, widths  # as wide as the content needs, never wider than the window


def test_scripts_from_a_dash_and_no_wait_shapes(cli: Cli, sshd: SshServer, ssh_user: str) -> None:
    instance = declare(cli, sshd, "dash", ssh_user)
    done = cli("run", "-i", instance, "-f", "-", input="echo piped; exit 6\n")
    assert (done.returncode, done.stdout) == (6, "piped\n")
    single = cli("run", "-i", instance, "--no-wait", "--json", "--", "true")
    assert single.returncode == 0 and json.loads(single.stdout)["instance"] == instance  # one task: its object
    fanned = json.loads(cli("run", "-t", "dash", "--no-wait", "--json", "--", "true").stdout)
    assert [task["instance"] for task in fanned] == [instance]  # a fan-out: the list, as without --no-wait
    shown = cli("batch", fanned[0]["batch"])
    assert shown.returncode == 0 and re.search(r"^total: +1$", shown.stdout, re.M), shown


def test_a_reader_that_leaves_early_does_not_change_the_exit_code(cli: Cli, cli_env: dict[str, str], sshd: SshServer,
                                                                  ssh_user: str) -> None:
    """`wsexec run ... | head -1`: the output stops at the pipe, wsexec still waits and exits with the task's rc."""
    instance = declare(cli, sshd, "head", ssh_user)
    for how in ("", "--follow"):
        line = f'"$WSEXEC" run -i {instance} {how} -- "seq 1 100000; exit 3" | head -1; echo "rc ${{PIPESTATUS[0]}}"'
        done = subprocess.run(["bash", "-c", line], env=cli_env | {"WSEXEC": str(WSEXEC)}, capture_output=True,
                              text=True, timeout=120)
        assert (done.stdout, done.stderr) == ("1\nrc 3\n", ""), (how, done)  # 600 kB: more than a pipe holds


def test_ctrl_c_while_waiting_on_a_terminal_detaches_or_cancels(cli: Cli, cli_env: dict[str, str], sshd: SshServer,
                                                                ssh_user: str, gate: Path) -> None:
    """Ctrl-C once the progress bar shows (wsexec is waiting): the task goes on and wsexec says how to come back."""
    declare(cli, sshd, "ctrlc", ssh_user)
    script = gate_script(gate, 0)
    code, shown = on_terminal(cli_env, ["run", "-t", "ctrlc", "--", script], "", ctrl_c_after="waiting")
    batch = json.loads(cli("tasks", "--json").stdout)["results"][0]["batch"]
    assert code == 130 and "detached; the task goes on. Re-attach with: wsexec show 1 --follow" in shown, shown
    code, shown = on_terminal(cli_env, ["batch", batch, "--wait"], "", ctrl_c_after="waiting")
    assert code == 130 and f"Re-attach with: wsexec batch {batch} --wait" in shown, shown
    assert json.loads(cli("show", 1, "--json").stdout)["state"] in ("INIT", "CURRENT")  # still going

    code, shown = on_terminal(cli_env, ["run", "-t", "ctrlc", "--cancel-on-interrupt", "--", script], "",
                              ctrl_c_after="waiting")
    assert code == 130 and "cancelled task 2" in shown, shown
    done = cli("show", 2, "--wait")
    assert done.returncode == 255 and "ABORT: cancelled by operator" in done.stderr, done.stderr
    gate.touch()
    assert cli("show", 1, "--wait").returncode == 0
