"""The layout of the stored data, versioned by wsexec:schema: a worker starting on data an older version wrote
brings it up to date (in batches, each atomic, idempotent) and only then marks it, and the lists use what a layout
adds only once the mark says it is complete, so an upgraded deployment lists old tasks right from the start. Until
then this version also writes the indexes the older layout reads (records.TASK_LEGACY_INDEXED).

1 (or no mark): indexes of single fields. 2: also the composite indexes of state with another field
(records.TASK_COMPOSITES). 3: no index of their own for the fields of records.UNION_ONLY, nor for created_by (the
quotas read records.RUNNING_BY): ~400 bytes a stored task less.
"""

from __future__ import annotations

import json
import logging

from redis import Redis

from wsexec.store import index_scripts, keys
from wsexec.store.records import RUNNING_BY, TASK, TASK_COMPOSITES, UNION_ONLY
from wsexec.store.scripts import LAYOUT

log = logging.getLogger(__name__)

CURRENT = LAYOUT
BATCH = 1000
DROPPED = (*UNION_ONLY, "created_by")  # the single-field indexes layout 3 no longer has


class Layout:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._backfill = redis.register_script(index_scripts.BACKFILL_INDEXES)
        self._current = False

    def version(self) -> int:
        """The data's layout (once current, always: this version writes it so).

        Data no task was ever written to is current as it is (every task this version writes is indexed fully; the
        first tasks stored mark it so too: scripts.CREATE_TASKS).
        """
        if self._current:
            return CURRENT
        schema, counter = self.redis.mget(keys.SCHEMA, TASK.counter_key)  # a read writes nothing (Redis may be full)
        version = CURRENT if counter is None else int(schema or 1)
        self._current = version >= CURRENT
        return version

    def current(self) -> bool:
        """Whether the data has everything the current layout has."""
        return self.version() >= CURRENT

    def upgrade(self) -> int:
        """Bring data of an older layout up to date, mark it, then drop the indexes it no longer reads (workers at
        start; any number at once); how many tasks it indexed again."""
        version = self.version()
        if version >= CURRENT:
            return 0
        fields = [*(TASK_COMPOSITES if version < 2 else ()), RUNNING_BY]
        last, done = "0", 0
        while True:
            seen, last = self._backfill(keys=[TASK.all_key], args=[
                TASK.key(""), TASK.index_prefix, json.dumps(fields), last, BATCH])
            done += seen
            if seen < BATCH:
                break
        self.redis.set(keys.SCHEMA, CURRENT)
        self._current = True
        for field in DROPPED:
            found = list(self.redis.scan_iter(match=f"{TASK.index_prefix}{field}:*", count=1000))
            for first in range(0, len(found), BATCH):
                self.redis.unlink(*found[first:first + BATCH])
        log.warning("data upgraded to layout %s: %s tasks indexed again", CURRENT, done)
        return done
