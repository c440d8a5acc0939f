"""Records: a hash per id from a counter, sorted-set indexes scored by id (newest = highest), typed fields.

The generic operations know nothing of any one kind: what a kind has beyond its hash (a task's lease and
output) it declares as sub-keys, which go with the record when it is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline

from wsexec.exceptions import NotFound
from wsexec.store import index_scripts, keys, scripts


def encode_value(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class Kind:
    """One kind of record: its name (in its keys), indexed fields, field types and sub-keys."""

    name: str
    indexed: tuple[str, ...]
    ints: frozenset[str]
    floats: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()
    dicts: frozenset[str] = frozenset()
    bools: frozenset[str] = frozenset()
    sub_keys: Callable[[int | str], list[str]] = lambda record_id: []

    def key(self, record_id: int | str) -> str:
        return keys.record(self.name, record_id)

    @property
    def counter_key(self) -> str:
        return keys.counter(self.name)

    @property
    def index_prefix(self) -> str:
        return keys.index_prefix(self.name)

    @property
    def all_key(self) -> str:
        return keys.index_all(self.name)

    def index_key(self, field: str, value: Any) -> str:
        return keys.index(self.name, field, encode_value(value))

    def index_keys(self, filters: dict[str, Any], composites: bool = False) -> list[str]:
        """The indexes whose intersection is the records matching every filter (None: no filter); with composites
        (the layout has them all), state and another field are one composite index each, never the whole state."""
        given = {field: value for field, value in filters.items() if value is not None}
        state = given.get("state")
        paired = [f for f in given if f"state+{f}" in self.indexed] if composites and state is not None else []
        if paired:
            del given["state"]
            return [*(self.index_key(f"state+{f}", f"{encode_value(state)}:{encode_value(given.pop(f))}")
                      for f in paired), *(self.index_key(f, v) for f, v in given.items())]
        return [self.index_key(f, v) for f, v in given.items()] or [self.all_key]

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
            elif name in self.bools:
                record[name] = value == "True"
            elif name in self.lists or name in self.dicts:
                record[name] = json.loads(value)
            else:
                record[name] = value
        return record


# the filters of GET /tasks with state: composite indexes "state+FIELD" of value "STATE:VALUE", so that a list of one
# state and another filter reads one small index, not all tasks of that state (about 70 bytes a task and index in
# a large one, 10-20 in a small one).
TASK_COMPOSITES = tuple(f"state+{f}" for f in ("instance", "tag", "name", "batch", "kind", "schedule"))
# Fields with no index of their own (layout 3): a task is in one state, so the tasks with a tag are the union of
# "state+tag" over the states (index_scripts.UNION_PAGE), and a large index of their own would cost ~95 bytes a task.
# The fields kept alone have readers of their own (a batch's tasks, an instance's or a schedule's running ones).
UNION_ONLY = ("tag", "name", "kind")
# The quotas count a user's INIT and CURRENT tasks: only those are in "running+created_by" (its value: the user).
RUNNING_BY = "running+created_by"
TASK = Kind(
    "task",
    # kind: script, upload or fetch; upload: the token of an upload's content, shared by the tasks of one POST
    # schedule: the schedule that made it (fire_time: for which of its fire times)
    indexed=("state", "instance", "batch", "upload", "schedule", *TASK_COMPOSITES, RUNNING_BY),
    ints=frozenset({"id", "instance", "rc", "timeout", "stdout_dropped", "stderr_dropped", "remote_pid", "size",
                    "schedule", "fire_time", "slot"}),
    floats=frozenset({"created_at", "start", "end", "scheduled_at"}),
    lists=frozenset({"run_after", "env_names"}),
    dicts=frozenset({"notify", "env"}),  # notify {url, on}: the webhook of its end (of its batch's, in a batch)
    bools=frozenset({"overwrite"}),
    sub_keys=lambda task_id: [keys.lease(task_id), keys.output(task_id, "stdout"), keys.output(task_id, "stderr"),
                              keys.notify(task_id), keys.fetched(task_id)],
)
# What this version writes while the data is of an older layout (until a worker's upgrade marks it current), so that
# the lists and quotas, which read the old indexes until then, see the tasks stored meanwhile.
TASK_LEGACY_INDEXED = (*TASK.indexed, *UNION_ONLY, "created_by")
TASK_STATES = ("INIT", "CURRENT", "DONE", "ABORT")


def task_parts(filters: dict[str, Any]) -> list[list[str]]:
    """The indexes that answer a task list in layout 3: disjoint parts, each the intersection of its indexes (the
    one part of a given state, else one per state when a filter is given, else 'all')."""
    given = {field: value for field, value in filters.items() if value is not None}
    state = given.pop("state", None)
    if state is None and not given:
        return [[TASK.all_key]]
    states = [encode_value(state)] if state is not None else list(TASK_STATES)
    return [[TASK.index_key(f"state+{f}", f"{s}:{encode_value(v)}") for f, v in given.items()]
            or [TASK.index_key("state", s)] for s in states]


INSTANCE = Kind(
    "instance",
    indexed=("state", "tag"),
    ints=frozenset({"id", "port", "max_concurrent"}),
    floats=frozenset({"facts_at"}),
    lists=frozenset({"login_users"}),
    dicts=frozenset({"facts"}),
)
NOTE = Kind(
    "note",
    indexed=("instance",),
    ints=frozenset({"id", "instance"}),
    floats=frozenset({"created_at", "updated_at"}),
    bools=frozenset({"private", "pinned"}),
)

SCHEDULE = Kind(
    "schedule",
    indexed=(),
    # next_run, last_run: fire times (unix seconds); revision: counts changes, so a fire prepared from an old one fails
    ints=frozenset({"id", "interval", "anchor", "next_run", "last_run", "missed", "revision"}),
    floats=frozenset({"created_at", "updated_at"}),
    lists=frozenset({"last_tasks"}),
    dicts=frozenset({"template"}),
    bools=frozenset({"enabled", "catch_up"}),
)

REGISTRATION = Kind(
    "registration",
    indexed=(),
    # uses: as created, uses_left: what POST /wsexec/register has not taken yet; digest: its token's SHA-256
    ints=frozenset({"id", "port", "uses", "uses_left"}),
    floats=frozenset({"created_at", "expires_at"}),
    lists=frozenset({"instances"}),
    bools=frozenset({"activate"}),
)


def as_ints(values: Any) -> list[int]:
    """Ids as Redis answers them (bytes) as ints."""
    return [int(value) for value in values]


def states(allowed: Iterable[Enum]) -> str:
    """The allowed states as the scripts take them."""
    return json.dumps([s.value for s in allowed])


class Records:
    """The generic operations on the records of one kind."""

    def __init__(self, redis: Redis, kind: Kind, indexed: Callable[[], tuple[str, ...]] | None = None) -> None:
        """indexed: the indexes it writes, if not always the kind's (tasks' depend on the data's layout)."""
        self.redis, self.kind = redis, kind
        self.indexed = indexed or (lambda: kind.indexed)
        self._create = redis.register_script(scripts.CREATE)
        self._update = redis.register_script(scripts.UPDATE)
        self._delete = redis.register_script(scripts.DELETE)
        self._union_page = redis.register_script(index_scripts.UNION_PAGE)
        self._walk_page = redis.register_script(index_scripts.WALK_PAGE)

    def get(self, record_id: int) -> dict[str, Any]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(self.kind.key(record_id)))
        if not raw:
            raise NotFound(f"{self.kind.name} {record_id} not found")
        return self.kind.decode(raw)

    def exists(self, record_id: int) -> bool:
        return bool(self.redis.exists(self.kind.key(record_id)))

    def get_many(self, ids: Iterable[int | bytes]) -> list[dict[str, Any]]:
        """The records that still exist, in the order of ids."""
        with self.redis.pipeline(transaction=False) as pipe:
            for record_id in ids:
                pipe.hgetall(self.kind.key(int(record_id)))
            return [self.kind.decode(raw) for raw in pipe.execute() if raw]

    def create_args(self, records: list[dict[str, Any]]) -> list[str]:
        """ARGV[1..4] of the create scripts: where the records go and the records, without None fields."""
        encoded = [{k: v for k, v in self.kind.encode(r).items() if v is not None} for r in records]
        return [self.kind.key(""), self.kind.index_prefix, json.dumps(self.indexed()), json.dumps(encoded)]

    def create(self, records: list[dict[str, Any]]) -> list[int]:
        _, ids = self._create(keys=[self.kind.counter_key], args=self.create_args(records))
        return [int(i) for i in ids]

    def update_args(self, record_id: int, changes: dict[str, Any], allowed: Iterable[Enum]) -> list[Any]:
        """ARGV[1..5] of the update scripts."""
        kind = self.kind
        return [record_id, kind.index_prefix, json.dumps(self.indexed()), states(allowed),
                json.dumps(kind.encode(changes))]

    def update(self, record_id: int, changes: dict[str, Any], allowed: Iterable[Enum] = (),
               pipeline: Pipeline | None = None) -> tuple[str, str]:
        """Change fields (and index entries) if the state allows; in a pipeline the outcome comes from execute()."""
        outcome = self._update(keys=[self.kind.key(record_id)], args=self.update_args(record_id, changes, allowed),
                               client=pipeline)
        return ("", "") if pipeline is not None else self.outcome(record_id, outcome)

    def outcome(self, record_id: int, outcome: list[bytes]) -> tuple[str, str]:
        """A script's {status, state}, with a missing record raised as NotFound."""
        status, state = outcome
        if status == b"missing":
            raise NotFound(f"{self.kind.name} {record_id} not found")
        return status.decode(), state.decode()

    def delete(self, record_id: int, allowed: Iterable[Enum] = (), busy: list[str] | None = None,
               dependents: Iterable[tuple[Kind, str]] = ()) -> tuple[str, str]:
        """Delete it with its sub-keys, unless its state is not allowed or busy[0] meets one of busy[1:].

        dependents: (kind, field) of records that go with it, those whose field holds its id (an instance's notes).
        """
        sub_keys = self.kind.sub_keys(record_id)
        children = [{"ids": child.index_key(field, record_id), "record": child.key(""), "prefix": child.index_prefix,
                     "indexed": child.indexed} for child, field in dependents]
        outcome = self._delete(
            keys=[self.kind.key(record_id), *sub_keys, *(busy or [])],
            args=[record_id, self.kind.index_prefix, json.dumps(self.indexed()), states(allowed), len(sub_keys),
                  json.dumps(children)],
        )
        return self.outcome(record_id, outcome)

    def ids_in(self, index_keys: list[str]) -> list[int]:
        """The ids in every one of these indexes, lowest first."""
        return sorted(as_ints(self.redis.zinter(index_keys)))

    def ids_by(self, field: str, value: Any) -> list[int]:
        """The ids with this value of an indexed field, lowest first."""
        return as_ints(self.redis.zrange(self.kind.index_key(field, value), 0, -1))

    def page(self, filters: dict[str, Any], page: int, page_size: int, composites: bool = False
             ) -> tuple[int, list[dict[str, Any]]]:
        """One page, newest first, of the records matching every filter: one index, or the intersection of the
        smallest ones (Kind.index_keys)."""
        return self.page_parts([self.kind.index_keys(filters, composites)], page, page_size)

    def page_parts(self, parts: list[list[str]], page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        """One page, newest first, of the union of disjoint parts, each the intersection of its indexes: one index
        read as it is, several read as one (index_scripts.UNION_PAGE), intersections walked newest first
        (index_scripts.WALK_PAGE); nothing written, so lists work while Redis is full too."""
        start, stop = (page - 1) * page_size, page * page_size - 1
        if len(parts) == 1 and len(parts[0]) == 1:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(parts[0][0])
                pipe.zrevrange(parts[0][0], start, stop)
                count, ids = pipe.execute()
        elif all(len(part) == 1 for part in parts):
            count, ids = self._union_page(keys=[part[0] for part in parts], args=[start, page_size])
        else:
            count, ids = self._walk_page(keys=[key for part in parts for key in part],
                                         args=[start, page_size, *(len(part) for part in parts)])
        return count, self.get_many(ids)

    def count_by(self, field: str, values: Iterable[Any]) -> list[int]:
        """How many records have each of these values of an indexed field."""
        with self.redis.pipeline(transaction=False) as pipe:
            for value in values:
                pipe.zcard(self.kind.index_key(field, value))
            return pipe.execute()
