"""`wsexec instances`: list, declare (with the host key scanned and pinned), show, remove, gather facts."""

from __future__ import annotations

import click

from wsexec.cli import hostkeys, render
from wsexec.cli.commands import State, cli, json_option, pass_state

INSTANCE_COLUMNS = ("id", "ip", "port", "tag", "state", "user", "max_concurrent")


@cli.group(invoke_without_command=True)
@click.option("-t", "--tag")
@click.option("--state", "instance_state", type=click.Choice(["ACTIVE", "DEACTIVATE"]))
@json_option
@click.pass_context
def instances(ctx: click.Context, tag: str | None, instance_state: str | None, as_json: bool) -> None:
    """List instances (or: add, show, rm, facts)."""
    if ctx.invoked_subcommand is None:
        found = ctx.ensure_object(State).client.get("/instances", tag=tag, state=instance_state, page_size=100)
        if as_json:
            render.emit_json(found)
        else:
            render.table(found["results"], INSTANCE_COLUMNS, title=f"{found['count']} instance(s)")


@instances.command("add")
@click.argument("ip")
@click.option("-t", "--tag", required=True)
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=22, show_default=True)
@click.option("--user", "login", help="default login user")
@click.option("--login-user", "login_users", multiple=True, metavar="USER",
              help="another login user tasks may ask for with --user (repeatable; default: WSEXEC_LOGIN_USERS)")
@click.option("--host-key", help="pin this key ('ssh-ed25519 AAAA...')")
@click.option("--scan", is_flag=True, help="fetch the server's host key now (as ssh-keyscan does) and pin it")
@json_option
@pass_state
def instances_add(state: State, ip: str, tag: str, port: int, login: str | None, login_users: tuple[str, ...],
                  host_key: str | None, scan: bool, as_json: bool) -> None:
    """Declare an instance (admin)."""
    if scan and host_key:
        raise click.UsageError("--scan or --host-key, not both")
    if scan:
        host_key, fingerprint = hostkeys.scan(ip, port)
        render.note(f"{ip}:{port} host key {host_key.split()[0]} {fingerprint}: pinned (compare it out of band)")
    body = {"ip": ip, "port": port, "tag": tag} | {k: v for k, v in (("user", login), ("host_key", host_key)) if v}
    body |= {"login_users": list(login_users)} if login_users else {}
    instance = state.client.json("POST", "/instances", json=body)
    if as_json:
        render.emit_json(instance)
    else:
        click.echo(instance["id"])


@instances.command("show")
@click.argument("instance_id", type=int)
@json_option
@pass_state
def instances_show(state: State, instance_id: int, as_json: bool) -> None:
    """One instance, with its facts once gathered."""
    instance = state.client.get(f"/instances/{instance_id}")
    if as_json:
        render.emit_json(instance)
    else:
        render.fields(instance, (*INSTANCE_COLUMNS, "host_key", "facts", "facts_at"))


@instances.command("rm")
@click.argument("instance_id", type=int)
@pass_state
def instances_rm(state: State, instance_id: int) -> None:
    """Remove an instance (refused while it has queued or running tasks)."""
    state.client.json("DELETE", f"/instances/{instance_id}")
    click.echo(f"instance {instance_id}: removed")


@instances.command("facts")
@click.argument("instance_id", type=int)
@click.option("--wait", type=click.IntRange(1, 300), default=30, show_default=True, help="seconds")
@json_option
@pass_state
def instances_facts(state: State, instance_id: int, wait: int, as_json: bool) -> None:
    """Gather os, kernel, cpus, memory, disks and uptime over SSH now."""
    instance = state.client.json("POST", f"/instances/{instance_id}/facts", params={"wait": wait}, wait=wait)
    if as_json:
        render.emit_json(instance["facts"])
    else:
        render.fields(instance["facts"], ())
