"""The layout of the stored data, versioned by wsexec:schema: a worker starting on data an older version wrote
brings it up to date (in batches, each atomic, idempotent) and only then marks it, and the lists use what a layout
adds only once the mark says it is complete, so an upgraded deployment lists old tasks right from the start."""

from __future__ import annotations

import json
import logging

from redis import Redis

from wsexec.store import bookkeeping_scripts, keys
from wsexec.store.records import TASK, TASK_COMPOSITES
from wsexec.store.scripts import LAYOUT

log = logging.getLogger(__name__)

# 1 (or no mark): indexes of single fields; 2: also the composite indexes of state with another field (TASK_COMPOSITES)
CURRENT = LAYOUT
BATCH = 1000


class Layout:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._backfill = redis.register_script(bookkeeping_scripts.BACKFILL_INDEXES)
        self._current = False

    def current(self) -> bool:
        """Whether the data has everything the current layout has (once so, always: this version writes it so).

        Data no task was ever written to is current as it is (every task this version writes is indexed fully; the
        first tasks stored mark it so too: scripts.CREATE_TASKS).
        """
        if not self._current:
            schema, counter = self.redis.mget(keys.SCHEMA, TASK.counter_key)
            self._current = int(schema or 1) >= CURRENT or counter is None  # a read writes nothing (Redis may be full)
        return self._current

    def upgrade(self) -> int:
        """Bring data of an older layout up to date, then mark it (workers at start; any number at once); how many
        tasks it indexed again."""
        if self.current():
            return 0
        last, done = "0", 0
        while True:
            seen, last = self._backfill(keys=[TASK.all_key], args=[
                TASK.key(""), TASK.index_prefix, json.dumps(TASK_COMPOSITES), last, BATCH])
            done += seen
            if seen < BATCH:
                break
        self.redis.set(keys.SCHEMA, CURRENT)
        self._current = True
        log.warning("data upgraded to layout %s: %s tasks added to the composite indexes", CURRENT, done)
        return done
