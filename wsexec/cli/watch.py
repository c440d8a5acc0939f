"""Waiting for tasks and following their output until they end: what `run`, `cmd`, `show` and `batch` share.

A task's outcome always comes from its stored final state (the `end` event or GET /tasks/{id}), never from how the
stream went, so a task that ended before wsexec started watching gives the same answer as one that ends after.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wsexec.cli import render
from wsexec.cli.client import ApiError, Client, StreamBroken, StreamBusy
from wsexec.cli.outcome import FINISHED

WAIT = 60  # seconds per ?wait request (the server caps it at WSEXEC_WAIT_MAX, 300 by default)
RECONNECT_PAUSE = 1.0
FOLLOW_MAX = 20  # a fan-out's streams open at once, each holding one of the server's (WSEXEC_EVENTS_STREAMS_MAX)


def labels(client: Client, tasks: Iterable[dict[str, Any]]) -> dict[int, str]:
    """Task id -> the name its lines are prefixed with: the instance's address (and port unless 22)."""
    hosts: dict[int, str] = {}
    for instance_id in sorted({task["instance"] for task in tasks}):
        instance = client.get(f"/instances/{instance_id}")
        hosts[instance_id] = instance["ip"] if instance["port"] == 22 else f"{instance['ip']}:{instance['port']}"
    if len(set(hosts.values())) < len(hosts):
        hosts = {key: f"{value}#{key}" for key, value in hosts.items()}
    return {task["id"]: hosts[task["instance"]] for task in tasks}


class Lines:
    """Writes text with `prefix: ` before every line, holding back a line until it is complete (one lock for all)."""

    lock = threading.Lock()
    muted = False  # once set (under the lock), no thread writes again: the interpreter can exit mid-follow

    def __init__(self, prefix: str | None, err: bool) -> None:
        self.prefix, self.err, self.pending = prefix, err, ""

    @classmethod
    def mute(cls) -> None:
        with cls.lock:
            cls.muted = True

    def write(self, text: str) -> None:
        if self.prefix is None:
            complete = [text]
        else:
            *complete, self.pending = (self.pending + text).split("\n")
            complete = [f"{self.prefix}: {line}\n" for line in complete]
        with self.lock:
            if not self.muted:
                try:
                    click.echo("".join(complete), nl=False, err=self.err)
                except BrokenPipeError:  # the reader left (`| head`): the rest goes nowhere, the exit code stays
                    render.discard(sys.stderr if self.err else sys.stdout)

    def close(self) -> None:
        if self.pending:
            self.write("\n")


def progress(total: int, show: bool, what: str) -> AbstractContextManager[Any]:
    """A progress bar on the terminal's stderr for a fan-out or a long wait; nothing in a pipe."""
    if not show:
        return nullcontext(None)
    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=render.console(stderr=True), transient=True)


def wait(client: Client, ids: list[int], show_progress: bool) -> list[dict[str, Any]]:
    """The tasks once all have finished, each with its output (GET ?wait, one at a time: the slowest sets the pace)."""
    finished: list[dict[str, Any]] = []
    with progress(len(ids), show_progress, "waiting") as bar:
        job = bar.add_task("waiting", total=len(ids)) if bar else None
        for task_id in ids:
            task = client.get(f"/tasks/{task_id}", wait=WAIT)
            while task["state"] not in FINISHED:
                task = client.get(f"/tasks/{task_id}", wait=WAIT)
            finished.append(task)
            if bar:
                bar.advance(job)
    return finished


def follow(client: Client, task_id: int, out: Lines, err: Lines) -> dict[str, Any]:
    """Stream one task's output to out/err until its end event (resuming with Last-Event-ID); the final task."""
    last_id = None
    writers = {"stdout": out, "stderr": err}
    told = False
    while True:
        try:
            for event in client.stream(f"/tasks/{task_id}/output", {"follow": "true"}, last_id):
                if event.name in writers:
                    writers[event.name].write(event.data)
                elif event.name == "end":
                    out.close()
                    err.close()
                    end = json.loads(event.data)
                    if end.get("state") is None:
                        raise ApiError(f"task {task_id}: {end.get('error') or 'gone'}")
                    return dict(client.get(f"/tasks/{task_id}"))
                last_id = event.id or last_id
        except StreamBusy as exc:
            if not told:  # once: the output comes once a slot is free, nothing of it lost
                render.note(f"{out.prefix or f'task {task_id}'}: {exc.message}; trying again")
                told = True
        except StreamBroken:
            pass
        time.sleep(RECONNECT_PAUSE)  # the stream ended early (a restart, Redis lost): go on from where it was


def follow_all(client: Client, ids: list[int], names: dict[int, str] | None,
               show_progress: bool) -> list[dict[str, Any]]:
    """Follow several tasks at once (FOLLOW_MAX at a time: the others' output comes whole once a follower is free), each
    line prefixed with its instance; the final tasks in the given order."""
    if len(ids) == 1:  # in this thread: nothing else to stop on Ctrl-C
        prefix = names[ids[0]] if names else None
        return [follow(client, ids[0], Lines(prefix, False), Lines(prefix, True))]
    results: dict[int, dict[str, Any]] = {}
    failures: list[BaseException] = []
    queue = iter(ids)
    taking = threading.Lock()

    def follower() -> None:
        """Follows the next task not yet followed until none is left (or one fails)."""
        while not failures:
            with taking:
                task_id = next(queue, None)
            if task_id is None:
                return
            prefix = names[task_id] if names else None
            try:
                results[task_id] = follow(client, task_id, Lines(prefix, False), Lines(prefix, True))
            except BaseException as exc:  # handed to the main thread, which reports it
                failures.append(exc)

    threads = [threading.Thread(target=follower, daemon=True) for _ in range(min(FOLLOW_MAX, len(ids)))]
    for thread in threads:
        thread.start()
    try:
        with progress(len(ids), show_progress, "running") as bar:
            job = bar.add_task("running", total=len(ids)) if bar else None
            while any(thread.is_alive() for thread in threads):  # join with a timeout: Ctrl-C reaches this thread
                for thread in threads:
                    thread.join(0.2)
                if bar:
                    bar.update(job, completed=len(results))
                if failures:
                    raise failures[0]
    except KeyboardInterrupt:
        Lines.mute()  # the following threads stay blocked on their streams until the process exits
        raise
    if failures:
        raise failures[0]
    return [results[task_id] for task_id in ids]


def show_outputs(tasks: list[dict[str, Any]], names: dict[int, str] | None) -> None:
    """The output of finished tasks as the follow would have shown it, prefixed per instance for a fan-out."""
    for task in tasks:
        prefix = names[task["id"]] if names else None
        for stream, err in (("stdout", False), ("stderr", True)):
            lines = Lines(prefix, err)
            lines.write(task.get(stream) or "")
            lines.close()


def report(tasks: list[dict[str, Any]], names: dict[int, str] | None, summary: Callable[[], str]) -> None:
    """Why each aborted task was aborted, what of its output the server did not keep, then (fan-out) the summary
    line, on stderr."""
    for task in tasks:
        who = f"{names[task['id']]}: " if names else ""
        if task.get("state") != "DONE":
            render.warn(f"{who}task {task['id']} {task.get('state')}: {task.get('error') or 'no error given'}")
        for stream in ("stdout", "stderr"):
            if task.get(f"{stream}_dropped"):
                render.warn(f"{who}task {task['id']}: {task[f'{stream}_dropped']} more bytes of {stream} than the "
                            "server keeps (WSEXEC_OUTPUT_CAP) were dropped; what is shown is the head")
    if names:
        render.note(summary())
