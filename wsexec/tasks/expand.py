"""From a validated POST /tasks item to the records to store and the RQ jobs that run them, without Flask: the web's
task service and the workers' schedule loop (workers/schedules.py) make tasks the same way."""

from __future__ import annotations

import uuid
from typing import Any

from wsexec import jobs, notify
from wsexec.config import Settings
from wsexec.exceptions import Forbidden, Unprocessable
from wsexec.store import Store
from wsexec.tasks import environment

Found = tuple[dict[int, dict[str, Any]], dict[str, list[dict[str, Any]]]]  # instances by id, ACTIVE ones by tag


def all_records(store: Store, settings: Settings, items: list[dict[str, Any]], found: Found) -> list[dict[str, Any]]:
    """The records of every item of a POST, from its instances read at once (not one round trip per item)."""
    return [record for index, item in enumerate(items)
            for record in records(store, settings, index, item, len(items) > 1, found)]


def destinations(items: list[dict[str, Any]]) -> tuple[list[int], list[str]]:
    """The instance ids and the target tags the items name."""
    return ([item["instance"] for item in items if "target" not in item],
            [item["target"]["tag"] for item in items if "target" in item])


def lookup(store: Store, items: list[dict[str, Any]]) -> Found:
    return store.instances.lookup(*destinations(items))


def records(store: Store, settings: Settings, index: int, item: dict[str, Any], many: bool,
            instances_found: Found | None = None) -> list[dict[str, Any]]:
    """One stored record per destination instance, with defaults filled in; 422 naming the item otherwise."""
    by_id, by_tag = lookup(store, [item]) if instances_found is None else instances_found
    where = f"item {index}: " if many else ""

    def refuse(field: str, message: str) -> Unprocessable:
        detail = {str(index): {field: [message]}} if many else {field: [message]}
        return Unprocessable(f"{where}{field}: {message}", detail)

    if len(item.get("script", "").encode()) > settings.script_max:  # file tasks (wsexec.files) have none
        raise refuse("script", f"longer than {settings.script_max} bytes")
    if "env" in item and len(environment.script(item).encode()) > settings.script_max:
        raise refuse("env", f"the script with its exported env is longer than {settings.script_max} bytes")
    timeout = item.get("timeout", settings.task_timeout)
    if timeout > settings.task_timeout_max:
        raise refuse("timeout", f"at most {settings.task_timeout_max} s")
    if "notify" in item:
        refused = notify.url_refused(item["notify"]["url"], notify.allow_list(settings.webhook_allow))
        if refused is None and not settings.webhook_secret:
            refused = "webhooks are off: WSEXEC_WEBHOOK_SECRET is not set (deliveries are always signed)"
        if refused:
            raise refuse("notify", f"url refused: {refused}")
    if "target" in item:
        instances = by_tag[item["target"]["tag"]]
        if not instances:
            raise refuse("target", f"no ACTIVE instance has tag {item['target']['tag']!r}")
        batch = uuid.uuid4().hex[:12]
    else:
        if item["instance"] not in by_id:
            raise refuse("instance", f"instance {item['instance']} does not exist")
        instances = [by_id[item["instance"]]]
        batch = None
    found = []
    for instance in instances:
        user = item.get("user") or instance.get("user")
        if not user:
            raise refuse("user", f"required: instance {instance['id']} has no default user")
        allowed = allowed_logins(settings, instance)
        if user not in allowed:
            detail = {"instance": instance["id"], "user": user, "allowed": allowed}
            raise Forbidden(f"{where}user {user!r} may not log in to instance {instance['id']}; allowed: "
                            f"{', '.join(allowed) or 'none (set its user or login_users)'}",
                            {**detail, "item": index} if many else detail)
        fields = {k: v for k, v in item.items() if k != "target"}
        if item.get("env"):  # the names outlive the values, which the task drops when it ends
            fields["env_names"] = environment.names(item["env"])
        found.append({"kind": "script", **fields, "instance": instance["id"], "user": user, "timeout": timeout,
                      "batch": batch})
    return found


def allowed_logins(settings: Settings, instance: dict[str, Any]) -> list[str]:
    """Its own user, and its login_users or (if it has none) WSEXEC_LOGIN_USERS: nobody else, root included."""
    listed = instance.get("login_users")
    extra = settings.login_users.split() if listed is None else listed
    return sorted({*([instance["user"]] if instance.get("user") else []), *extra})


def plans(tasks: list[dict[str, Any]], after: dict[int, list[str]], threads: int) -> list[jobs.JobPlan]:
    """The RQ jobs the store gave the tasks: a group of tasks ready now shares one, each waiting task has its own."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        groups.setdefault(task["job"], []).append(task)
    return [
        jobs.JobPlan(
            job,
            [task["id"] for task in group],
            max(task["timeout"] for task in group),
            threads,
            after=after.get(group[0]["id"], []),
            scheduled_at=group[0].get("scheduled_at") or 0,
            run_after=group[0].get("run_after") or [],
        )
        for job, group in groups.items()
    ]
