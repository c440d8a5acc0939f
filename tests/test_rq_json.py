"""RQ's jobs are JSON in Redis, not pickles: writing to Redis must not mean running code in every worker."""

from __future__ import annotations

import json
import pickle
import zlib
from typing import Any

from redis import Redis
from rq.job import Job

from tests.helpers import Api, wait_finished


def test_a_stored_job_holds_json_and_the_worker_runs_it(api: Api, instance: dict[str, Any], redis: Redis,
                                                         workers: Any) -> None:
    task = api.create_task(instance, "echo from json")
    data = zlib.decompress(redis.hget(Job.key_for(task["job"]), "data"))  # RQ stores the call compressed
    assert data[:1] != pickle.PROTO  # the opcode every pickle since protocol 2 starts with
    assert json.loads(data) == ["workers.job.run_tasks", None, [[task["id"]]], {}]  # function, instance, args, kwargs
    workers.start(1)
    assert wait_finished(api, task["id"])["stdout"] == "from json\n"
