"""Every Redis key wsexec writes, as templates in one place; each is filled only by the module that owns it."""

from __future__ import annotations

import hashlib
import json

PREFIX = "wsexec:"

RECORD = PREFIX + "{kind}:{id}"  # hash: one task or instance (records.py)
COUNTER = PREFIX + "{kind}:next_id"  # the last id given out (records.py)
INDEX_PREFIX = PREFIX + "{kind}s:"  # what every index of a kind starts with (the Lua scripts append "field:value")
INDEX = INDEX_PREFIX + "{field}:{value}"  # zset of ids scored by id: the records with that value (records.py)
INDEX_ALL = INDEX_PREFIX + "all"  # zset of every id (records.py)
SCHEMA = PREFIX + "schema"  # string: the layout version of the data, set once it is complete (layout.py)

LEASE = PREFIX + "task:{id}:lease"  # string: the worker holding the task, with a TTL (leases.py)
OUTPUT = PREFIX + "task:{id}:{stream}"  # string: one output stream, capped (output.py)
NOTIFY = PREFIX + "task:{id}:notify"  # stream of at most 1 entry: touched by each append and the end (output.py)
FETCHED = PREFIX + "task:{id}:file"  # string: the file a fetch task brought back (files.py)
UPLOAD = PREFIX + "upload:{token}"  # string: an upload's content, until its tasks have all ended (files.py)
HELD = PREFIX + "tasks:held"  # zset: tasks taken and not finished -> lease deadline (Redis TIME), the reapers' look-up
FINISHED = PREFIX + "tasks:finished"  # zset: finished tasks scored by end time, what retention reads (retention.py)
SERVICE_KEY = PREFIX + "service_key"  # string: the public half of the workers' SSH key (registrations.py)
WORKER_ALIVE = PREFIX + "worker:{name}:alive"  # string with a lease's TTL: the worker process still runs (leases.py)

SLOTS = PREFIX + "instance:{id}:slots"  # set: tasks holding one of the instance's max_concurrent slots (slots.py)
WAITING = PREFIX + "instance:{id}:waiting"  # zset: its INIT tasks waiting for a slot, by id (oldest first) (slots.py)
WOKEN = PREFIX + "instance:{id}:woken"  # zset: waiters given a job to claim a freed slot, by when in ms (slots.py)
WAITERS = PREFIX + "slots:waiters"  # set: instances with waiting or woken tasks, what the backstop visits (slots.py)

EVENTS = PREFIX + "events"  # stream: task lifecycle events, trimmed to a window (the task scripts, events.py)
AUDIT = PREFIX + "audit"  # list of JSON entries, newest first (audit.py)
AUDIT_BYTES = PREFIX + "audit:bytes"  # string: the total length of the audit list's entries (audit.py)
IDEMPOTENCY = PREFIX + "idempotency:{user}:{digest}"  # string: a POST's stored answer (idempotency.py)
RUN_SECONDS = PREFIX + "metrics:run_seconds:{state}"  # hash: histogram bucket -> count, and "sum" (metrics.py)
SSH_FAILURES = PREFIX + "metrics:ssh_failures"  # hash: reason -> count (metrics.py)
LOGIN_FAILURES = PREFIX + "login_failures:{scope}:{who}"  # string: failures in the window, with its TTL (limits.py)
LOGIN_KNOWN = PREFIX + "login_known:{who}"  # zset: addresses a user name logged in from -> until, ms (limits.py)
SCHEDULES_DUE = PREFIX + "schedules:due"  # zset: enabled schedules scored by next_run (schedules.py, FIRE_SCHEDULE)
WEBHOOK_DELIVERY = PREFIX + "webhook:delivery:{id}"  # hash: one webhook delivery and its outcome (webhooks.py)
WEBHOOK_DELIVERIES = PREFIX + "webhook:deliveries"  # zset: every delivery kept, id -> created ms (webhooks.py)
WEBHOOK_DUE = PREFIX + "webhook:due"  # zset: deliveries to try, id -> next try ms (webhooks.py)
WAITS = PREFIX + "waits:{user}"  # zset: a user's open ?wait requests, lease id -> expiry in ms (limits.py)
REGISTRATION_TOKEN = PREFIX + "registration_token:{digest}"  # string: a registration's id, by its token's SHA-256

