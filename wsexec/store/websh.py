"""Terminal sessions (websh): the record, its one-time ticket (only its SHA-256 kept), the capped asciicast
recording, and the pub/sub channel that carries resizes and ends to whichever web process holds its websocket."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from redis import Redis
from redis.client import PubSub

from wsexec.exceptions import NotFound
from wsexec.store import keys, websh_scripts
from wsexec.store.records import INSTANCE, Kind, as_ints

WEBSH = Kind(
    "websh",
    indexed=(),
    # owner: who opened it (role: theirs); rows, cols: now; width, height: when it started (the recording's header)
    ints=frozenset({"id", "instance", "rows", "cols", "width", "height", "bytes_in", "bytes_out", "recording_bytes",
                    "close_code"}),
    floats=frozenset({"created_at", "expires_at", "start", "end"}),
    bools=frozenset({"recording_truncated"}),
)


ALIVE_SECONDS = 60  # a session's web process renews its alive key every few seconds; gone this long, it is lost
LOST = "lost: no web process serves it any more (stopped or restarted)"


class Sessions:
    """The session records; who may see or change one is the service's rule (wsexec.websh.service)."""

    def __init__(self, redis: Redis, retention_seconds: float) -> None:
        self.redis = redis
        self.retention = max(1, int(retention_seconds))
        self._create = redis.register_script(websh_scripts.CREATE_SESSION)
        self._admit = redis.register_script(websh_scripts.ADMIT)
        self._record = redis.register_script(websh_scripts.RECORD)
        self._finish = redis.register_script(websh_scripts.FINISH)

    def create(self, fields: dict[str, Any], ticket_digest: str, ticket_ttl: float) -> dict[str, Any]:
        """A PENDING session and its ticket; NotFound for an instance that does not exist (checked in the same step).

        Until it is admitted it expires with the retention period, so sessions never opened do not pile up."""
        now = time.time()
        record = {**fields, "state": "PENDING", "created_at": now, "expires_at": now + ticket_ttl,
                  "bytes_in": 0, "bytes_out": 0, "recording_bytes": 0, "recording_truncated": False}
        pairs = [item for name, value in WEBSH.encode(record).items() if value is not None for item in (name, value)]
        outcome = self._create(
            keys=[WEBSH.counter_key, WEBSH.all_key, INSTANCE.key(fields["instance"]), keys.websh_ticket(ticket_digest)],
            args=[WEBSH.key(""), max(1, int(ticket_ttl * 1000)), self.retention, *pairs])
        if outcome == b"missing":
            raise NotFound(f"instance {fields['instance']} not found")
        return self.get(int(outcome))

    def get(self, session_id: int) -> dict[str, Any]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(WEBSH.key(session_id)))
        if not raw:
            raise NotFound(f"session {session_id} not found")
        return self._lost([shown(WEBSH.decode(raw))])[0]

    def all(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Newest first, every session kept (owner: only theirs); ids whose record has expired are dropped."""
        ids = as_ints(self.redis.zrevrange(WEBSH.all_key, 0, -1))
        with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(WEBSH.key(session_id))
            raws = pipe.execute()
        gone = [session_id for session_id, raw in zip(ids, raws, strict=True) if not raw]
        if gone:
            self.redis.zrem(WEBSH.all_key, *gone)
        sessions = self._lost([shown(WEBSH.decode(raw)) for raw in raws if raw])
        return [s for s in sessions if owner is None or s["owner"] == owner]

    def admit(self, session_id: int, ticket_digest: str, refusal: str | None = None) -> str:
        """Take the ticket (once, whatever comes of it): 'ok' and the session is ACTIVE, else why not ('ticket',
        'origin' when a refusal is given: the session then ends with it, or the session's state)."""
        outcome = self._admit(
            keys=[keys.websh_ticket(ticket_digest), WEBSH.key(session_id), keys.websh_alive(session_id)],
            args=[session_id, repr(time.time()), "0" if refusal else "1", refusal or "", ALIVE_SECONDS])
        return cast(bytes, outcome).decode()

    def update(self, session_id: int, fields: dict[str, Any]) -> None:
        encoded = {name: value for name, value in WEBSH.encode(fields).items() if value is not None}
        self.redis.hset(WEBSH.key(session_id), mapping=encoded)  # type: ignore[arg-type]

    def count_input(self, session_id: int, size: int) -> None:
        self.redis.hincrby(WEBSH.key(session_id), "bytes_in", size)

    def record(self, session_id: int, event: list[Any], cap: int, output_bytes: int = 0) -> bool:
        """Append an asciicast event ([t, code, data]) unless that would pass the cap; True if it was kept."""
        line = json.dumps(event, ensure_ascii=False, separators=(", ", ": ")) + "\n"
        return bool(self._record(keys=[keys.websh_recording(session_id), WEBSH.key(session_id)],
                                 args=[line, cap, output_bytes]))

    def recording(self, session_id: int) -> bytes:
        return cast(bytes, self.redis.get(keys.websh_recording(session_id)) or b"")

    def finish(self, session_id: int, fields: dict[str, Any], unless_served: bool = False) -> bool:
        """ENDED with the given fields, kept from now for the retention period; False if it had ended already (or,
        unless_served, a web process still serves it)."""
        pairs = [item for name, value in WEBSH.encode(fields).items() if value is not None for item in (name, value)]
        return bool(self._finish(
            keys=[WEBSH.key(session_id), keys.websh_recording(session_id), keys.websh_alive(session_id)],
            args=[self.retention, "1" if unless_served else "0", *pairs]))

    def served(self, session_id: int) -> None:
        """The web process serving the session is alive (renewed every few seconds while it is)."""
        self.redis.set(keys.websh_alive(session_id), 1, ex=ALIVE_SECONDS)

    def _lost(self, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """ACTIVE sessions that no web process renews any more end here ('lost'), so none stays ACTIVE forever."""
        active = [s for s in sessions if s["state"] == "ACTIVE"]
        if not active:
            return sessions
        with self.redis.pipeline(transaction=False) as pipe:
            for session in active:
                pipe.exists(keys.websh_alive(session["id"]))
            alive = pipe.execute()
        lost = {s["id"] for s, up in zip(active, alive, strict=True) if not up
                and self.finish(s["id"], {"end": time.time(), "close_reason": LOST}, unless_served=True)}
        return [self.get(s["id"]) if s["id"] in lost else s for s in sessions]

    def tell(self, session_id: int, message: dict[str, Any]) -> int:
        """Send a control message to the process serving the session; how many listened (0: nobody serves it)."""
        return int(self.redis.publish(keys.websh_control(session_id), json.dumps(message)))

    def listen(self, session_id: int) -> PubSub:
        """The session's control channel, subscribed (before its record is read, so no message is missed)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.websh_control(session_id))
        return pubsub


def shown(session: dict[str, Any]) -> dict[str, Any]:
    """A PENDING session whose ticket has run out is EXPIRED: nobody can open it any more."""
    if session.get("state") == "PENDING" and session.get("expires_at", 0) < time.time():
        return {**session, "state": "EXPIRED"}
    return session
