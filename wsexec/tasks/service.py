"""Task operations behind the thin views: defaults, fan-out, enqueueing with RQ, cancel, output."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from typing import Any

from wsexec import context, jobs, quotas
from wsexec.exceptions import NotFound, Unprocessable
from wsexec.store import FINISHED_STATES, STREAMS, TaskState
from wsexec.store.tasks import Created
from wsexec.tasks import expand, follow
from wsexec.tasks.schemas import MAX_OFFSET

CANCEL_WAIT_SECONDS = 2.0


def create(items: list[dict[str, Any]], created_by: str) -> list[dict[str, Any]]:
    """Validate against live data, expand fan-out targets, store all tasks atomically, then enqueue them."""
    return add(items, created_by).tasks


def add(items: list[dict[str, Any]], created_by: str,
        audit_entry: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
        slot: quotas.WaitSlot | None = None) -> Created:
    """create(), with where the events stream was at their creation (for a wait on them without a snapshot);
    audit_entry: the audit log's entry for the tasks, written with their jobs (both or neither: one round trip);
    slot: a wait's, taken in the round trip that reads the instances and the quota (429 if refused).

    Stored and queued, or neither: tasks whose jobs RQ did not take are removed again before the error is answered
    (and if even that fails, the workers' reconciler ends them ABORT).
    """
    store, settings = context.store(), context.settings()
    admitted = store.admission.check(*expand.destinations(items), created_by, None if slot is None else slot.asked())
    if slot is not None:
        slot.granted(admitted.lease, admitted.retry_after)
    records = expand.all_records(store, settings, items, (admitted.by_id, admitted.by_tag))
    quotas.make_room_for_tasks(created_by, len(records), admitted.active)
    for record in records:
        record["created_by"] = created_by
    now = time.time()
    created = store.tasks.add(records, now, jobs.JOB_PREFIX, settings.tasks_per_job)
    plans = expand.plans(created.tasks, created.after, settings.worker_threads)
    try:
        if audit_entry is None:
            jobs.enqueue(context.queue(), plans, now, store)
        else:
            store.audit.add_with(audit_entry(created.tasks), settings.audit_max, settings.audit_max_bytes,
                                 lambda pipe: jobs.enqueue(context.queue(), plans, now, store, pipe))
    except Exception:
        store.tasks.discard(task["id"] for task in created.tasks)
        raise
    return created


def cancel(task_id: int, by: str) -> dict[str, Any]:
    """Queued: off the queue at once. Running: the worker kills the remote process; wait briefly to show it."""
    store = context.store()
    found = store.request_cancel(task_id, by)
    if found == TaskState.INIT.value:
        task = store.get_task(task_id)
        if "job" in task:
            jobs.cancel(context.queue(), task["job"], task_id)
        return task
    return wait_finished([task_id], CANCEL_WAIT_SECONDS)[0]


def wait_finished(task_ids: list[int], seconds: float, output: bool = False, created: str | None = None,
                  slot: quotas.WaitSlot | None = None) -> list[dict[str, Any]]:
    """The tasks once DONE or ABORT, or as they are when `seconds` run out (woken by their events, no polling);
    with `output`, their stored output too (read with them, decoded for JSON as task_with_output() does); created: as
    Waits.until_finished takes it; slot: the wait's, given back by the last read."""
    release = None if slot is None else slot.release_on
    tasks = context.store().until_finished(task_ids, seconds, output, created, release)
    if slot is not None:
        slot.released()
    missing = sorted(set(task_ids) - {task["id"] for task in tasks})
    if missing:  # deleted (or purged) while the request waited
        raise NotFound(f"task {missing[0]} not found")
    return [_decoded(task) for task in tasks] if output else tasks


def task_with_output(task_id: int) -> dict[str, Any]:
    """One task and its stored output, read in one round trip (GET one task: the API's most frequent call)."""
    found = context.store().get_tasks_with_output([task_id])
    if not found:
        raise NotFound(f"task {task_id} not found")
    return _decoded(found[0])


def _decoded(task: dict[str, Any]) -> dict[str, Any]:
    return {**task, **{s: task[s].decode("utf-8", "replace") for s in STREAMS}}


def output_since(task_id: int, stdout_offset: int, stderr_offset: int) -> dict[str, Any]:
    """What each stream gained since the given byte offsets, cut before an incomplete UTF-8 character."""
    store = context.store()
    task = store.get_task(task_id)
    finished = task["state"] in FINISHED_STATES
    answer: dict[str, Any] = {"id": task_id, "state": task["state"], "finished": finished}
    for stream, offset in (("stdout", stdout_offset), ("stderr", stderr_offset)):
        data = store.read_output(task_id, stream, offset)
        answer[stream], used = follow.decode_complete(codecs.getincrementaldecoder("utf-8")("replace"), data, finished)
        answer[f"{stream}_offset"] = offset + used
    answer["rc"] = task.get("rc")
    answer["error"] = task.get("error")
    return answer


def resume_offsets(last_event_id: str | None, stdout_offset: int, stderr_offset: int) -> dict[str, int]:
    """Where a followed stream starts: the byte offsets in Last-Event-ID if sent, else the query's (422 if bad)."""
    if last_event_id is None:
        return {"stdout": stdout_offset, "stderr": stderr_offset}
    found = follow.EVENT_ID.fullmatch(last_event_id)
    if not found or max(int(found[1]), int(found[2])) > MAX_OFFSET:
        raise Unprocessable("Last-Event-ID: not an output event id",
                            {"Last-Event-ID": ["expected STDOUT_OFFSET.STDERR_OFFSET (byte offsets)"]})
    return {"stdout": int(found[1]), "stderr": int(found[2])}
