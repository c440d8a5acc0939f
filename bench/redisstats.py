"""Redis commands and round trips per command, from INFO deltas around each run (whoever sent them).

`commands` counts what Redis executed, the commands a Lua script runs included (commandstats); `round trips` counts
the reads Redis did from its clients (total_reads_processed): one per request or pipeline, which is what a client
waits for. The INFO calls themselves add two of each per run.
"""

from __future__ import annotations

from typing import Any

from redis import Redis


class RedisStats:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def usage(self) -> dict[str, Any]:
        calls = {name.removeprefix("cmdstat_"): int(stat["calls"])
                 for name, stat in self.redis.info("commandstats").items()}
        return {"reads": int(self.redis.info("stats")["total_reads_processed"]), "calls": calls}

    @staticmethod
    def spent(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """What a run cost: round trips, commands, and the commands by name (most first)."""
        calls = {name: count - before["calls"].get(name, 0) for name, count in after["calls"].items()}
        calls = dict(sorted(((n, c) for n, c in calls.items() if c), key=lambda item: -item[1]))
        return {"round_trips": after["reads"] - before["reads"], "commands": sum(calls.values()), "by_command": calls}
