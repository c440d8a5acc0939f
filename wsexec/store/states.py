"""The states a task or an instance can be in, as stored (and as the API shows them)."""

from __future__ import annotations

from enum import Enum


class TaskState(str, Enum):
    INIT = "INIT"
    CURRENT = "CURRENT"
    DONE = "DONE"
    ABORT = "ABORT"


class InstanceState(str, Enum):
    ACTIVE = "ACTIVE"
    DEACTIVATE = "DEACTIVATE"


RUNNING_STATES = (TaskState.INIT, TaskState.CURRENT)
FINISHED_STATES = (TaskState.DONE, TaskState.ABORT)
STREAMS = ("stdout", "stderr")
