"""All Redis access: key names, (de)serialization, sorted-set indexes and the Lua scripts that keep them atomic.

Shared by the web app and the workers, so it imports nothing from Flask.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

from wsexec.exceptions import Conflict, NotFound, Unprocessable

PREFIX = "wsexec:"
HELD_KEY = f"{PREFIX}tasks:held"  # tasks a worker has taken and not finished: what the reaper watches
FINISHED_KEY = f"{PREFIX}tasks:finished"  # finished tasks scored by end time: what the retention sweep reads
AUDIT_KEY = f"{PREFIX}audit"  # a list of JSON entries, newest first
SSH_FAILURES_KEY = f"{PREFIX}metrics:ssh_failures"  # reason -> count
EXPIRY_GRACE_SECONDS = 3600  # Redis's own expiry of a finished task: a backstop, this long after the sweep's turn
PURGE_BATCH = 500
RUN_TIME_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, math.inf)  # seconds


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


@dataclass(frozen=True)
class Kind:
    """One kind of record: a hash per id, a counter, and sorted-set indexes scored by id (newest = highest)."""

    name: str
    indexed: tuple[str, ...]
    ints: frozenset[str]
    floats: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()
    dicts: frozenset[str] = frozenset()

    def key(self, record_id: int | str) -> str:
        return f"{PREFIX}{self.name}:{record_id}"

    @property
    def counter_key(self) -> str:
        return f"{PREFIX}{self.name}:next_id"

    @property
    def index_prefix(self) -> str:
        return f"{PREFIX}{self.name}s:"

    @property
    def all_key(self) -> str:
        return f"{self.index_prefix}all"

    def index_key(self, field: str, value: Any) -> str:
        return f"{self.index_prefix}{field}:{encode_value(value)}"

    def encode(self, record: dict[str, Any]) -> dict[str, str | None]:
        """Flatten to the strings a Redis hash holds; None means "remove the field"."""
        return {name: None if value is None else encode_value(value) for name, value in record.items()}

    def decode(self, raw: dict[bytes, bytes]) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for name_bytes, value_bytes in raw.items():
            name, value = name_bytes.decode(), value_bytes.decode()
            if name in self.ints:
                record[name] = int(value)
            elif name in self.floats:
                record[name] = float(value)
            elif name in self.lists or name in self.dicts:
                record[name] = json.loads(value)
            else:
                record[name] = value
        return record


def encode_value(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    return str(value)


TASK = Kind(
    "task",
    indexed=("state", "instance", "tag", "name", "batch"),
    ints=frozenset({"id", "instance", "rc", "timeout", "stdout_dropped", "stderr_dropped"}),
    floats=frozenset({"created_at", "start", "end", "scheduled_at"}),
    lists=frozenset({"run_after"}),
)
INSTANCE = Kind(
    "instance",
    indexed=("state", "tag"),
    ints=frozenset({"id", "port"}),
    floats=frozenset({"facts_at"}),
    dicts=frozenset({"facts"}),
)

# Both scripts below start here: the record must exist and be in one of the allowed states (none given: any).
RECORD_STATE_CHECK = """
if redis.call('EXISTS', hash) == 0 then return {'missing', ''} end
local state = redis.call('HGET', hash, 'state') or ''
if #allowed > 0 then
  local ok = false
  for _, s in ipairs(allowed) do if s == state then ok = true end end
  if not ok then return {'state', state} end
end
"""

# Atomic update of one record: optional state precondition, index moves for indexed fields, and the task's
# lease: "hold:<ttl>:<owner>" (a worker has it), "release" (it is finished), "reap" (only if the lease expired).
UPDATE_LUA = """
local hash, lease_key, held_key = KEYS[1], KEYS[2], KEYS[3]
local id, prefix = ARGV[1], ARGV[2]
local indexed, allowed, changes, lease_op = cjson.decode(ARGV[3]), cjson.decode(ARGV[4]), cjson.decode(ARGV[5]), ARGV[6]
""" + RECORD_STATE_CHECK + """
if lease_op == 'reap' and redis.call('EXISTS', lease_key) == 1 then return {'leased', state} end
local is_indexed = {}
for _, f in ipairs(indexed) do is_indexed[f] = true end
for f, v in pairs(changes) do
  if is_indexed[f] then
    local old = redis.call('HGET', hash, f)
    if old then redis.call('ZREM', prefix .. f .. ':' .. old, id) end
    if v ~= cjson.null then redis.call('ZADD', prefix .. f .. ':' .. v, id, id) end
  end
  if v == cjson.null then redis.call('HDEL', hash, f) else redis.call('HSET', hash, f, v) end
