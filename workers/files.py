"""File tasks (kind upload or fetch): moved over SFTP between Redis and the instance, a slice at a time.

An upload streams its content from Redis (GETRANGE, one slice in memory) into the SFTP session; a fetch streams the
file into the task's key (SETRANGE). Either ends DONE (rc 0) once the file is in place, or ABORT with the reason:
refused by the host (exists without overwrite, permission denied, larger than the cap...), SSH failures, timeout
or cancel, exactly like a script task.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from workers.ssh import ConnectionPool, Endpoint, SshError, Stopped
from workers.ssh.sftp import FileRefused, Sftp
from wsexec.config import Settings
from wsexec.store import Store, TaskState
from wsexec.store.files import CHUNK

KINDS = ("upload", "fetch")


class Runtime(Protocol):
    """What a transfer needs of the worker's runtime (workers.job.Runtime)."""

    settings: Settings
    store: Store
    pool: ConnectionPool
    halted: str | None


def run(runtime: Runtime, task: dict[str, Any], endpoint: Endpoint) -> tuple[TaskState, dict[str, Any]]:
    """Do the task's transfer; the state and fields it ends with."""
    store, task_id = runtime.store, task["id"]
    deadline = time.monotonic() + task["timeout"]

    def should_stop() -> str | None:
        if time.monotonic() > deadline:
            return f"timeout after {task['timeout']:g} s"
        by = store.cancel_requested_by(task_id)
        return f"cancelled by {by}" if by else runtime.halted

    try:
        with Sftp(runtime.pool, endpoint, task["timeout"]) as sftp:
            if task["kind"] == "upload":
                if not store.files.upload_exists(task["upload"]):
                    return TaskState.ABORT, {"error": "the upload's content is no longer in Redis", "rc": None}
                mode = sftp.upload(task["path"], _content(store, task["upload"], task["size"]),
                                   int(task["mode"], 8) if task.get("mode") else None, task["overwrite"], should_stop,
                                   on_temporary=lambda path: store.tasks.record_temporary(task_id, path))
                return TaskState.DONE, {"rc": 0, "mode": f"{mode:04o}"}
            store.files.clear_fetched(task_id)  # nothing of an earlier attempt
            size, sha256 = sftp.fetch(task["path"], runtime.settings.fetch_max,
                                      lambda offset, data: store.files.write_fetched(task_id, offset, data),
                                      should_stop)
            return TaskState.DONE, {"rc": 0, "size": size, "sha256": sha256}
    except (FileRefused, Stopped, SshError) as exc:
        if task["kind"] == "fetch":
            store.files.clear_fetched(task_id)
        if isinstance(exc, SshError):
            store.count_ssh_failure(exc.reason)
        return TaskState.ABORT, {"error": str(exc), "rc": None}


def remove_temporary(runtime: Runtime, endpoint: Endpoint, temporary: str) -> str:
    """What the reaper does for an upload whose worker died mid-way: remove its temporary file; say how it went."""
    try:
        with Sftp(runtime.pool, endpoint, runtime.settings.connect_timeout) as sftp:
            return sftp.remove_left(temporary)
    except SshError as exc:
        return f"its temporary file {temporary} could not be removed: {exc}"


def _content(store: Store, token: str, size: int) -> Iterator[bytes]:
    for offset in range(0, size, CHUNK):
        data = store.files.read_upload(token, offset, CHUNK)
        if len(data) != min(CHUNK, size - offset):
            raise FileRefused("the upload's content is no longer complete in Redis: nothing was written")
        yield data
