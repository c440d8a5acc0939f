"""Issuing registrations, the script a new server runs, and the instance it registers as."""

from __future__ import annotations

import functools
import ipaddress
import os
import shlex
import time
from pathlib import Path
from typing import Any

from flask import request

from wsexec import audit, context
from wsexec.auth import Principal, current_user
from wsexec.exceptions import Unavailable
from wsexec.registrations import tokens
from wsexec.roles import Role
from wsexec.store import InstanceState

SCRIPT = Path(__file__).with_name("register.sh")
SETTINGS_LINE = "# @SETTINGS@\n"  # where the script gets its values
DEFAULT_PORT = 22


def base_url() -> str:
    """WSEXEC_PUBLIC_URL, else the URL this request came to (behind nginx: its Host and scheme)."""
    return (context.settings().public_url or request.host_url).rstrip("/") + request.script_root


def install_command(token: str) -> str:
    return f'curl -fsS -H "Authorization: Bearer {token}" {base_url()}/wsexec/register.sh | sh'


@functools.cache
def _public_key(path: str, mtime_ns: int) -> str:
    import paramiko  # the web side needs it only here

    key = paramiko.PKey.from_path(path)
    return f"{key.get_name()} {key.get_base64()} wsexec"


def service_public_key() -> str:
    """The public half of the key the workers log in with, as an authorized_keys line: from WSEXEC_SSH_KEY where
    this host has it, else as the workers published it in Redis (the API may run on a machine without the key)."""
    path = os.path.abspath(context.settings().ssh_key)
    try:
        return _public_key(path, os.stat(path).st_mtime_ns)
    except Exception as exc:  # missing, unreadable, or not a key: the workers' word, or the service is misconfigured
        problem = type(exc).__name__
    published = context.store().registrations.service_key()
    if published:
        return published
    raise Unavailable(f"the service's SSH key (WSEXEC_SSH_KEY) cannot be read here ({problem}) and no worker has "
                      "published its public half yet")


def issue(fields: dict[str, Any]) -> dict[str, Any]:
    """A new registration and its token, shown this once with the command to run."""
    service_public_key()  # refused now, not when the servers run the script
    token = tokens.new_token()
    now = time.time()
    record = {key: value for key, value in fields.items() if key != "expires_in"}
    record |= {"expires_at": now + fields["expires_in"], "created_by": current_user().name, "created_at": now}
    registration = context.store().registrations.create(record, tokens.digest(token))
    audit.record("registration.create", f"registration:{registration['id']}", fields)
    return {**registration, "token": token, "command": install_command(token)}


def script(registration: dict[str, Any], token: str) -> str:
    """register.sh with this registration's values (shell-quoted) in place of its settings line."""
    values = {
        "wsexec_url": base_url(),
        "token": token,
        "login_user": registration["user"],
        "service_key": service_public_key(),
    }
    settings = "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())
    return SCRIPT.read_text().replace(SETTINGS_LINE, settings, 1)


def client_address() -> str:
    """The address this request comes from (behind trusted proxies: the client's), IPv4-mapped ones as IPv4."""
    address = ipaddress.ip_address(request.remote_addr or "")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def register(registration: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The instance for a registering server: the registration's tag, user and state, the server's key pinned."""
    address = fields.get("address") or client_address()
    instance = {
        "ip": address,
        "port": fields.get("port") or registration.get("port") or DEFAULT_PORT,
        "tag": registration["tag"],
        "user": registration["user"],
        "state": InstanceState.ACTIVE if registration["activate"] else InstanceState.DEACTIVATE,
        "host_key": " ".join(fields["host_key"].split()[:2]),  # without the comment
    }
    store = context.store()
    instance_id = store.registrations.register(registration, instance)
    created = store.get_instance(instance_id)
    actor = Principal(f"registration:{registration['id']}", Role.ADMIN)  # an admin's authority, handed to the token
    detail = {**created, "name": fields.get("name"), "registration": registration["id"],
              "issued_by": registration["created_by"]}
    audit.record("instance.register", f"instance:{instance_id}", detail, user=actor)
    return created