end
if string.sub(lease_op, 1, 5) == 'hold:' then
  local ttl, owner = string.match(lease_op, 'hold:(%d+):(.*)')
  redis.call('SET', lease_key, owner, 'EX', ttl)
  redis.call('ZADD', held_key, id, id)
elseif lease_op == 'release' or lease_op == 'reap' then
  redis.call('DEL', lease_key)
  redis.call('ZREM', held_key, id)
  -- finished: the retention sweep finds it by its end time; EXPIRE (ARGV[7] s) is the backstop if no sweep runs
  redis.call('ZADD', KEYS[4], changes['end'] or redis.call('TIME')[1], id)
  for _, k in ipairs({hash, KEYS[5], KEYS[6]}) do redis.call('EXPIRE', k, ARGV[7]) end
end
return {'ok', state}
"""

# Create several records at once, all or nothing; tasks first check that their instance is ACTIVE.
CREATE_LUA = """
local counter, record_prefix, index_prefix = KEYS[1], ARGV[1], ARGV[2]
local indexed, records, instance_prefix = cjson.decode(ARGV[3]), cjson.decode(ARGV[4]), ARGV[5]
if instance_prefix ~= '' then
  for i, r in ipairs(records) do
    local state = redis.call('HGET', instance_prefix .. r['instance'], 'state')
    if not state then return {'instance', i - 1, 'missing'} end
    if state ~= 'ACTIVE' then return {'instance', i - 1, state} end
  end
end
local ids = {}
for _, r in ipairs(records) do
  local id = redis.call('INCR', counter)
  r['id'] = tostring(id)
  for f, v in pairs(r) do redis.call('HSET', record_prefix .. id, f, v) end
  redis.call('ZADD', index_prefix .. 'all', id, id)
  for _, f in ipairs(indexed) do
    if r[f] then redis.call('ZADD', index_prefix .. f .. ':' .. r[f], id, id) end
  end
  table.insert(ids, id)
end
return {'ok', ids}
"""

# Delete one record and its index entries, if its state allows and no busy index intersects (KEYS[3..]).
DELETE_LUA = """
local hash = KEYS[1]
local id, prefix, indexed, allowed = ARGV[1], ARGV[2], cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
""" + RECORD_STATE_CHECK + """
for i = 4, #KEYS do
  if redis.call('ZINTERCARD', 2, KEYS[3], KEYS[i], 'LIMIT', 1) > 0 then return {'busy', state} end
end
for _, f in ipairs(indexed) do
  local v = redis.call('HGET', hash, f)
  if v then redis.call('ZREM', prefix .. f .. ':' .. v, id) end
end
redis.call('ZREM', prefix .. 'all', id)
redis.call('DEL', hash, KEYS[2])
for _, k in ipairs(cjson.decode(ARGV[5])) do redis.call('DEL', k) end
return {'ok', state}
"""

# Delete finished tasks that ended before ARGV[1] (KEYS[1]: the finished zset) with their index entries and
# sub-keys; returns how many it looked at and the ids whose hash had already expired (their indexes are unknown).
PURGE_LUA = """
local finished, cutoff, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
local record_prefix, index_prefix = ARGV[3], ARGV[4]
local indexed, suffixes = cjson.decode(ARGV[5]), cjson.decode(ARGV[6])
local ids = redis.call('ZRANGEBYSCORE', finished, '-inf', cutoff, 'LIMIT', 0, limit)
local gone = {}
for _, id in ipairs(ids) do
  local hash = record_prefix .. id
  if redis.call('EXISTS', hash) == 1 then
    for _, f in ipairs(indexed) do
      local v = redis.call('HGET', hash, f)
      if v then redis.call('ZREM', index_prefix .. f .. ':' .. v, id) end
    end
  else
    table.insert(gone, id)
  end
  redis.call('ZREM', index_prefix .. 'all', id)
  redis.call('ZREM', finished, id)
  redis.call('DEL', hash)
  for _, suffix in ipairs(suffixes) do redis.call('DEL', hash .. suffix) end
