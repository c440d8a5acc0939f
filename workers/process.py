"""One wsexec worker process: several RQ job slots in threads, sharing one runtime (settings, store, SSH pool).

RQ runs one job at a time per worker, so two long tasks would hold up every job queued behind them however idle
the SSH side is. Each slot is a whole RQ worker (own name, Redis connection, registration, heartbeats and
executions), so the job lifecycle, `rq info`, dependencies, scheduled jobs and failure callbacks stay RQ's. One
worker running perform_job from a thread pool was the alternative, but RQ keeps one state, stopped-job id and
heartbeat TTL per worker and would mix them up between jobs. Signals reach the main thread only: it stops the
slots, and the slots' threads end with the jobs they are running.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from functools import partial
from types import FrameType

from workers.job import LeaseKeeper, Runtime, install_runtime
from workers.rq_adapter import SERIALIZER, make_queue
from workers.schedules import ScheduleLoop
from workers.ssh.keys import authorized_key_line
from workers.webhooks import WebhookLoop
from workers.worker import TaskWorker
from wsexec.config import Settings
from wsexec.jobs import SLOT_SEPARATOR
from wsexec.store import connect

log = logging.getLogger(__name__)

SCHEDULER_ADOPT_SECONDS = 5  # how often a worker without RQ's scheduler checks whether its lock is free to take
SETTLE_SECONDS = 15  # after killing its tasks, how long a stopping worker waits for them to record their end
IDLE_QUIT_SECONDS = 5  # how long a stopping worker lets its idle slots unregister from RQ before leaving them
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class WorkerProcess:
    """The slots, the lease keeper and the stop: SIGTERM takes no new job, a second one (or the grace) kills tasks."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.runtime = Runtime.create(settings, connect(settings))
        self.runtime.name = name
        install_runtime(self.runtime)
        self.lease_keeper = LeaseKeeper(self.runtime)
        self.schedules = ScheduleLoop(self.runtime.store, make_queue(self.runtime.connection, settings.queue), settings,
                                      name) if settings.scheduler else None
        self.webhooks = WebhookLoop(self.runtime.store, settings, name)
        self.slots = [
            TaskWorker([settings.queue], connection=connect(settings), name=f"{name}{SLOT_SEPARATOR}{n}",
                       serializer=SERIALIZER)
            for n in range(settings.worker_jobs)
        ]
        self.stopping_since: float | None = None
        self.halted_since: float | None = None
        self.maintaining = False  # the main thread is in RQ's maintenance, which a stop cuts short
        self.next_adopt = time.monotonic() + SCHEDULER_ADOPT_SECONDS

    def run(self, burst: bool = False) -> int:
        """Work until stopped (or, in burst mode, until the queue is empty); the exit status."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.runtime.store.layout.upgrade()  # data of an older version: lists use the new indexes once it is done
        os.register_at_fork(after_in_child=partial(_die_with, os.getpid()))
        if burst:  # RQ's scheduler does one round at the start and no more
            self.next_adopt = float("inf")
        # One scheduler (RQ forks it) moves due jobs to the queue, which every slot serves. Forked before any thread
        # starts, so the child cannot inherit a lock some thread held; slot 0 owns it (stops and restarts it).
        self.slots[0]._start_scheduler(burst, logging_level="WARNING")
        self.lease_keeper.start()
        if self.schedules:
            self.schedules.start()
        self.webhooks.start()
        # the API may run where the key is not: register.sh gets its public half from Redis then
        self.runtime.store.registrations.publish_service_key(authorized_key_line(self.runtime.pool.pkey))
        self.lease_keeper.reap()  # as its rounds do: the dead workers' tasks ABORT, and their RQ jobs failed at once
        threads = [
            threading.Thread(target=slot.work, name=slot.name, daemon=True,
                             kwargs={"burst": burst, "logging_level": "WARNING"})
            for slot in self.slots
        ]
        for thread in threads:
            thread.start()
        status = 0
        while alive := self._waited_for(threads):
            if len(alive) < len(threads) and not burst and self.stopping_since is None:
                log.error("a job slot quit (see above): stopping this worker so that its supervisor restarts it")
                status = 1
                self.stop()
            if self.stopping_since is not None and time.monotonic() > self.stopping_since + self.settings.stop_grace:
                self.halt(f"worker stopped: still running {self.settings.stop_grace} s after it was told to stop")
            if self.halted_since is not None and time.monotonic() > self.halted_since + SETTLE_SECONDS:
                log.error("tasks did not end in %d s (Redis down?): leaving them to their leases", SETTLE_SECONDS)
                logging.shutdown()
                os._exit(1)  # the task threads may hang in Redis retries; their leases expire and others reap them
            if self.stopping_since is None:
                self._maintain()  # not once stopping: with Redis down it would hold up the stop in retries
            alive[0].join(0.5)
        self.lease_keeper.stopping.set()
        self.runtime.pool.close()
        if threads[0].is_alive():  # slot 0 left behind: its scheduler would keep the process waiting at exit
            self._stop_scheduler()
        return status

    def _waited_for(self, threads: list[threading.Thread]) -> list[threading.Thread]:
        """The slot threads still to wait for: once stopping, those running a job or out of one for a moment only.
        An idle slot quits within its poll, unless it is stuck retrying a lost Redis (RQ's dequeue loop and the
        client's ~30 s of retries): it has nothing to lose then, and its daemon thread dies with the process."""
        alive = [thread for thread in threads if thread.is_alive()]
        if self.stopping_since is None:
            return alive
        now = time.monotonic()
        waited = {slot.name for slot in self.slots
                  if slot.in_job or now < max(self.stopping_since, slot.job_ended_at) + IDLE_QUIT_SECONDS}
        return [thread for thread in alive if thread.name in waited]

    def stop(self) -> None:
        """Take no new job; let the running ones finish (for up to stop_grace seconds)."""
        self.stopping_since = time.monotonic()
        if self.schedules:
            self.schedules.stop()  # it would make tasks for others to run: leave that to the workers that go on
        self.webhooks.stop()  # what it has not acknowledged or sent stays in Redis for the others (or its restart)
        for slot in self.slots:
            slot.stop_taking_jobs()

    def halt(self, reason: str) -> None:
        """Kill every running task now; each ends ABORT with `reason`."""
        if self.halted_since is None:
            log.warning("%s: ending the running tasks", reason)
            self.halted_since = time.monotonic()
            self.runtime.halted = reason

    def _stop_scheduler(self) -> None:
        """What slot 0 does when it quits, bounded: the scheduler's TERM handler releases its locks in Redis, which
        may hang in retries when Redis is down (then the locks expire by themselves)."""
        process = self.slots[0].scheduler._process if self.slots[0].scheduler else None
        if process is None or process.pid is None:
            return
        process.terminate()
        process.join(IDLE_QUIT_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()

    def _maintain(self) -> None:
        self.maintaining = True
        try:
            self.slots[0].maintain()  # one slot's registrations cover the queue, as any one RQ worker's would
            if time.monotonic() >= self.next_adopt:
                self.next_adopt = time.monotonic() + SCHEDULER_ADOPT_SECONDS
                if self.slots[0].adopt_scheduler():
                    log.warning("RQ's scheduler lock was free (its holder gone): this worker schedules now")
        except MaintenanceCut:
            log.warning("RQ maintenance cut short by the stop (it is redone by the next worker)")
        except Exception:  # Redis down or restarting: the next round tries again
            log.exception("RQ maintenance failed")
        finally:
            self.maintaining = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stopping_since is None:
            log.warning("%s: taking no new job; running tasks may take %d s (%s again ends them now)",
                        name, self.settings.stop_grace, name)
            self.stop()
        else:
            self.halt(f"worker stopped by a second {name}")
        if self.maintaining:  # with Redis away, maintenance sits in ~30 s of retries: past the grace, with no check
            raise MaintenanceCut


class MaintenanceCut(Exception):
    """Raised by a stop signal into the main thread's RQ maintenance (registry cleanup: idempotent, safe to cut)."""


def _die_with(parent: int) -> None:
    """In a forked child (RQ's scheduler): SIGTERM when the worker dies, even by SIGKILL, rather than live on with
    the scheduler lock; the scheduler installs its own handler, which releases the lock and exits."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)
