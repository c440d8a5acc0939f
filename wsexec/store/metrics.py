"""Metrics counted in Redis, so every worker process and machine adds to the same numbers."""

from __future__ import annotations

import math
from typing import cast

from redis import Redis
from redis.client import Pipeline

from wsexec.store import keys
from wsexec.store.records import TASK, Records, encode_value
from wsexec.store.states import TaskState

RUN_TIME_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, math.inf)  # seconds


def run_time_bucket(seconds: float) -> str:
    """The histogram field a run time counts in: the smallest bound it does not exceed."""
    return f"{next(b for b in RUN_TIME_BUCKETS if seconds <= b):g}"


def run_time_args(state: TaskState | str, seconds: float) -> list[str]:
    """What scripts.TRANSITION takes to count a run time as it finishes the task (ARGV[11..13])."""
    return [keys.run_seconds(encode_value(state)), run_time_bucket(seconds), repr(seconds)]


class Metrics:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.tasks = Records(redis, TASK)

    def task_counts(self) -> dict[str, int]:
        states = [s.value for s in TaskState]
        return dict(zip(states, self.tasks.count_by("state", states), strict=True))

    def observe_run_time(self, state: TaskState | str, seconds: float, pipeline: Pipeline | None = None) -> None:
        """Count a finished task's run time in its histogram bucket (the smallest bound it does not exceed)."""
        key = keys.run_seconds(encode_value(state))
        pipe = pipeline if pipeline is not None else self.redis.pipeline(transaction=False)
        pipe.hincrby(key, run_time_bucket(seconds), 1)
        pipe.hincrbyfloat(key, "sum", seconds)
        if pipeline is None:
            pipe.execute()

    def run_times(self, state: TaskState) -> tuple[list[int], float]:
        """Per-bucket counts (not cumulative) in RUN_TIME_BUCKETS order, and the sum of the run times."""
        stored = cast(dict[bytes, bytes], self.redis.hgetall(keys.run_seconds(encode_value(state))))
        raw = {k.decode(): v for k, v in stored.items()}
        return [int(raw.get(f"{b:g}", 0)) for b in RUN_TIME_BUCKETS], float(raw.get("sum", 0))

    def count_ssh_failure(self, reason: str, pipeline: Pipeline | None = None) -> None:
        (pipeline if pipeline is not None else self.redis).hincrby(keys.SSH_FAILURES, reason, 1)

    def ssh_failures(self) -> dict[str, int]:
        stored = cast(dict[bytes, bytes], self.redis.hgetall(keys.SSH_FAILURES))
        return {k.decode(): int(v) for k, v in stored.items()}
