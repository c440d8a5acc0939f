"""Notes on instances: who wrote them, private or not, pinned or not; they go when their instance does."""

from __future__ import annotations

import time
from typing import Any

from redis import Redis

from wsexec.exceptions import Unprocessable
from wsexec.store import bookkeeping_scripts
from wsexec.store.records import INSTANCE, NOTE, Records, as_ints


def shown_first(note: dict[str, Any]) -> tuple[bool, float, int]:
    """Pinned first, then the most recently updated (then the newest id, for notes updated at the same moment)."""
    return note["pinned"], note["updated_at"], note["id"]


class Notes:
    """The note records; who may see or change one is the service's rule (wsexec.notes.service)."""

    def __init__(self, redis: Redis) -> None:
        self.records = Records(redis, NOTE)
        self._create = redis.register_script(bookkeeping_scripts.CREATE_NOTE)

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        """422 for an instance that does not exist, checked in the same step as the write."""
        now = time.time()
        note = {**fields, "created_at": now, "updated_at": now}
        outcome = self._create(keys=[NOTE.counter_key, INSTANCE.key(fields["instance"])],
                               args=self.records.create_args([note]))
        if outcome[0] == b"missing":
            raise Unprocessable(f"instance: instance {fields['instance']} does not exist",
                                {"instance": [f"instance {fields['instance']} does not exist"]})
        return self.get(int(outcome[1][0]))

    def get(self, note_id: int) -> dict[str, Any]:
        return self.records.get(note_id)

    def visible(self, user: str, instance: int | None) -> list[dict[str, Any]]:
        """The notes user may see (public ones and their own private ones), of one instance or all, in list order."""
        if instance is None:
            ids = as_ints(self.records.redis.zrange(NOTE.all_key, 0, -1))
        else:
            ids = self.records.ids_by("instance", instance)
        notes = [note for note in self.records.get_many(ids) if not note["private"] or note["author"] == user]
        return sorted(notes, key=shown_first, reverse=True)

    def update(self, note_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Only the given fields are written (concurrent changes to other fields stay), and updated_at if any."""
        if changes:
            self.records.update(note_id, {**changes, "updated_at": time.time()})
        return self.get(note_id)

    def delete(self, note_id: int) -> None:
        self.records.delete(note_id)
