"""The lighter RQ job path (workers/worker.py) keeps what RQ shows: a running job is in the started registry with
its execution and its slot busy, and once it has ended nothing of it is left. And the benchmark's RQ floor
(bench/rq_floor.py) really runs its no-op jobs through both worker classes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from redis import Redis
from rq import Worker
from rq.executions import ExecutionRegistry

from bench.rq_floor import CLASSES, RqFloor
from tests.helpers import Api, wait_finished, wait_for
from wsexec.config import Settings
from wsexec.jobs import make_queue


def test_a_running_job_is_shown_by_rq_and_gone_once_done(api: Api, instance: dict[str, Any], workers: Any,
                                                         settings: Settings, redis_server: Any) -> None:
    admin = Redis.from_url(redis_server.url)
    queue = make_queue(admin, settings.queue)
    workers.start(1)
    task = api.create_task(instance, "sleep 1.5")
    wait_for(lambda: api.get(f"/tasks/{task['id']}").json["state"] == "CURRENT")
    assert wait_for(lambda: task["job"] in queue.started_job_registry.get_job_ids())
    busy = [worker for worker in Worker.all(queue=queue) if worker.get_current_job_id() == task["job"]]
    assert len(busy) == 1 and busy[0].get_state() == "busy"
    assert len(ExecutionRegistry(task["job"], admin).get_execution_ids()) == 1
    assert wait_finished(api, task["id"])["state"] == "DONE"
    wait_for(lambda: not queue.started_job_registry.get_job_ids())
    assert not admin.exists(f"rq:job:{task['job']}", ExecutionRegistry(task["job"], admin).key)
    assert not list(admin.scan_iter(match=f"rq:execution:{task['job']}:*"))
    slot = busy[0]
    wait_for(lambda: slot.refresh() or slot.get_state() == "idle")
    assert not slot.get_current_executions(refresh=True)


class _NoCgroups:
    def join(self, component: str) -> None:
        """The floor's workers stay in our cgroup: only the benchmark counts CPU per component."""


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_the_rq_floor_runs_its_no_op_jobs(name: str, redis_server: Any, tmp_path: Path) -> None:
    Redis.from_url(redis_server.url).flushall()
    lab = SimpleNamespace(redis=redis_server, workdir=tmp_path)
    floor = RqFloor(name, lab, 1, _NoCgroups())  # type: ignore[arg-type]
    try:
        assert floor.sequential(None, 3, True) > 0  # type: ignore[arg-type]  # each waited for its notification
        assert floor.bulk(None, 7) > 0  # type: ignore[arg-type]
        assert floor.queue.count == 0
        wait_for(lambda: not floor.queue.started_job_registry.get_job_ids())  # RQ's end follows the notification
        assert not floor.queue.failed_job_registry.get_job_ids()  # the jobs ran, none failed
    finally:
        floor.close()
