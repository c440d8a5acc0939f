"""A wall clock WSEXEC_TEST_CLOCK_SKEW seconds off, for the Python process that has this directory on PYTHONPATH: the
skewed machine of tests/test_machines.py. Python reads the wall clock through time.time(), time.time_ns() and
datetime.now() (wsexec, RQ, paramiko, logging alike); the monotonic clock stays true, as on a real machine.

Not libfaketime: with the monotonic clock faked, Python's timed waits never return; with it left alone, every
time.sleep() fails with EINVAL (clock_nanosleep on CLOCK_MONOTONIC, Debian 12's faketime 0.9.10).
"""

from __future__ import annotations

import datetime
import os
import time

SKEW = float(os.environ.get("WSEXEC_TEST_CLOCK_SKEW", "0"))
_time, _time_ns = time.time, time.time_ns


def _skewed_time() -> float:
    return _time() + SKEW


def _skewed_time_ns() -> int:
    return _time_ns() + int(SKEW * 1e9)


class _SkewedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:
        return super().now(tz) + datetime.timedelta(seconds=SKEW)

    @classmethod
    def utcnow(cls) -> datetime.datetime:
        return cls.now(datetime.UTC).replace(tzinfo=None)

    @classmethod
    def today(cls) -> datetime.datetime:
        return cls.now()


if SKEW:
    time.time, time.time_ns = _skewed_time, _skewed_time_ns
    datetime.datetime = _SkewedDatetime  # type: ignore[misc]
