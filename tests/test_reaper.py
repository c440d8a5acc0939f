"""The reaper's round costs the same however many tasks the workers hold: it looks up only the leases past their
deadline (a sorted set by Redis's clock), and still reaps only what the reap script finds held, unleased, silent."""

from __future__ import annotations

from typing import Any

from redis import Redis

from tests.helpers import Api, task_body, wait_for
from wsexec.store import Store, TaskState, keys


def commands(admin: Redis) -> dict[str, int]:
    """Calls per command since the last reset, without those of the looking."""
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()
            if not name.startswith(("cmdstat_config", "cmdstat_info"))}


def test_a_round_looks_only_at_leases_past_their_deadline(api: Api, instance: dict[str, Any], store: Store,
                                                          redis_server: Any) -> None:
    ids = [task["id"] for task in api.created("/tasks", [task_body(instance)] * 300)]
    busy, lost = ids[:-2], ids[-2:]
    assert store.hold(busy, "busy-worker", 60) == busy
    assert store.hold(lost, "gone-worker", 1) == lost  # its worker dies now: no renewal, no heartbeat
    wait_for(lambda: store.lost_tasks() == lost, timeout=10)
    admin = Redis.from_url(redis_server.url)
    admin.config_resetstat()
    assert store.lost_tasks() == lost
    calls = commands(admin)
    assert calls.get("evalsha") == 1 and sum(calls.values()) <= 3 + 3 * len(lost), calls  # not per held task
    assert store.reap_lost(lost) == lost
    assert [t["state"] for t in store.get_tasks(lost)] == ["ABORT", "ABORT"]
    assert store.lost_tasks() == [] and store.reap_lost(busy[:5]) == []  # live leases: never reaped


def test_renewing_moves_the_deadline_of_held_tasks_only(api: Api, instance: dict[str, Any], store: Store,
                                                        redis: Redis) -> None:
    held, ended = (task["id"] for task in api.created("/tasks", [task_body(instance)] * 2))
    assert store.hold([held, ended], "w", 5) == [held, ended]
    first = redis.zscore(keys.HELD, held)
    assert store.finish(ended, TaskState.DONE, rc=0)
    store.renew_leases([held, ended], "w", 600)
    now = float(redis.time()[0])
    assert first is not None and now + 590 <= redis.zscore(keys.HELD, held) <= now + 600
    assert redis.zscore(keys.HELD, ended) is None  # finished: renewing does not make it held again


def test_held_tasks_an_older_version_scored_by_id_are_not_taken_for_lost(
        api: Api, instance: dict[str, Any], store: Store, redis: Redis) -> None:
    """Before the deadlines the held set was scored by task id: such an entry is a candidate at once, and the reap
    checks keep it as long as its lease lives; its holder's next renewal gives it its deadline."""
    (task,) = api.created("/tasks", [task_body(instance)])
    assert store.hold([task["id"]], "w", 60) == [task["id"]]
    redis.zadd(keys.HELD, {str(task["id"]): task["id"]})
    assert store.lost_tasks() == [] and store.reap_lost([task["id"]]) == []
    store.renew_leases([task["id"]], "w", 60)
    assert redis.zscore(keys.HELD, task["id"]) > float(redis.time()[0])
