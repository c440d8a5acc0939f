"""The reconciler: an INIT task must be held by some RQ job that will run it; one that is not never would.

A task can lose its job when its creation was cut short (Redis refused the enqueue, then its removal too) or when
RQ's data is damaged; its job can be stranded by a worker that died just as it popped it. Tasks younger than the
grace period are left alone, so a creation still in progress is never taken for a loss.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from rq import Queue
from rq.job import JobStatus

from workers.rq_adapter import ENDED, job_statuses, release_if_orphaned, requeue_stranded
from wsexec.store import Store

log = logging.getLogger(__name__)


@dataclass
class Reconciled:
    released: list[int] = field(default_factory=list)  # tasks whose deferred job waited on nothing: queued now
    requeued: list[int] = field(default_factory=list)  # tasks whose job a dead worker had popped: queued again
    aborted: list[int] = field(default_factory=list)  # tasks no job would run: ended ABORT


class Reconciler:
    def __init__(self, store: Store, queue: Queue, grace: float) -> None:
        self.store, self.queue, self.grace = store, queue, grace

    def run(self, now: float | None = None) -> Reconciled:
        """One pass over the INIT tasks older than the grace period."""
        done = Reconciled()
        stale = self.store.tasks.stale_init((time.time() if now is None else now) - self.grace)
        statuses = job_statuses(self.queue, sorted({job for _, job in stale if job}))
        queued = {job for job, status in statuses.items() if status == JobStatus.QUEUED}
        requeued = set(requeue_stranded(self.queue, queued, min_age=self.grace / 2)) if queued else set()
        done.requeued = [task_id for task_id, job in stale if job in requeued]
        for task_id, job in stale:
            status = statuses.get(job) if job else None
            if status == JobStatus.DEFERRED and job and release_if_orphaned(self.queue, job):
                done.released.append(task_id)
            elif status is None or status in ENDED:
                reason = f"its job {job} is {status.value if status else 'missing'} in RQ" if job else "it has no job"
                if self.store.abort_queued(task_id, f"never queued: {reason}"):
                    done.aborted.append(task_id)
        if done.released or done.requeued or done.aborted:
            log.warning("reconciled INIT tasks: queued %s (their dependencies were gone), queued again %s (their "
                        "worker died as it took their job), ABORT %s (no job)", done.released, done.requeued,
                        done.aborted)
        return done
