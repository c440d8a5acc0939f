"""CPU-bound calls off the event loop: under gunicorn's gevent worker one scrypt check (~90 ms) would stall every
connection of the process; in a real thread (hashlib releases the GIL) the loop keeps serving the others."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
THREADS = 4  # scrypt checks at once per process: each takes 32 MiB and a core; the rest queue (rate limits cap them)

_pool: Any = None


def _gevent_pool() -> Any:
    """gevent's native thread pool if gevent patched this process (gunicorn's worker did), else None."""
    global _pool
    try:
        from gevent import monkey
    except ImportError:
        return None
    if not monkey.is_module_patched("socket"):
        return None
    if _pool is None:
        from gevent.threadpool import ThreadPool

        _pool = ThreadPool(THREADS)
    return _pool


def blocking(function: Callable[..., T], *args: Any) -> T:
    """function(*args) in a real thread when running under gevent (the caller's greenlet waits), else directly."""
    pool = _gevent_pool()
    return function(*args) if pool is None else pool.apply(function, args)
