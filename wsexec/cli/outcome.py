"""Exit codes: the tasks' truth, decided from their final state alone (so it is the same however they were watched)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

OK = 0
FANOUT_SOME_FAILED = 4  # every task ran, at least one rc != 0 (pssh's 4)
FANOUT_SOME_ABORTED = 3  # at least one task never ran to its end: unreachable, host key, timeout, cancelled, lost
USAGE = 2  # click's own: a bad option or argument
CLIENT_ERROR = 125  # wsexec itself failed: server error, refused connection, bad credentials, bad config
INTERRUPTED = 130  # Ctrl-C: detached (or cancelled with --cancel-on-interrupt); the task goes on
ABORTED = 255  # one task, aborted (like ssh's 255)

TABLE = f"""\b
Exit codes (the tasks' truth, whether they ended before or after wsexec started watching):
  run/cmd/show --wait|--follow of one task: its rc (0-255), or {ABORTED} if it was aborted
      (unreachable, host key, timeout, cancelled, worker lost: the error on stderr)
  a fan-out (-t TAG, several -i, batch --wait): {OK} if every task ran with rc 0,
      {FANOUT_SOME_FAILED} if all ran and some rc != 0, {FANOUT_SOME_ABORTED} if some were aborted
  {OK} --no-wait once created; other commands {OK} on success
  {USAGE} bad usage; {CLIENT_ERROR} wsexec could not do it (server error, no server, credentials)
  {INTERRUPTED} Ctrl-C while waiting or following (detached: the tasks go on)"""

FINISHED = ("DONE", "ABORT")


def single(task: Mapping[str, Any]) -> int:
    """A finished task's own rc, or ABORTED."""
    if task.get("state") != "DONE" or task.get("rc") is None:
        return ABORTED
    return int(task["rc"]) & 0xFF  # as a shell shows it


def fanout(tasks: Iterable[Mapping[str, Any]]) -> int:
    """0 if all ran with rc 0, FANOUT_SOME_ABORTED if any was aborted, else FANOUT_SOME_FAILED if any rc != 0."""
    tasks = list(tasks)
    if any(task.get("state") != "DONE" or task.get("rc") is None for task in tasks):
        return FANOUT_SOME_ABORTED
    return OK if all(task["rc"] == 0 for task in tasks) else FANOUT_SOME_FAILED


def batch(summary: Mapping[str, Any]) -> int:
    """The fan-out code of a finished batch from GET /batches/{id} (states and each instance's rc)."""
    if summary["states"].get("ABORT") or any(rc is None for rc in summary["rc"].values()):
        return FANOUT_SOME_ABORTED
    return OK if all(rc == 0 for rc in summary["rc"].values()) else FANOUT_SOME_FAILED


def summary(tasks: Iterable[Mapping[str, Any]]) -> str:
    """'3 tasks: 2 DONE (rc 0: 1, rc 3: 1), 1 ABORT'."""
    tasks = list(tasks)
    states = Counter(task.get("state") for task in tasks)
    rcs = Counter(task.get("rc") for task in tasks if task.get("state") == "DONE")
    parts = []
    if states["DONE"]:
        parts.append(f"{states['DONE']} DONE (" + ", ".join(f"rc {rc}: {n}" for rc, n in sorted(
            rcs.items(), key=lambda item: (item[0] is None, item[0] or 0))) + ")")
    parts += [f"{n} {state}" for state, n in sorted(states.items(), key=str) if state != "DONE"]
    return f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}: " + ", ".join(parts)
