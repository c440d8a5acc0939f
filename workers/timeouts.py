"""RQ's job timeout in a job slot's thread, kept by one watchdog thread per process rather than a Timer per job.

RQ's TimerDeathPenalty starts (and throws away) a thread for every job: a few per cent of a worker's time in a run
of short jobs. The timeout only backs up the tasks' own (the worker stops a task itself), so one thread that wakes
at the nearest deadline does the same: it raises JobTimeoutException in the job's thread, as RQ's timer would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rq.timeouts import TimerDeathPenalty

log = logging.getLogger(__name__)


class Watchdog:
    """Deadlines (time.monotonic()) and what to do at each, run by one daemon thread started on first use."""

    def __init__(self) -> None:
        self.due: dict[int, tuple[float, Callable[[], None]]] = {}
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None

    def add(self, key: int, seconds: float, fire: Callable[[], None]) -> None:
        with self.changed:
            self.due[key] = (time.monotonic() + seconds, fire)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="rq-job-timeouts", daemon=True)
                self.thread.start()
            self.changed.notify()

    def cancel(self, key: int) -> None:
        with self.changed:
            self.due.pop(key, None)

    def _run(self) -> None:
        with self.changed:
            while True:
                if not self.due:
                    self.changed.wait()
                    continue
                key, (deadline, fire) = min(self.due.items(), key=lambda item: item[1][0])
                left = deadline - time.monotonic()
                if left > 0:
                    self.changed.wait(left)
                    continue
                del self.due[key]
                try:
                    fire()
                except Exception:  # its thread has ended meanwhile: nothing to stop, the others' deadlines stand
                    log.exception("a job's timeout could not be raised in its thread")


WATCHDOG = Watchdog()


class WatchdogDeathPenalty(TimerDeathPenalty):
    """TimerDeathPenalty (its exception raised in the job's thread), its timer the process's watchdog."""

    def setup_death_penalty(self) -> None:
        if self._timeout > 0:
            WATCHDOG.add(id(self), self._timeout, self.handle_death_penalty)

    def cancel_death_penalty(self) -> None:
        WATCHDOG.cancel(id(self))