end
return {#ids, gone}
"""

# The first request with an idempotency key stores ARGV[1] (pending) and gets nil; later ones get what is stored.
IDEMPOTENCY_BEGIN_LUA = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""

# Append output, never past the cap (the worker counts what it dropped; this is the store's own bound).
# ARGV[3] is where the chunk starts: a call retried after a lost reply (Redis restarting) must not append twice.
APPEND_LUA = """
local length = redis.call('STRLEN', KEYS[1])
if length > tonumber(ARGV[3]) then return 0 end
local room = tonumber(ARGV[1]) - length
if room > 0 then redis.call('APPEND', KEYS[1], string.sub(ARGV[2], 1, room)) end
return room
"""


def connect(url: str, retries: int = 40) -> Redis:
    """A client that rides out a Redis restart (40 retries: about 30 s) instead of failing a task or a worker."""
    return Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
        retry_on_error=[ConnectionError, TimeoutError],
        health_check_interval=10,
    )


class Store:
    """The wsexec data model on top of one Redis connection."""

    def __init__(self, redis: Redis, output_cap: int = 1024 * 1024, retention_seconds: float = 30 * 86400) -> None:
        self.redis = redis
        self.output_cap = output_cap
        self.retention_seconds = retention_seconds
        self._update = redis.register_script(UPDATE_LUA)
        self._create = redis.register_script(CREATE_LUA)
        self._delete = redis.register_script(DELETE_LUA)
        self._append = redis.register_script(APPEND_LUA)
        self._purge = redis.register_script(PURGE_LUA)
        self._idempotency_begin = redis.register_script(IDEMPOTENCY_BEGIN_LUA)

    # -- generic record operations -------------------------------------------------------------------

    def _get(self, kind: Kind, record_id: int) -> dict[str, Any]:
        raw = self.redis.hgetall(kind.key(record_id))
        if not raw:
            raise NotFound(f"{kind.name} {record_id} not found")
        return kind.decode(raw)

    def _get_many(self, kind: Kind, ids: Iterable[int | bytes]) -> list[dict[str, Any]]:
        with self.redis.pipeline(transaction=False) as pipe:
            for record_id in ids:
                pipe.hgetall(kind.key(int(record_id)))
            return [kind.decode(raw) for raw in pipe.execute() if raw]

    def _create_records(self, kind: Kind, records: list[dict[str, Any]], check_instance: bool) -> list[int]:
        encoded = [{k: v for k, v in kind.encode(r).items() if v is not None} for r in records]
        outcome = self._create(
            keys=[kind.counter_key],
            args=[
                kind.key(""),
                kind.index_prefix,
                json.dumps(kind.indexed),
                json.dumps(encoded),
                INSTANCE.key("") if check_instance else "",
            ],
        )
        if outcome[0] == b"instance":
            index, reason = outcome[1], outcome[2].decode()
            where = f"item {index}: " if len(records) > 1 else ""
            instance = records[index]["instance"]
            if reason == "missing":
                raise Unprocessable(f"{where}instance {instance} does not exist", {"instance": [f"unknown {instance}"]})
            raise Conflict(f"{where}instance {instance} is {reason}, not ACTIVE")
        return [int(i) for i in outcome[1]]

    def _update_record(
        self,
        kind: Kind,
        record_id: int,
        changes: dict[str, Any],
        allowed: Iterable[TaskState | InstanceState] = (),
        lease_op: str = "",
        pipe: Pipeline | None = None,
    ) -> tuple[str, str]:
        """Run UPDATE_LUA on one record; in a pipeline the outcome comes from pipe.execute() instead."""
        outcome = self._update(
            keys=[kind.key(record_id), self.lease_key(record_id), HELD_KEY, FINISHED_KEY]
            + [self.output_key(record_id, s) for s in STREAMS],
            args=[
                record_id,
                kind.index_prefix,
                json.dumps(kind.indexed),
                json.dumps([s.value for s in allowed]),
                json.dumps(kind.encode(changes)),
                lease_op,
                math.ceil(self.retention_seconds) + EXPIRY_GRACE_SECONDS,
            ],
            client=pipe,
        )
        if pipe is not None:
            return "", ""
        status, state = outcome
        if status == b"missing":
            raise NotFound(f"{kind.name} {record_id} not found")
        return status.decode(), state.decode()

    def _delete_record(
        self, kind: Kind, record_id: int, allowed: Iterable[TaskState] = (), busy: list[str] | None = None,
        extra_keys: list[str] | None = None,
    ) -> tuple[str, str]:
        status, state = self._delete(
            keys=[kind.key(record_id), self.lease_key(record_id) if kind is TASK else kind.key(record_id)]
            + (busy or []),
            args=[
                record_id,
                kind.index_prefix,
                json.dumps(kind.indexed),
                json.dumps([s.value for s in allowed]),
                json.dumps(extra_keys or []),
            ],
        )
        if status == b"missing":
            raise NotFound(f"{kind.name} {record_id} not found")
        return status.decode(), state.decode()

    def _list(
        self, kind: Kind, filters: dict[str, Any], page: int, page_size: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page, newest first, of the records matching every filter (an intersection of indexes)."""
        keys = [kind.index_key(f, v) for f, v in filters.items() if v is not None] or [kind.all_key]
        start, stop = (page - 1) * page_size, page * page_size - 1
        if len(keys) == 1:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(keys[0])
                pipe.zrevrange(keys[0], start, stop)
                count, ids = pipe.execute()
        else:
            tmp = f"{PREFIX}tmp:{uuid.uuid4().hex}"
            with self.redis.pipeline() as pipe:
                pipe.zinterstore(tmp, keys, aggregate="MAX")
                pipe.zrevrange(tmp, start, stop)
                pipe.delete(tmp)
                count, ids, _ = pipe.execute()
        return count, self._get_many(kind, ids)

    # -- instances ---------------------------------------------------------------------------------

    def create_instance(self, fields: dict[str, Any]) -> dict[str, Any]:
        (instance_id,) = self._create_records(INSTANCE, [fields], check_instance=False)
        return self.get_instance(instance_id)

    def get_instance(self, instance_id: int) -> dict[str, Any]:
        return self._get(INSTANCE, instance_id)

    def list_instances(self, filters: dict[str, Any], page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        return self._list(INSTANCE, filters, page, page_size)

    def active_instances_with_tag(self, tag: str) -> list[dict[str, Any]]:
        ids = self.redis.zinter([INSTANCE.index_key("tag", tag), INSTANCE.index_key("state", InstanceState.ACTIVE)])
        return self._get_many(INSTANCE, sorted(int(i) for i in ids))

    def update_instance(self, instance_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        self._update_record(INSTANCE, instance_id, changes)
        return self.get_instance(instance_id)

    def delete_instance(self, instance_id: int) -> None:
        busy = [TASK.index_key("instance", instance_id)] + [TASK.index_key("state", s) for s in RUNNING_STATES]
        status, _ = self._delete_record(INSTANCE, instance_id, busy=busy)
        if status == "busy":
            raise Conflict(f"instance {instance_id} has INIT or CURRENT tasks")

    # -- tasks -------------------------------------------------------------------------------------

    def create_tasks(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store tasks (state INIT) atomically, refusing all of them if one instance is not ACTIVE."""
        now = time.time()
        records = [{**t, "state": TaskState.INIT, "created_at": now} for t in tasks]
        ids = self._create_records(TASK, records, check_instance=True)
        return self._get_many(TASK, ids)

    def get_task(self, task_id: int) -> dict[str, Any]:
        return self._get(TASK, task_id)

    def task_exists(self, task_id: int) -> bool:
        return bool(self.redis.exists(TASK.key(task_id)))

    def get_tasks(self, task_ids: Iterable[int]) -> list[dict[str, Any]]:
        return self._get_many(TASK, task_ids)

    def list_tasks(self, filters: dict[str, Any], page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        return self._list(TASK, filters, page, page_size)

    def update_task(self, task_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        self._update_record(TASK, task_id, changes)
        return self.get_task(task_id)

    def set_jobs(self, jobs: dict[int, str]) -> None:
        """Record which RQ job runs each task (dependencies and cancel look it up)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id, job in jobs.items():
                pipe.hset(TASK.key(task_id), "job", job)
            pipe.execute()

    def delete_task(self, task_id: int) -> None:
        status, state = self._delete_record(
            TASK, task_id, allowed=FINISHED_STATES, extra_keys=[self.output_key(task_id, s) for s in STREAMS]
        )
        if status == "state":
            raise Conflict(f"task {task_id} is {state}; only DONE or ABORT tasks can be deleted")
        self.redis.zrem(FINISHED_KEY, task_id)

    def abort_queued(self, task_id: int, error: str) -> bool:
        """INIT -> ABORT; False when the task has already left INIT."""
        status, _ = self._update_record(
            TASK,
            task_id,
            {"state": TaskState.ABORT, "error": error, "end": time.time()},
            allowed=[TaskState.INIT],
            lease_op="release",
        )
        return status == "ok"

    def request_cancel(self, task_id: int, by: str) -> str:
        """Abort a queued task at once, or flag a running one for its worker; returns the state found."""
        if self.abort_queued(task_id, f"cancelled by {by}"):
            return TaskState.INIT.value
        status, state = self._update_record(TASK, task_id, {"cancel_requested": by}, allowed=[TaskState.CURRENT])
        if status != "ok":
            raise Conflict(f"task {task_id} is already {state}")
        return state

    # -- the worker side ---------------------------------------------------------------------------

    @staticmethod
    def lease_key(task_id: int | str) -> str:
        return f"{TASK.key(task_id)}:lease"

    @staticmethod
    def output_key(task_id: int | str, stream: str) -> str:
        return f"{TASK.key(task_id)}:{stream}"

    def hold(self, task_ids: list[int], worker: str, lease_seconds: int) -> list[int]:
        """Lease the still-INIT tasks of a job to this worker (one round trip), so they end ABORT if it dies."""
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                self._update_record(
                    TASK, task_id, {"worker": worker}, [TaskState.INIT], f"hold:{lease_seconds}:{worker}", pipe
                )
            outcomes = pipe.execute()
        return [task_id for task_id, (status, _) in zip(task_ids, outcomes, strict=True) if status == b"ok"]

    def claim(self, task_id: int, worker: str, lease_seconds: int) -> dict[str, Any] | None:
        """INIT -> CURRENT; None if it was cancelled or another worker took it (a task never runs twice)."""
        changes = {"state": TaskState.CURRENT, "start": time.time(), "worker": worker}
        with self.redis.pipeline() as pipe:  # the claim and the claimed record in one round trip
            self._update_record(TASK, task_id, changes, [TaskState.INIT], f"hold:{lease_seconds}:{worker}", pipe)
            pipe.hgetall(TASK.key(task_id))
            (status, _), raw = pipe.execute()
        return TASK.decode(raw) if status == b"ok" else None

    def renew_leases(self, task_ids: Iterable[int], worker: str, lease_seconds: int) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.set(self.lease_key(task_id), worker, ex=lease_seconds)
            pipe.execute()

    def finish(self, task_id: int, state: TaskState, **fields: Any) -> bool:
        """INIT/CURRENT -> DONE/ABORT with the results; False if it had already finished (e.g. reaped)."""
        status, _ = self._update_record(
            TASK, task_id, {"state": state, "end": time.time(), **fields}, allowed=RUNNING_STATES, lease_op="release"
        )
        return status == "ok"

    def cancel_requested_by(self, task_id: int) -> str | None:
        value = self.redis.hget(TASK.key(task_id), "cancel_requested")
        return value.decode() if value else None

    def reap_lost(self, task_ids: Iterable[int] | None = None) -> list[int]:
        """ABORT held tasks whose worker stopped renewing their lease (killed, machine lost); all held by default."""
        if task_ids is None:
            task_ids = [int(i) for i in self.redis.zrange(HELD_KEY, 0, -1)]
        reaped = []
        for task_id in task_ids:
            status, _ = self._update_record(
                TASK,
                task_id,
                {"state": TaskState.ABORT, "error": "worker lost", "end": time.time()},
                allowed=RUNNING_STATES,
                lease_op="reap",
            )
            if status == "ok":
                reaped.append(task_id)
            elif status == "state":
                self.redis.zrem(HELD_KEY, task_id)  # finished meanwhile: nothing to watch
        return reaped

    def append_output(self, task_id: int, stream: str, data: bytes, offset: int) -> None:
        """Append a chunk that starts at byte `offset` of the stream (so a retried call is a no-op)."""
        if data:
            self._append(keys=[self.output_key(task_id, stream)], args=[self.output_cap, data, offset])

    def read_output(self, task_id: int, stream: str, offset: int = 0) -> bytes:
        """The stored bytes of one stream from a byte offset (bounded by the cap)."""
        return self.redis.getrange(self.output_key(task_id, stream), offset, -1)

    # -- retention -----------------------------------------------------------------------------------

    def purge_expired(self, now: float | None = None) -> int:
        """Delete the tasks that finished more than the retention period ago, their output and index entries."""
        cutoff = (time.time() if now is None else now) - self.retention_seconds
        base = TASK.key("")
        suffixes = [key.removeprefix(base) for key in (self.lease_key(""), *(self.output_key("", s) for s in STREAMS))]
        purged = 0
        while True:
            seen, gone = self._purge(
                keys=[FINISHED_KEY],
                args=[repr(cutoff), PURGE_BATCH, base, TASK.index_prefix, json.dumps(TASK.indexed),
                      json.dumps(suffixes)],
            )
            if gone:
                self._unindex(gone)
            purged += seen
            if seen < PURGE_BATCH:
                return purged

    def _unindex(self, task_ids: list[bytes]) -> None:
        """Ids whose hash Redis expired before the sweep: their index values are lost, so look in every index."""
        with self.redis.pipeline(transaction=False) as pipe:
            for key in self.redis.scan_iter(match=f"{TASK.index_prefix}*", count=1000, _type="zset"):
                pipe.zrem(key, *task_ids)
            pipe.execute()

    # -- batches (tasks created together by a fan-out) -----------------------------------------------

    def batch_tasks(self, batch: str) -> list[dict[str, Any]]:
        """The tasks of a batch, oldest first; empty if it never existed or all its tasks are gone."""
        return self._get_many(TASK, self.redis.zrange(TASK.index_key("batch", batch), 0, -1))

    # -- audit log -----------------------------------------------------------------------------------

    def add_audit(self, entry: dict[str, Any], keep: int) -> None:
        with self.redis.pipeline() as pipe:
            pipe.lpush(AUDIT_KEY, json.dumps(entry, separators=(",", ":"), default=str))
            pipe.ltrim(AUDIT_KEY, 0, keep - 1)
            pipe.execute()

    def audit_page(self, page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        """One page of the audit log, newest first."""
        start = (page - 1) * page_size
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(AUDIT_KEY)
            pipe.lrange(AUDIT_KEY, start, start + page_size - 1)
            count, raw = pipe.execute()
        return count, [json.loads(entry) for entry in raw]

    # -- idempotency keys ----------------------------------------------------------------------------

    @staticmethod
    def idempotency_key(user: str, key: str) -> str:
        """Per user (user names hold no ':'); the client's key hashed, whatever characters it has."""
        return f"{PREFIX}idempotency:{user}:{hashlib.sha256(key.encode()).hexdigest()}"

    def idempotency_begin(self, user: str, key: str, record: dict[str, Any], ttl: int) -> dict[str, Any] | None:
        """Store record if the key is new (None: go ahead); else what the first request stored."""
        found = self._idempotency_begin(keys=[self.idempotency_key(user, key)], args=[json.dumps(record), ttl])
        return json.loads(found) if found else None

    def idempotency_save(self, user: str, key: str, record: dict[str, Any], ttl: int) -> None:
        self.redis.set(self.idempotency_key(user, key), json.dumps(record), ex=ttl)

    def idempotency_release(self, user: str, key: str) -> None:
        self.redis.delete(self.idempotency_key(user, key))

    # -- metrics (counted in Redis, so every worker process and machine adds to the same numbers) --------

    def task_counts(self) -> dict[str, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for state in TaskState:
                pipe.zcard(TASK.index_key("state", state))
            return dict(zip([s.value for s in TaskState], pipe.execute(), strict=True))

    @staticmethod
    def run_time_key(state: TaskState | str) -> str:
        return f"{PREFIX}metrics:run_seconds:{encode_value(state)}"

    def observe_run_time(self, state: TaskState, seconds: float) -> None:
        """Count a finished task's run time in its histogram bucket (the smallest bound it does not exceed)."""
        bound = next(b for b in RUN_TIME_BUCKETS if seconds <= b)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.run_time_key(state), f"{bound:g}", 1)
            pipe.hincrbyfloat(self.run_time_key(state), "sum", seconds)
            pipe.execute()

    def run_times(self, state: TaskState) -> tuple[list[int], float]:
        """Per-bucket counts (not cumulative) in RUN_TIME_BUCKETS order, and the sum of the run times."""
        raw = {k.decode(): v for k, v in self.redis.hgetall(self.run_time_key(state)).items()}
        return [int(raw.get(f"{b:g}", 0)) for b in RUN_TIME_BUCKETS], float(raw.get("sum", 0))

    def count_ssh_failure(self, reason: str) -> None:
        self.redis.hincrby(SSH_FAILURES_KEY, reason, 1)

    def ssh_failures(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(SSH_FAILURES_KEY).items()}
