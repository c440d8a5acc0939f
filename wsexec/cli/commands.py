"""The `wsexec` command: click commands, each a few API calls and a rendering."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from wsexec.cli import outcome, render, watch
from wsexec.cli.client import Client
from wsexec.cli.config import config_path, resolve, write_file

TASK_COLUMNS = ("id", "state", "rc", "instance", "tag", "name", "created_by", "start", "end")
TASK_FIELDS = ("id", "name", "tag", "state", "rc", "error", "instance", "user", "batch", "created_by", "created_at",
               "start", "end", "timeout", "script", "stdout", "stderr")
json_option = click.option("--json", "as_json", is_flag=True, help="print the API's JSON (a stable shape)")


class State:
    """The global options; the client is made (and a password asked for) only by commands that call the API."""

    def __init__(self, url: str | None, user: str | None, password: str | None, token: str | None) -> None:
        self.options = (url, user, password, token)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(resolve(*self.options, interactive=sys.stdin.isatty()))
        return self._client


pass_state = click.make_pass_decorator(State)


@click.group(epilog=outcome.TABLE, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="WSEXEC_URL", help="the server, e.g. http://127.0.0.1:5000  [env WSEXEC_URL]")
@click.option("--user", envvar="WSEXEC_USER", help="basic-auth user (password: WSEXEC_PASSWORD, or asked on a "
              "terminal)  [env WSEXEC_USER]")
@click.option("--password", envvar="WSEXEC_PASSWORD", hidden=True)  # read from the environment only (below)
@click.option("--token", envvar="WSEXEC_TOKEN", help="bearer token instead of a user  [env WSEXEC_TOKEN]")
@click.pass_context
def cli(ctx: click.Context, url: str | None, user: str | None, password: str | None, token: str | None) -> None:
    """Run shell scripts on servers through a wsexec server, and follow them.

    Settings come from the options, then the environment, then the config file
    (`wsexec login` writes it, mode 600, under ~/.config/wsexec/ or $XDG_CONFIG_HOME/wsexec/).
    Shell completion, in ~/.bashrc (zsh_source in ~/.zshrc, fish_source for fish):

    \b
      eval "$(_WSEXEC_COMPLETE=bash_source wsexec)"
    """
    if ctx.get_parameter_source("password") is ParameterSource.COMMANDLINE:
        raise click.UsageError("no --password: a command line shows in ps and the shell's history; set "
                               "WSEXEC_PASSWORD, or let wsexec ask on a terminal")
    ctx.obj = State(url, user, password, token)


def main() -> None:
    cli(prog_name="wsexec")


@cli.command()
@click.option("--url", prompt="server URL", default="http://127.0.0.1:5000", show_default=True)
@click.option("--user", help="basic-auth user (the password is asked for)")
@click.option("--token", is_flag=True, help="save a bearer token (asked for) instead of a user")
def login(url: str, user: str | None, token: bool) -> None:
    """Save the server and credentials in the config file (mode 600), checking them first."""
    if token:
        values = {"url": url, "token": click.prompt("token", hide_input=True, err=True)}
    else:
        user = user or click.prompt("user", err=True)
        values = {"url": url, "user": user, "password": click.prompt("password", hide_input=True, err=True)}
    Client(resolve(values["url"], values.get("user"), values.get("password"), values.get("token"),
                   interactive=False)).get("/tasks", page_size=1)
    path = config_path()
    write_file(path, values)
    render.note(f"saved to {path} (mode 600)")


@cli.command()
@json_option
@pass_state
def whoami(state: State, as_json: bool) -> None:
    """Who the server takes these credentials for: 'name (role)'."""
    caller = state.client.get("/whoami")
    if as_json:
        render.emit_json(caller)
    else:
        click.echo(f"{caller['name']} ({caller['role']})")


# -- tasks -------------------------------------------------------------------------------------------------------


def script_text(args: tuple[str, ...], script_file: Path | None) -> str:
    """The script from the arguments, -f, or stdin."""
    if args and script_file:
        raise click.UsageError("give the script as arguments or with -f, not both")
    if script_file == Path("-"):
        script = sys.stdin.read()
    elif script_file:
        script = script_file.read_text()
    elif args:
        script = " ".join(args)
    elif not sys.stdin.isatty():
        script = sys.stdin.read()
    else:
        raise click.UsageError("no script: give it after --, with -f FILE, or on stdin")
    return script


def run_options(env: tuple[str, ...], run_as: str | None) -> dict[str, Any]:
    """--env K=V (the last of a name wins) and --run-as as the task's `env` and `run_as` fields; the server checks the
    names (a bad one: its 422, exit 125), so that the rules live in one place."""
    pairs = {}
    for pair in env:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected NAME=VALUE", param_hint="--env")
        pairs[key] = value
    return ({"env": pairs} if pairs else {}) | ({"run_as": run_as} if run_as else {})


def env_options(function: Any) -> Any:
    """--env and --run-as, for run and cmd alike."""
    function = click.option("--run-as", metavar="USER", help="run it as USER, through sudo -n on the host")(function)
    return click.option("--env", multiple=True, metavar="K=V",
                        help="exported to the script, value as written (repeatable; shown by name only)")(function)


def watch_options(function: Any) -> Any:
    for option in reversed([
        click.option("--follow", is_flag=True, help="stream the output live (default: wait, then print it)"),
        click.option("--no-wait", is_flag=True, help="print the task ids and exit 0 once created"),
        click.option("--cancel-on-interrupt", is_flag=True, help="Ctrl-C cancels the tasks instead of detaching"),
        json_option,
    ]):
        function = option(function)
    return function


def finish(client: Client, tasks: list[dict[str, Any]], follow: bool, no_wait: bool, cancel_on_interrupt: bool,
           as_json: bool, fanout: bool) -> NoReturn:
    """Wait for or follow created tasks, show their output, exit with their truth."""
    ids = [task["id"] for task in tasks]
    if no_wait:
        if as_json:
            render.emit_json(tasks if fanout else tasks[0])  # the shape --json has once they end
        else:
            for task_id in ids:
                click.echo(task_id)
            render.note(f"follow with: wsexec show {ids[0]} --follow" if len(ids) == 1 else
                        f"wait with: wsexec batch {tasks[0].get('batch')} --wait" if tasks[0].get("batch") else
                        "wait with: wsexec show ID --wait")
        sys.exit(outcome.OK)
    terminal = render.on_terminal(sys.stderr)
    try:
        names = watch.labels(client, tasks) if fanout else None
        if follow and not as_json:
            done = watch.follow_all(client, ids, names, terminal)
        else:
            done = watch.wait(client, ids, terminal and (fanout or not as_json))
            if not as_json:
                watch.show_outputs(done, names)
    except KeyboardInterrupt:
        interrupted(client, ids, cancel_on_interrupt)
    if as_json:
        render.emit_json(done if fanout else done[0])
    watch.report(done, names, lambda: outcome.summary(done))
    sys.exit(outcome.fanout(done) if fanout else outcome.single(done[0]))


def interrupted(client: Client, ids: list[int], cancel: bool) -> NoReturn:
    """Ctrl-C: leave the tasks running and say how to come back, or cancel them."""
    if cancel:
        for task_id in ids:
            task = client.get(f"/tasks/{task_id}")
            if task["state"] not in outcome.FINISHED:
                client.json("PATCH", f"/tasks/{task_id}", json={"state": "ABORT"})
                render.warn(f"cancelled task {task_id}")
    else:
        again = f"wsexec show {ids[0]} --follow" if len(ids) == 1 else "wsexec show ID --follow, for ID in " + \
            " ".join(map(str, ids))
        render.warn(f"detached; the task{'s go' if len(ids) > 1 else ' goes'} on. Re-attach with: {again}")
    sys.exit(outcome.INTERRUPTED)


@cli.command(context_settings={"ignore_unknown_options": False})
@click.option("-i", "--instance", "instances", type=int, multiple=True, help="instance id (repeat for several)")
@click.option("-t", "--target-tag", "target", help="fan out to every ACTIVE instance with this tag")
@click.option("--user", help="login user on the instance (default: the instance's)")
@click.option("--timeout", type=click.IntRange(min=1), help="seconds before the task is killed (ABORT)")
@env_options
@click.option("-f", "--file", "script_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
              path_type=Path), help="the script, from a file ('-': stdin, as when it is piped without -f)")
@click.option("--name", help="task name (default: the script's first line)")
@click.option("--tag", "task_tag", help="the tasks' tag (default: the -t tag, or 'cli')")
@watch_options
@click.argument("script", nargs=-1)
@pass_state
def run(state: State, instances: tuple[int, ...], target: str | None, user: str | None, timeout: int | None,
        env: tuple[str, ...], run_as: str | None, script_file: Path | None, name: str | None, task_tag: str | None,
        script: tuple[str, ...], follow: bool, no_wait: bool, cancel_on_interrupt: bool, as_json: bool) -> None:
    """Run a script: wsexec run -i 3 -- 'uptime', wsexec run -t web -f deploy.sh, echo df | wsexec run -i 3."""
    if bool(instances) == bool(target):
        raise click.UsageError("give -i ID (one or more) or -t TAG")
    if follow and no_wait:
        raise click.UsageError("--follow and --no-wait exclude each other")
    text = script_text(script, script_file)
    body: dict[str, Any] = {"name": name or (text.strip().splitlines() or ["script"])[0][:200],
                            "tag": task_tag or target or "cli", "script": text, **run_options(env, run_as)}
    body |= {key: value for key, value in (("user", user), ("timeout", timeout)) if value is not None}
    if target:
        created = state.client.json("POST", "/tasks", json=body | {"target": {"tag": target}})
    else:
        created = state.client.json("POST", "/tasks", json=[body | {"instance": i} for i in instances])
    tasks = created if isinstance(created, list) else [created]  # a tag without ACTIVE instances: the server's 422
    finish(state.client, tasks, follow, no_wait, cancel_on_interrupt, as_json, fanout=bool(target) or len(tasks) > 1)


@cli.command()
@click.option("--state", "task_state", type=click.Choice(["INIT", "CURRENT", "DONE", "ABORT"]))
@click.option("-i", "--instance", type=int)
@click.option("-t", "--tag")
@click.option("--name")
@click.option("--batch")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="tasks per page")
@json_option
@pass_state
def tasks(state: State, task_state: str | None, instance: int | None, tag: str | None, name: str | None,
          batch: str | None, page: int, limit: int, as_json: bool) -> None:
    """List tasks, newest first."""
    found = state.client.get("/tasks", state=task_state, instance=instance, tag=tag, name=name, batch=batch,
                             page=page, page_size=limit)
    if as_json:
        render.emit_json(found)
        return
    render.table(found["results"], TASK_COLUMNS, title=f"{found['count']} task(s)")


@cli.command()
@click.argument("task_id", type=int)
@click.option("--follow", is_flag=True, help="stream its output until it ends; exit with its code")
@click.option("--wait", is_flag=True, help="wait until it ends; exit with its code")
@click.option("--cancel-on-interrupt", is_flag=True, help="Ctrl-C cancels the task instead of detaching")
@json_option
@pass_state
def show(state: State, task_id: int, follow: bool, wait: bool, cancel_on_interrupt: bool, as_json: bool) -> None:
    """One task; --follow or --wait exit with its code as `run` does."""
    task = state.client.get(f"/tasks/{task_id}")
    if follow or wait:
        finish(state.client, [task], follow, False, cancel_on_interrupt, as_json, fanout=False)
    if as_json:
        render.emit_json(task)
    else:
        render.fields(task, TASK_FIELDS)


@cli.command()
@click.argument("task_ids", type=int, nargs=-1, required=True)
@pass_state
def cancel(state: State, task_ids: tuple[int, ...]) -> None:
    """Cancel tasks: a queued one never runs, a running one is killed."""
    for task_id in task_ids:
        task = state.client.json("PATCH", f"/tasks/{task_id}", json={"state": "ABORT"})
        click.echo(f"task {task_id}: {task['state']}")


@cli.command()
@click.argument("batch_id")
@click.option("--wait", is_flag=True, help="wait until every task has ended; exit with the fan-out's code")
@json_option
@pass_state
def batch(state: State, batch_id: str, wait: bool, as_json: bool) -> None:
    """A fan-out's counts per state and each instance's rc."""
    summary = state.client.get(f"/batches/{batch_id}")
    if wait:
        try:
            with watch.progress(summary["total"], render.on_terminal(sys.stderr), "waiting") as bar:
                job = bar.add_task("waiting", total=summary["total"]) if bar else None
                while True:
                    if bar:
                        bar.update(job, completed=summary["states"]["DONE"] + summary["states"]["ABORT"])
                    if summary["finished"]:
                        break
                    summary = state.client.get(f"/batches/{batch_id}", wait=2 if bar else watch.WAIT)
        except KeyboardInterrupt:
            render.warn(f"detached; the tasks go on. Re-attach with: wsexec batch {batch_id} --wait")
            sys.exit(outcome.INTERRUPTED)
    if as_json:
        render.emit_json(summary)
    else:
        render.fields(summary, ("id", "total", "finished", "states", "rc", "tasks"))
    if wait:
        sys.exit(outcome.batch(summary))


@cli.command()
@click.argument("name", required=False)
@click.option("-i", "--instance", type=int, help="the instance to run it on")
@click.option("--user", help="login user on the instance")
@env_options
@watch_options
@pass_state
def cmd(state: State, name: str | None, instance: int | None, user: str | None, env: tuple[str, ...],
        run_as: str | None, follow: bool, no_wait: bool, cancel_on_interrupt: bool, as_json: bool) -> None:
    """Run a fixed command (wsexec cmd uptime -i 3); without a name, list them."""
    if name is None:
        commands = state.client.get("/commands")
        if as_json:
            render.emit_json(commands)
        else:
            render.table([{"name": k, "command": v} for k, v in commands.items()], ("name", "command"))
        return
    if instance is None:
        raise click.UsageError("give the instance: -i ID")
    body = {"instance": instance} | ({"user": user} if user else {}) | run_options(env, run_as)
    task = state.client.json("POST", f"/commands/{name}", json=body)
    finish(state.client, [task], follow, no_wait, cancel_on_interrupt, as_json, fanout=False)
