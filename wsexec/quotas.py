"""Per-user quotas, so that one user (or token) cannot take the service from the others: ?wait requests open at once
(leases in Redis that end with the wait, so a crashed web process's slots come back by themselves) and tasks queued
or running (counted from the tasks' own states, so no counter can drift)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from wsexec import context
from wsexec.auth import current_user
from wsexec.exceptions import TooManyRequests, Unprocessable

WAIT_LEASE_MARGIN = 30  # seconds a wait's lease outlives the wait: a crashed process's slot is free after that
TASKS_RETRY_AFTER = 10  # seconds: tasks end at their own pace; a hint, not a promise


@contextmanager
def wait_slot(seconds: int | None) -> Iterator[None]:
    """Hold one of the user's WSEXEC_USER_WAITS_MAX slots while the block waits (nothing without ?wait); 429 if none."""
    if seconds is None:
        yield
        return
    user, limit, limits = current_user().name, context.settings().user_waits_max, context.store().limits
    lease, retry_after = limits.acquire_wait(user, seconds + WAIT_LEASE_MARGIN, limit)
    if lease is None:
        raise TooManyRequests(f"{user} already has {limit} requests waiting (WSEXEC_USER_WAITS_MAX); retry without "
                              "?wait, or once one has answered", retry_after, {"limit": limit})
    try:
        yield
    finally:
        limits.release_wait(user, lease)


def make_room_for_tasks(user: str, adding: int) -> None:
    """Refuse a request that would give the user more than WSEXEC_USER_TASKS_MAX tasks INIT or CURRENT (all of it)."""
    limit = context.settings().user_tasks_max
    if adding > limit:
        raise Unprocessable(f"this request creates {adding} tasks; WSEXEC_USER_TASKS_MAX allows at most {limit} "
                            "queued or running per user: split it", {"limit": limit, "tasks": adding})
    active = context.store().tasks.active_count(user)
    if active + adding > limit:
        raise TooManyRequests(f"{user} has {active} tasks queued or running; {adding} more would exceed "
                              f"WSEXEC_USER_TASKS_MAX ({limit}): nothing was created", TASKS_RETRY_AFTER,
                              {"limit": limit, "active": active, "tasks": adding})
