"""The worker side's use of RQ beyond running jobs: failing the jobs of a dead worker at once, with RQ's own API."""

from __future__ import annotations

from collections.abc import Collection

from redis import Redis
from rq.executions import Execution
from rq.registry import StartedJobRegistry


def fail_abandoned_jobs(connection: Redis, queue_name: str, job_ids: Collection[str]) -> None:
    """Let RQ fail these jobs of a dead worker now rather than when their timeout runs out (up to hours later).

    Their executions in the started registry are expired now, and RQ's own cleanup does the rest: FailedJobRegistry,
    the failure callback and, above all, the dependents (run_after) of those tasks, which run at once and end ABORT
    instead of waiting.
    """
    registry = StartedJobRegistry(queue_name, connection=connection)
    executions = [
        Execution(execution_id, job_id, connection)
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False)
        if job_id in job_ids
    ]
    if executions:
        with connection.pipeline() as pipe:
            for execution in executions:
                registry.add_execution(execution, pipe, ttl=0, xx=True)  # expires now
            pipe.execute()
        registry.cleanup()
