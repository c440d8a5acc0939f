"""File tasks behind the thin views: an upload's content into Redis, one task per destination, the fetched file out.

They are tasks like any other (tasks.service.create: the same fan-out, login rules, quotas, RQ jobs, states and
events), of kind "upload" or "fetch"; the workers move the bytes (workers/files.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from wsexec import context
from wsexec.exceptions import Conflict, NotFound
from wsexec.store import TaskState
from wsexec.tasks import service as tasks

TAG = "files"


def _item(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A task item as tasks.service.create takes it, with the file task's defaults."""
    item = {"name": f"{kind} {fields['path']}", "tag": TAG, **fields, "kind": kind}
    if "target_tag" in item:
        item["target"] = {"tag": item.pop("target_tag")}
    return item


def upload(content: IO[bytes], fields: dict[str, Any], created_by: str) -> list[dict[str, Any]]:
    """Keep the content in Redis (until the last of its tasks ends) and create a task per destination."""
    store, settings = context.store(), context.settings()
    token, size, sha256 = store.files.put_upload(content, settings.file_max)
    try:
        return tasks.create([_item("upload", {**fields, "upload": token, "size": size, "sha256": sha256})],
                            created_by)
    except BaseException:  # no task holds it: nothing else would delete it
        store.files.drop_upload(token)
        raise


def fetch(fields: dict[str, Any], created_by: str) -> dict[str, Any]:
    """A task that brings one file back (at most WSEXEC_FETCH_MAX bytes), kept under the task until it is deleted."""
    (task,) = tasks.create([_item("fetch", fields)], created_by)
    return task


def fetched(task_id: int) -> tuple[dict[str, Any], Iterator[bytes]]:
    """A DONE fetch task and its file's bytes; 404 for another kind of task, 409 until it is DONE."""
    store = context.store()
    task = store.get_task(task_id)
    if task.get("kind") != "fetch":
        raise NotFound(f"task {task_id} is a {task.get('kind', 'script')} task: only fetch tasks have a file",
                       {"kind": task.get("kind", "script")})
    if task["state"] != TaskState.DONE.value:
        more = f": {task['error']}" if task.get("error") else ""
        raise Conflict(f"task {task_id} is {task['state']}, not DONE: there is no file{more}",
                       {"state": task["state"], "error": task.get("error")})
    return task, store.files.read_fetched(task_id, task["size"])
