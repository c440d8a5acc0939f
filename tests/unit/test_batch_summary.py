"""GET /wsexec/batches/{id}'s answer from its tasks: counts per state, finished or not, each instance's rc."""

from __future__ import annotations

from typing import Any

from wsexec.batches import summary


def task(task_id: int, instance: int, state: str, rc: int | None = None) -> dict[str, Any]:
    return {"id": task_id, "instance": instance, "state": state, **({} if rc is None else {"rc": rc})}


def test_a_batch_still_running_is_not_finished_and_every_state_is_counted() -> None:
    answer = summary("b-1", [task(1, 10, "DONE", 0), task(2, 11, "CURRENT"), task(3, 12, "INIT")])
    assert answer == {
        "id": "b-1",
        "total": 3,
        "finished": False,
        "states": {"INIT": 1, "CURRENT": 1, "DONE": 1, "ABORT": 0},
        "rc": {"10": 0, "11": None, "12": None},
        "tasks": [1, 2, 3],
    }


def test_done_and_aborted_tasks_make_a_finished_batch() -> None:
    answer = summary("b-2", [task(4, 10, "DONE", 3), task(5, 11, "ABORT")])
    assert answer["finished"] is True
    assert answer["rc"] == {"10": 3, "11": None}
    assert sum(answer["states"].values()) == answer["total"] == 2


def test_an_empty_batch_is_finished() -> None:
    assert summary("b-3", [])["finished"] is True
