"""Fixed commands: run only what Settings.commands names, each as an ordinary task, and wait for it if asked."""

from __future__ import annotations

from typing import Any

from wsexec import audit, context
from wsexec.exceptions import NotFound, TaskFailed, TaskPending
from wsexec.store import RUNNING_STATES, TaskState
from wsexec.tasks import environment
from wsexec.tasks import service as tasks

TAG = "command"


def command_line(name: str) -> str:
    """The configured command line; 404 (listing the names there are) for any other name."""
    commands = context.settings().commands
    if name not in commands:
        raise NotFound(f"no command named {name!r}", {"commands": sorted(commands)})
    return commands[name]


def start(name: str, script: str, instance: int, user: str | None, created_by: str, **options: Any) -> dict[str, Any]:
    """Create and enqueue the task exactly as POST /wsexec/tasks would (grouping, cancel, audit all apply)."""
    item = {"name": name, "tag": TAG, "instance": instance, "script": script, **options}
    if user:
        item["user"] = user
    (task,) = tasks.create([item], created_by)
    detail = {"task": task["id"], "instance": instance, **environment.redacted(options)}
    audit.record("command.run", f"command:{name}", detail)
    return task


def finished(task_id: int, seconds: int) -> dict[str, Any]:
    """The task once DONE; 504 if it is still running after `seconds`, 502 if it ended ABORT (both name it)."""
    (task,) = tasks.wait_finished([task_id], seconds)
    if task["state"] in RUNNING_STATES:
        raise TaskPending(f"task {task_id} has not finished within {seconds} s; follow it at /wsexec/tasks/{task_id}",
                          {"task": task_id})
    if task["state"] == TaskState.ABORT:
        error = task.get("error")
        raise TaskFailed(f"task {task_id} was aborted: {error}", {"task": task_id, "error": error})
    return task


def stdout(task_id: int) -> str:
    return context.store().read_output(task_id, "stdout").decode("utf-8", "replace")
