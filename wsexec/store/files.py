"""Files in transit: an upload's content until its tasks have all ended, and the file a fetch task brought back.

Both are plain strings written and read in slices (APPEND, SETRANGE, GETRANGE), so no process ever holds a whole
file: the web streams an upload in from its spooled form part, a worker streams it out into SFTP, and a fetch
goes the other way. An upload's content is deleted by the transition script when the last of its tasks ends
(scripts.TRANSITION); a fetched file is a sub-key of its task and goes with it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from typing import IO, cast

from redis import Redis

from wsexec.exceptions import TooLarge
from wsexec.store import keys

CHUNK = 1024 * 1024  # bytes per Redis write or read


class Files:
    def __init__(self, redis: Redis, expire_seconds: int) -> None:
        self.redis, self.expire_seconds = redis, expire_seconds

    def put_upload(self, source: IO[bytes], limit: int) -> tuple[str, int, str]:
        """Copy the content into Redis a slice at a time: its token, size and sha256 (TooLarge beyond `limit`).

        The key exists from the start (an empty file is content too), with an expiry only as a backstop.
        """
        token = secrets.token_hex(12)
        key = keys.upload(token)
        digest, size = hashlib.sha256(), 0
        self.redis.set(key, b"", ex=self.expire_seconds)
        try:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the file is larger than WSEXEC_FILE_MAX ({limit} bytes)", {"file_max": limit})
                digest.update(chunk)
                self.redis.append(key, chunk)
        except BaseException:
            self.redis.delete(key)
            raise
        return token, size, digest.hexdigest()

    def upload_exists(self, token: str) -> bool:
        return bool(self.redis.exists(keys.upload(token)))

    def read_upload(self, token: str, offset: int, size: int = CHUNK) -> bytes:
        return cast(bytes, self.redis.getrange(keys.upload(token), offset, offset + size - 1))

    def drop_upload(self, token: str) -> None:
        """For an upload whose tasks were never stored (the transition script deletes the others' content)."""
        self.redis.delete(keys.upload(token))

    def write_fetched(self, task_id: int, offset: int, data: bytes) -> None:
        """Write a slice at its offset (a retried write lands in the same place), expiring with the task."""
        key = keys.fetched(task_id)
        with self.redis.pipeline() as pipe:
            pipe.setrange(key, offset, data)
            pipe.expire(key, self.expire_seconds)
            pipe.execute()

    def clear_fetched(self, task_id: int) -> None:
        self.redis.delete(keys.fetched(task_id))

    def fetched_size(self, task_id: int) -> int:
        return int(self.redis.strlen(keys.fetched(task_id)))

    def read_fetched(self, task_id: int, size: int) -> Iterator[bytes]:
        """The fetched file's first `size` bytes (its size when it was done), a slice at a time."""
        key = keys.fetched(task_id)
        for offset in range(0, size, CHUNK):
            yield cast(bytes, self.redis.getrange(key, offset, min(offset + CHUNK, size) - 1))
