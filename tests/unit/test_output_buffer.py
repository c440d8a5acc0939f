"""The worker's output buffer: appends in batches at the right offsets, keeps nothing past the cap."""

from __future__ import annotations

from workers.job import FLUSH_BYTES, OutputBuffer


class Appends:
    """Stands in for the store's append_output: records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, bytes, int]] = []

    def append_output(self, task_id: int, stream: str, data: bytes, start: int) -> None:
        self.calls.append((task_id, stream, data, start))


def buffer(cap: int) -> tuple[OutputBuffer, Appends]:
    store = Appends()
    return OutputBuffer(store, 7, "stdout", cap), store  # type: ignore[arg-type]


def test_small_writes_wait_for_a_flush_then_go_in_one_append() -> None:
    out, store = buffer(cap=1024 * 1024)
    out.feed(b"hello ")
    out.feed(b"world")
    assert store.calls == []
    out.flush()
    out.flush()  # nothing pending: no empty append
    assert store.calls == [(7, "stdout", b"hello world", 0)]


def test_a_full_batch_is_appended_at_once_and_the_next_starts_at_its_offset() -> None:
    out, store = buffer(cap=10 * FLUSH_BYTES)
    out.feed(b"a" * FLUSH_BYTES)
    out.feed(b"b" * 3)
    out.flush()
    assert [(data[:1], len(data), start) for _, _, data, start in store.calls] == [(b"a", FLUSH_BYTES, 0),
                                                                                   (b"b", 3, FLUSH_BYTES)]


def test_past_the_cap_output_is_counted_not_kept() -> None:
    out, store = buffer(cap=10)
    for chunk in (b"12345678", b"abcdef", b"more and more"):
        out.feed(chunk)
    out.flush()
    assert store.calls == [(7, "stdout", b"12345678ab", 0)]
    assert (out.kept, out.dropped) == (10, 4 + 13)
    assert len(out.pending) == 0


def test_memory_stays_bounded_whatever_is_fed() -> None:
    out, store = buffer(cap=FLUSH_BYTES)
    chunk = b"x" * 65536
    for _ in range(200):  # 12.5 MiB through a 64 KiB cap
        out.feed(chunk)
        assert len(out.pending) <= FLUSH_BYTES
    out.flush()
    assert sum(len(data) for _, _, data, _ in store.calls) == FLUSH_BYTES
    assert out.dropped == 200 * 65536 - FLUSH_BYTES