# a terminal session is a record of kind "websh" (RECORD, COUNTER, INDEX_ALL) (websh.py)
WEBSH_TICKET = PREFIX + "websh:ticket:{digest}"  # string with a TTL: a session's one-time websocket ticket (websh.py)
WEBSH_RECORDING = PREFIX + "websh:{id}:recording"  # string: asciicast event lines, capped (websh.py)
WEBSH_ALIVE = PREFIX + "websh:{id}:alive"  # string with a TTL: a web process serves the session's websocket (websh.py)
WEBSH_CONTROL = PREFIX + "websh:{id}:control"  # pub/sub channel: resize and end, to the process serving it (websh.py)


def record(kind: str, record_id: int | str) -> str:
    return RECORD.format(kind=kind, id=record_id)


def counter(kind: str) -> str:
    return COUNTER.format(kind=kind)


def index(kind: str, field: str, value: str) -> str:
    return INDEX.format(kind=kind, field=field, value=value)


def index_prefix(kind: str) -> str:
    return INDEX_PREFIX.format(kind=kind)


def index_all(kind: str) -> str:
    return INDEX_ALL.format(kind=kind)


def lease(task_id: int | str) -> str:
    return LEASE.format(id=task_id)


def worker_alive(name: str) -> str:
    return WORKER_ALIVE.format(name=name)


def slots(instance_id: int | str) -> str:
    return SLOTS.format(id=instance_id)


def slot_keys() -> dict[str, str]:
    """The templates the claim and wake scripts fill in themselves (ids known only inside Redis): '{}' the id."""
    return {
        "instance": record("instance", "{}"), "task": record("task", "{}"), "lease": lease("{}"),
        "alive": WORKER_ALIVE.format(name="{}"), "slots": SLOTS.format(id="{}"), "waiting": WAITING.format(id="{}"),
        "woken": WOKEN.format(id="{}"), "waiters": WAITERS,
    }


def output(task_id: int | str, stream: str) -> str:
    return OUTPUT.format(id=task_id, stream=stream)


def notify(task_id: int | str) -> str:
    return NOTIFY.format(id=task_id)


def fetched(task_id: int | str) -> str:
    return FETCHED.format(id=task_id)


def upload(token: str) -> str:
    return UPLOAD.format(token=token)


def idempotency(user: str, key: str) -> str:
    """Per user (user names hold no ':'); the client's key hashed, whatever characters it has."""
    return IDEMPOTENCY.format(user=user, digest=hashlib.sha256(key.encode()).hexdigest())


def run_seconds(state: str) -> str:
    return RUN_SECONDS.format(state=state)


def login_failures(scope: str, who: str) -> str:
    """scope "ip" (who: the client's address) or "user" (who: a digest of the name, whatever it holds)."""
    return LOGIN_FAILURES.format(scope=scope, who=who)


def login_known(who: str) -> str:
    """who: the digest of the user name, as for login_failures."""
    return LOGIN_KNOWN.format(who=who)


def webhook_delivery(delivery_id: str) -> str:
    return WEBHOOK_DELIVERY.format(id=delivery_id)


def waits(user: str) -> str:
    return WAITS.format(user=user)


def registration_token(digest: str) -> str:
    """digest: the hex SHA-256 of the token (the token itself is never stored) (registrations.py)."""
    return REGISTRATION_TOKEN.format(digest=digest)


def websh_ticket(digest: str) -> str:
    """digest: the hex SHA-256 of the ticket (the ticket itself is never stored)."""
    return WEBSH_TICKET.format(digest=digest)


def websh_recording(session_id: int | str) -> str:
    return WEBSH_RECORDING.format(id=session_id)


def websh_alive(session_id: int | str) -> str:
    return WEBSH_ALIVE.format(id=session_id)


def websh_control(session_id: int | str) -> str:
    return WEBSH_CONTROL.format(id=session_id)


SLOT_TEMPLATES = json.dumps(slot_keys())  # as the scripts take them
