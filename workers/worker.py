"""The RQ worker class wsexec runs: SimpleWorker, so jobs run in the worker process itself.

RQ's default Worker forks a work horse per job, which would throw the SSH pool away after every task (and pay
a fork per task). SimpleWorker keeps RQ's queues, registries, job timeouts and `rq info`; what it loses is the
horse that RQ could kill, which wsexec does not need: a task is stopped by killing its remote process, and a
worker killed outright is detected by its task leases (LeaseKeeper) and RQ's started-job registry.
"""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker

from workers.job import LeaseKeeper, Runtime, install_runtime
from wsexec.config import Settings


class TaskWorker(SimpleWorker):
    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runtime = Runtime.create(settings or Settings.from_env(), self.connection)
        self.runtime.name = self.name
        install_runtime(self.runtime)
        self.lease_keeper = LeaseKeeper(self.runtime)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        self.lease_keeper.start()
        try:
            self.runtime.store.reap_lost()
            return super().work(*args, **kwargs)
        finally:
            self.lease_keeper.stopping.set()
            self.runtime.pool.close()
