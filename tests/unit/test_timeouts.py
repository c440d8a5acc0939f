"""The job slots' RQ timeout: one watchdog thread raises JobTimeoutException in the late job's own thread, and
never in a job that ended in time."""

from __future__ import annotations

import threading
import time

from rq.timeouts import JobTimeoutException

from workers.timeouts import WatchdogDeathPenalty


def _job(seconds: float, timeout: float, outcome: dict[str, str]) -> None:
    """Busy for `seconds` (short sleeps: the exception lands between two), under RQ's timeout."""
    try:
        with WatchdogDeathPenalty(timeout, JobTimeoutException):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(0.01)
        time.sleep(timeout)  # past its deadline, after the block: nothing may be raised now
        outcome[threading.current_thread().name] = "ended"
    except JobTimeoutException as exc:
        outcome[threading.current_thread().name] = str(exc)


def test_late_jobs_get_the_timeout_in_their_own_thread_and_others_do_not() -> None:
    outcome: dict[str, str] = {}
    threads = [threading.Thread(target=_job, args=args, name=name, kwargs={"outcome": outcome})
               for name, args in (("late", (5.0, 0.3)), ("later", (5.0, 0.6)), ("in-time", (0.1, 0.4)))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # (the message's seconds are the last penalty's: RQ's TimerDeathPenalty patches the exception class)
    assert outcome["late"].startswith("Task exceeded maximum timeout value")
    assert outcome["later"].startswith("Task exceeded maximum timeout value")
    assert outcome["in-time"] == "ended"
    assert time.monotonic() - started < 4  # the late ones were stopped, not left to run their 5 s
