"""Per-user quotas, so that one user (or token) cannot take the service from the others: ?wait requests open at once
(leases in Redis that end with the wait, so a crashed web process's slots come back by themselves) and tasks queued
or running (counted from the tasks' own states, so no counter can drift)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.client import Pipeline

from wsexec import context
from wsexec.auth import current_user
from wsexec.exceptions import TooManyRequests, Unprocessable
from wsexec.store.admission import WaitLease

WAIT_LEASE_MARGIN = 30  # seconds a wait's lease outlives the wait: a crashed process's slot is free after that
TASKS_RETRY_AFTER = 10  # seconds: tasks end at their own pace; a hint, not a promise


class WaitSlot:
    """One of the user's WSEXEC_USER_WAITS_MAX slots, held by a ?wait (nothing without): taken by take() or by the
    round trip that reads the rest (Admission.check, asked()), given back by the wait's last read (release_on())
    or at the end of the block, whichever comes first; 429 if the user has none left."""

    def __init__(self, seconds: int | None) -> None:
        self.seconds = seconds
        self.lease: str | None = None

    def asked(self) -> WaitLease | None:
        """What Admission.check() takes to take the slot with what it reads (then granted() its answer)."""
        if self.seconds is None:
            return None
        return WaitLease(uuid.uuid4().hex, current_user().name, self.seconds + WAIT_LEASE_MARGIN,
                         context.settings().user_waits_max)

    def take(self) -> None:
        """Take the slot on its own round trip."""
        if self.seconds is not None:
            user, limit = current_user().name, context.settings().user_waits_max
            self.granted(*context.store().limits.acquire_wait(user, self.seconds + WAIT_LEASE_MARGIN, limit))

    def granted(self, lease: str | None, retry_after: int) -> None:
        if self.seconds is None:
            return
        if lease is None:
            user, limit = current_user().name, context.settings().user_waits_max
            raise TooManyRequests(f"{user} already has {limit} requests waiting (WSEXEC_USER_WAITS_MAX); retry "
                                  "without ?wait, or once one has answered", retry_after, {"limit": limit})
        self.lease = lease

    def release_on(self, pipe: Pipeline) -> None:
        """Give the slot back on the pipeline of the wait's last read; released() once that has run."""
        if self.lease is not None:
            context.store().limits.release_wait(current_user().name, self.lease, pipe)

    def released(self) -> None:
        self.lease = None

    def __enter__(self) -> WaitSlot:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.lease is not None:
            context.store().limits.release_wait(current_user().name, self.lease)
            self.lease = None


@contextmanager
def wait_slot(seconds: int | None) -> Iterator[WaitSlot]:
    """Hold one of the user's WSEXEC_USER_WAITS_MAX slots while the block waits (nothing without ?wait); 429 if none."""
    with WaitSlot(seconds) as slot:
        slot.take()
        yield slot


def make_room_for_tasks(user: str, adding: int, active: int) -> None:
    """Refuse a request that would give the user more than WSEXEC_USER_TASKS_MAX tasks INIT or CURRENT (all of it);
    active: how many the user has (Admission.check read it)."""
    limit = context.settings().user_tasks_max
    if adding > limit:
        raise Unprocessable(f"this request creates {adding} tasks; WSEXEC_USER_TASKS_MAX allows at most {limit} "
                            "queued or running per user: split it", {"limit": limit, "tasks": adding})
    if active + adding > limit:
        raise TooManyRequests(f"{user} has {active} tasks queued or running; {adding} more would exceed "
                              f"WSEXEC_USER_TASKS_MAX ({limit}): nothing was created", TASKS_RETRY_AFTER,
                              {"limit": limit, "active": active, "tasks": adding})
