"""Records as a Redis hash holds them: every field a string, read back as its kind's type."""

from __future__ import annotations

from typing import Any

from wsexec.store.records import INSTANCE, TASK
from wsexec.store.states import TaskState


def as_redis_answers(encoded: dict[str, str | None]) -> dict[bytes, bytes]:
    """What HGETALL gives back for what encode() wrote (None fields were removed, not written)."""
    return {name.encode(): value.encode() for name, value in encoded.items() if value is not None}


def test_a_task_round_trips_with_its_types() -> None:
    task: dict[str, Any] = {"id": 7, "instance": 2, "name": "nightly", "state": TaskState.DONE, "rc": -1,
                            "start": 1893456000.25, "end": 1893456001.0, "run_after": [3, 5], "stdout": "héllo ✓"}
    encoded = TASK.encode(task)
    assert all(isinstance(value, str) for value in encoded.values())
    assert encoded["state"] == "DONE" and encoded["run_after"] == "[3,5]"
    assert TASK.decode(as_redis_answers(encoded)) == {**task, "state": "DONE"}


def test_floats_keep_every_digit() -> None:
    start = 1893456000.123456
    assert TASK.decode(as_redis_answers(TASK.encode({"start": start})))["start"] == start


def test_none_means_remove_the_field() -> None:
    encoded = TASK.encode({"rc": None, "error": None, "name": "x"})
    assert encoded == {"rc": None, "error": None, "name": "x"}
    assert TASK.decode(as_redis_answers(encoded)) == {"name": "x"}


def test_an_instance_keeps_its_facts_as_a_dict() -> None:
    instance = {"id": 1, "ip": "10.0.0.1", "port": 22, "facts": {"os": "debian", "cpus": 2}, "facts_at": 5.5}
    assert INSTANCE.decode(as_redis_answers(INSTANCE.encode(instance))) == instance


def test_each_kind_has_its_own_keys() -> None:
    assert TASK.key(7) == "wsexec:task:7" and INSTANCE.key(7) == "wsexec:instance:7"
    assert TASK.index_key("state", TaskState.INIT) != INSTANCE.index_key("state", "INIT")
    assert TASK.index_key("state", TaskState.INIT).startswith(TASK.index_prefix)
