"""Registrations: what an admin allows new servers to register as (tag, user, port, state), behind a token stored only
as its SHA-256; each registration creates an instance with the host's key pinned, while uses are left."""

from __future__ import annotations

from typing import Any, cast

from redis import Redis

from wsexec.exceptions import Conflict, Unauthorized
from wsexec.store import keys, registration_scripts
from wsexec.store.records import INSTANCE, REGISTRATION, Records

REFUSED = {
    "unknown": "registration token revoked",
    "expired": "registration token expired",
    "used": "registration token used up: it has registered as many servers as it allows",
}


class Registrations:
    """The registration records and the token -> registration lookup."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.records = Records(redis, REGISTRATION)
        self.instances = Records(redis, INSTANCE)
        self._register = redis.register_script(registration_scripts.REGISTER)

    def publish_service_key(self, line: str) -> None:
        """Each worker says which key it logs in with, so the API need not hold a copy of it (register.sh)."""
        self.redis.set(keys.SERVICE_KEY, line)

    def service_key(self) -> str | None:
        """The authorized_keys line of the workers' key, as the last worker to start published it."""
        value = cast(bytes | None, self.redis.get(keys.SERVICE_KEY))
        return value.decode() if value else None

    def create(self, fields: dict[str, Any], digest: str) -> dict[str, Any]:
        """The record first, then its token's key: a token only ever names a whole registration."""
        (registration_id,) = self.records.create([{**fields, "uses_left": fields["uses"], "digest": digest}])
        self.redis.set(keys.registration_token(digest), registration_id)
        return self.get(registration_id)

    def get(self, registration_id: int) -> dict[str, Any]:
        return self.records.get(registration_id)

    def by_token(self, digest: str) -> dict[str, Any] | None:
        """The registration a token's digest names, or None (never issued, or revoked)."""
        found = self.redis.get(keys.registration_token(digest))
        if found is None:
            return None
        records = self.records.get_many([int(found)])
        return records[0] if records else None

    def page(self, page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
        return self.records.page({}, page, page_size)

    def delete(self, registration_id: int) -> None:
        """Revoke: the token first, so it is refused from now on, then the record."""
        registration = self.get(registration_id)
        self.redis.delete(keys.registration_token(registration["digest"]))
        self.records.delete(registration_id)

    def register(self, registration: dict[str, Any], instance: dict[str, Any]) -> int:
        """Take one use and store the instance in one step; 401 if the token no longer may, 409 for a held address."""
        outcome = self._register(
            keys=[keys.registration_token(registration["digest"]), REGISTRATION.key(registration["id"]),
                  INSTANCE.counter_key],
            args=[*self.instances.create_args([instance]), registration["id"], instance["ip"].lower(),
                  instance["port"]],
        )
        status = outcome[0].decode()
        if status == "conflict":
            holder = int(outcome[1])
            raise Conflict(f"instance {holder} already has address {instance['ip']} port {instance['port']}: an admin "
                           f"must delete it or change its ip or port (PATCH /wsexec/instances/{holder}) before a "
                           "host can register there", {"instance": holder})
        if status != "ok":
            raise Unauthorized(REFUSED[status])
        return int(outcome[1][0])
