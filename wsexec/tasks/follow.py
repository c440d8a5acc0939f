"""GET /wsexec/tasks/{id}/output?follow=true: the output as it arrives, as Server-Sent Events or plain text.

Both read the stored output in slices of SLICE bytes (memory stays flat whatever the task prints) and block on the
task's notification stream between reads (woken by Redis, never by a timer but the heartbeat).
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from wsexec import sse
from wsexec.store import FINISHED_STATES, STREAMS, Store

SLICE = 64 * 1024  # bytes per GETRANGE
EVENT_ID = re.compile(r"^(\d{1,20})\.(\d{1,20})$")  # "<stdout offset>.<stderr offset>", bytes sent so far


@dataclass(frozen=True)
class Chunk:
    """New bytes of one stream, starting at byte `offset` of it."""

    stream: str
    data: bytes
    offset: int


def decode_complete(decoder: codecs.IncrementalDecoder, data: bytes, final: bool) -> tuple[str, int]:
    """The text of `data` and how many of its bytes were used: an incomplete UTF-8 character waits for the rest."""
    text = decoder.decode(data, final=final)
    return text, len(data) - len(decoder.getstate()[0])


def chunks(store: Store, task_id: int, offsets: dict[str, int], heartbeat: float,
           seconds: int | None) -> Iterator[Chunk | dict[str, Any] | None]:
    """Chunks from the offsets on, None when idle for a heartbeat, then the finished task (until `seconds` if given).

    Each round snapshots the notification id and the state, reads everything stored, then blocks from that id;
    the worker stores its last output before it finishes the task, so a finished snapshot means nothing follows.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    offsets = dict(offsets)
    while True:
        position, state = store.output_snapshot(task_id)
        for stream in STREAMS:
            while data := store.read_output(task_id, stream, offsets[stream], SLICE):
                yield Chunk(stream, data, offsets[stream])
                offsets[stream] += len(data)
        if state is None or state in FINISHED_STATES:
            yield store.get_task(task_id) if state else {"state": None, "rc": None, "error": "task deleted"}
            return
        remaining = heartbeat if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            return
        if not store.wait_output(task_id, position, max(1, int(min(heartbeat, remaining) * 1000))):
            yield None


def events(store: Store, task_id: int, offsets: dict[str, int], heartbeat: float,
           seconds: int | None) -> Iterator[str]:
    """SSE: `stdout`/`stderr` events of whole UTF-8 characters with id "<stdout>.<stderr>" (bytes so far), `end`."""
    yield f"retry: {sse.RETRY_MS}\n\n"  # also sends the headers at once
    decoders = {stream: codecs.getincrementaldecoder("utf-8")("replace") for stream in STREAMS}
    sent = dict(offsets)
    try:
        for item in chunks(store, task_id, offsets, heartbeat, seconds):
            if item is None:
                yield sse.KEEPALIVE
            elif isinstance(item, Chunk):
                text, used = decode_complete(decoders[item.stream], item.data, final=False)
                sent[item.stream] = item.offset + used
                if text:
                    yield sse.frame_text(item.stream, text, f"{sent['stdout']}.{sent['stderr']}")
            else:
                for stream, decoder in decoders.items():  # a cut-off last character, as U+FFFD
                    if tail := decoder.decode(b"", final=True):
                        yield sse.frame_text(stream, tail, f"{sent['stdout']}.{sent['stderr']}")
                yield sse.frame("end", {key: item.get(key) for key in ("state", "rc", "error")},
                                f"{sent['stdout']}.{sent['stderr']}")
    except RedisError as exc:
        yield sse.frame("error", {"error": "Redis unreachable: the stream ends; reconnect with Last-Event-ID",
                                  "detail": str(exc)})


def text(store: Store, task_id: int, offsets: dict[str, int], heartbeat: float, seconds: int | None) -> Iterator[bytes]:
    """text/plain: the raw bytes, each stream in order; between them, in the order each round found them stored."""
    yield b""
    for item in chunks(store, task_id, offsets, heartbeat, seconds):
        if isinstance(item, Chunk):
            yield item.data
        elif item is None:
            yield b""  # idle for a heartbeat: nothing to write, but sse.respond looks whether the client is still there
