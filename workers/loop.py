"""A worker process's background loop (the scheduler, webhooks): one daemon thread repeating a step until stopped."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # after a failed step (Redis down or restarting): the next one tries again


class Loop:
    """Subclasses give step(), which returns how long to pause before the next one."""

    name = "loop"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """No new step (safe in a signal handler); one under way ends by itself."""
        self.stopping.set()

    def step(self) -> float:
        raise NotImplementedError

    def stopped(self) -> None:
        """Called once the loop has ended."""

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                pause = self.step()
            except Exception:  # each step leaves nothing half done in Redis: the next one starts over
                log.exception("%s step failed", self.name)
                pause = RETRY_SECONDS
            self.stopping.wait(pause)
        self.stopped()
