"""The scale benchmark's fast path: finished tasks written at once, as the API and a worker would have left them.

The real path (bench/scale_data.py: CREATE_TASKS, a worker's claim, its finish) costs Redis ~250 us a task, so a
million took 17-29 minutes on a shared machine. Here each task is one HSET of the fields it ends with, its index
entries (the store's own index_value over TASK.indexed, so every single and composite index is the one the scripts
keep), its entry in the finished zset, its expiry and a 'finished' event, in scripts of CHUNK tasks: what the real
scripts would have written, minus the steps that leave nothing behind (the lease, the INIT index entries they move
out of). tests/test_bench_scale.py proves it: the same records through both paths give the same keys, fields,
indexes, encodings and expiries.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from redis import Redis

from wsexec.jobs import JOB_PREFIX
from wsexec.store import Store, TaskState, keys
from wsexec.store.records import TASK
from wsexec.store.scripts import _EMIT, _INDEX_VALUE, WRITES

CHUNK = 1000  # tasks per script call
PIPELINE = 5  # calls per round trip
WORKER = "bench-host.4242"  # a worker's name (host.pid) and its process's holder mark, as workers/job.py makes them
HOLDER = f"{WORKER}/{uuid.uuid4().hex[:12]}"

BULK_FINISHED = WRITES + """
-- Store finished tasks under ids already taken from the counter, with their indexes, finished entry, expiry and event.
-- KEYS[1] the events stream, KEYS[2] the finished zset
-- ARGV[1] record key prefix, ARGV[2] index prefix, ARGV[3] JSON list of indexed fields, ARGV[4] JSON list of
-- [id, end, flat field/value list], ARGV[5] seconds before Redis expires a finished task, ARGV[6] events window
local record_prefix, prefix = ARGV[1], ARGV[2]
local indexed, tasks, expire = cjson.decode(ARGV[3]), cjson.decode(ARGV[4]), ARGV[5]
""" + _INDEX_VALUE + _EMIT + """
for _, t in ipairs(tasks) do
  local id, ended, flat = t[1], t[2], t[3]
  local hash = record_prefix .. id
  redis.call('HSET', hash, unpack(flat))
  local r = {}
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  redis.call('ZADD', prefix .. 'all', id, id)
  for _, f in ipairs(indexed) do
    local v = index_value(f, function(field) return r[field] or false end)
    if v then redis.call('ZADD', prefix .. f .. ':' .. v, id, id) end
  end
  redis.call('ZADD', KEYS[2], ended, id)
  redis.call('EXPIRE', hash, expire)
  emit(KEYS[1], ARGV[6], 'finished', id, hash)
end
return #tasks
"""


def ended(record: dict[str, Any], task_id: int, job: int, now: float, outcome: dict[str, Any]) -> dict[str, Any]:
    """A record as POSTed, as it is once CREATE_TASKS, a worker's claim and its finish have written it: outcome the
    finish's fields (state, end, rc or error, the dropped counts; None removes a field). The claim's mark and holder
    are gone with its end, as its env (Tasks.transition)."""
    created = {**record, "state": TaskState.INIT, "created_at": now, "id": task_id, "job": f"{JOB_PREFIX}{job}"}
    claimed = {"state": TaskState.CURRENT, "start": now, "worker": WORKER}
    final = {**created, **claimed, **outcome, "env": None}
    return {name: value for name, value in final.items() if value is not None}


def write(store: Store, posts: list[list[dict[str, Any]]], outcomes: list[dict[str, Any]], now: float) -> list[int]:
    """Store the POSTs' tasks finished with these outcomes (one per task, in order); their ids."""
    redis: Redis = store.tasks.records.redis
    count = sum(len(post) for post in posts)
    last = int(redis.incrby(TASK.counter_key, count))
    next_id, ids, finished = last - count + 1, [], []
    for post in posts:  # one job for a POST's tasks (they are fewer than a job's tasks_per_job)
        job = next_id
        for record in post:
            outcome = outcomes[len(ids)]
            encoded = TASK.encode(ended(record, next_id, job, now, outcome))
            flat = [item for pair in encoded.items() for item in pair]
            finished.append([next_id, repr(outcome["end"]), flat])
            ids.append(next_id)
            next_id += 1
    script = redis.register_script(BULK_FINISHED)
    indexed = json.dumps(TASK.indexed)
    for first in range(0, len(finished), CHUNK * PIPELINE):
        with redis.pipeline(transaction=False) as pipe:
            for start in range(first, min(first + CHUNK * PIPELINE, len(finished)), CHUNK):
                script(keys=[keys.EVENTS, keys.FINISHED], client=pipe, args=[
                    TASK.key(""), TASK.index_prefix, indexed, json.dumps(finished[start:start + CHUNK]),
                    store.tasks.expire_seconds, store.tasks.events_window])
            pipe.execute()
    return ids
