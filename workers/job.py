"""The RQ job: run one task over SSH and write its state, output and rc back to Redis."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from workers import files, runas
from workers.reconcile import Reconciler
from workers.rq_adapter import fail_abandoned_jobs, make_queue
from workers.ssh import ConnectionPool, Endpoint, SshError, SshOptions, Stopped
from wsexec.config import Settings
from wsexec.exceptions import NotFound
from wsexec.jobs import wake_waiters
from wsexec.store import Store, TaskState, connect
from wsexec.tasks import environment

log = logging.getLogger(__name__)

FLUSH_BYTES = 64 * 1024
PURGE_SECONDS = 60.0


@dataclass
class Runtime:
    """What a worker process keeps between jobs and shares between its job slots: settings, store, SSH pool."""

    settings: Settings
    connection: Redis  # RQ's; the store has its own view of the same Redis
    store: Store
    pool: ConnectionPool
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    running: set[int] = field(default_factory=set)
    taken: dict[str, Taken] = field(default_factory=dict)  # RQ job id -> what its slot took, until the job runs
    # who holds the leases: the name and this process's own token, so that a worker restarted under the same name
    # does not keep its predecessor's tasks alive with its heartbeat
    incarnation: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    halted: str | None = None  # set when the worker must stop now: running tasks are killed and end ABORT with it
    threads: ThreadPoolExecutor = field(init=False)  # made once: starting threads per job cost ~8% of a worker
    queue: Queue = field(init=False)  # where the tasks woken for a freed slot get their job

    def __post_init__(self) -> None:
        # enough for every slot's job to run worker_threads tasks at once, so no job waits for another's
        size = self.settings.worker_threads * self.settings.worker_jobs
        self.threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="task")
        self.queue = make_queue(self.connection, self.settings.queue)

    @property
    def holder(self) -> str:
        return f"{self.name}/{self.incarnation}"

    @property
    def renew_interval(self) -> float:
        """How often the leases are renewed: four times a lease, so that three renewals may be late."""
        return max(self.settings.lease_seconds / 4, 0.5)

    @classmethod
    def create(cls, settings: Settings, redis: Redis) -> Runtime:
        pool = ConnectionPool(settings.ssh_key, settings.known_hosts, SshOptions.from_settings(settings))
        return cls(settings, redis, Store.from_settings(redis, settings), pool)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def install_runtime(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def current_runtime() -> Runtime:
    """The worker's runtime; created on first use when the job runs under a plain `rq worker`."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            from rq import get_current_job

            job = get_current_job()
            settings = Settings.from_env()
            redis = job.connection if job else connect(settings)
            _runtime = Runtime.create(settings, redis)
        return _runtime


class OutputBuffer:
    """Batches one stream into Redis appends and keeps nothing past the cap, so memory stays bounded."""

    def __init__(self, store: Store, task_id: int, stream: str, cap: int) -> None:
        self.store, self.task_id, self.stream, self.cap = store, task_id, stream, cap
        self.pending = bytearray()
        self.kept = 0
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        room = max(self.cap - self.kept, 0)
        taken = data[:room]
        self.pending += taken
        self.kept += len(taken)
        self.dropped += len(data) - len(taken)
        if len(self.pending) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            start = self.kept - len(self.pending)
            self.store.append_output(self.task_id, self.stream, bytes(self.pending), start)
            self.pending.clear()


Started = tuple[dict[str, Any] | None, dict[str, Any] | None]  # the claimed task and its instance (Leases.start)


@dataclass
class Taken:
    """A job's tasks as its worker took them: those claimed to run at once (with what each claim read) and those
    held to run as threads free up; every one leased to this worker, so that they end ABORT if it dies."""

    started: list[tuple[int, Started]]
    later: list[int]

    @property
    def ours(self) -> list[int]:
        """The tasks whose leases this worker renews: those it claimed or holds (not those another took first)."""
        return [task_id for task_id, (task, _) in self.started if task is not None] + self.later


def take(runtime: Runtime, task_ids: list[int]) -> Taken:
    """Claim the tasks a job runs first and hold the others, in one round trip (Leases.begin)."""
    threads = runtime.settings.worker_threads
    first, rest = task_ids[:threads], task_ids[threads:]
    held, started = runtime.store.leases.begin(first, rest, runtime.name, runtime.settings.lease_seconds,
                                               runtime.holder)
    taken = Taken(list(zip(first, started, strict=True)), held)
    runtime.running.update(taken.ours)
    return taken


def take_job(runtime: Runtime, job_id: str, task_ids: list[int]) -> None:
    """Take a job's tasks as a slot takes the job, before RQ marks it started: a worker that dies after that has its
    tasks reaped by their leases (RQ would fail the started job only at its timeout, an hour later, and until then
    nothing would run or end its tasks). The job itself claims nothing again."""
    runtime.taken[job_id] = take(runtime, task_ids)


def release_job(runtime: Runtime, job_id: str) -> None:
    """The job has ended, or never ran (RQ failed it first): what it had not taken over is no longer this worker's.
    Its claimed tasks end ABORT (they never run again); its held ones are still INIT, for the reconciler."""
    taken = runtime.taken.pop(job_id, None)
    if taken is None:
        return
    runtime.running.difference_update(taken.ours)
    for task_id, (task, _) in taken.started:
        if task is not None and task["state"] == TaskState.CURRENT.value:
            try:
                runtime.store.finish(task_id, TaskState.ABORT, error="worker error: its RQ job did not run", rc=None)
            except RedisError:  # it stays CURRENT until this worker is gone and its lease is reaped
                log.exception("task %s: its job did not run, and it could not be ended ABORT", task_id)


def run_tasks(task_ids: list[int]) -> dict[str, int]:
    """The RQ job: its tasks as its slot took them (or taken now, under a plain `rq worker`), run at once (sshd's
    limits are the pool's business), tally states."""
    from rq import get_current_job

    runtime = current_runtime()
    job = get_current_job()
    taken = (runtime.taken.pop(job.id, None) if job else None) or take(runtime, task_ids)
    try:
        states = _run_at_once(runtime, taken.started + [(task_id, None) for task_id in taken.later])
    finally:
        runtime.running.difference_update(taken.ours)
    return {state: states.count(state) for state in set(states)}


def _run_at_once(runtime: Runtime, tasks: list[tuple[int, Started | None]]) -> list[str]:
    """Up to worker_threads of the job's tasks at a time on the shared pool, which has room for every slot's."""
    gate = threading.Semaphore(runtime.settings.worker_threads)
    futures = []
    for task_id, started in tasks:
        gate.acquire()
        future = runtime.threads.submit(run_task, runtime, task_id, started)
        future.add_done_callback(lambda _: gate.release())
        futures.append(future)
    return [future.result() for future in futures]


def run_task(runtime: Runtime, task_id: int, started: Started | None = None) -> str:
    """Claim the task (INIT -> CURRENT, so it never runs twice) unless its job did, run it, record the outcome."""
    store = runtime.store
    if runtime.halted and started is None:  # held but not started when the worker was told to stop now
        store.finish(task_id, TaskState.ABORT, error=runtime.halted, rc=None)
        return TaskState.ABORT.value
    task, instance = started or store.leases.start(task_id, runtime.name, runtime.settings.lease_seconds,
                                                   runtime.holder)
    if task is None:
        return "skipped"
    if task["state"] == TaskState.INIT.value:  # its instance's max_concurrent slots are taken: woken when one frees
        runtime.running.discard(task_id)
        return "waiting"
    try:
        if runtime.halted:  # claimed with its job, told to stop before it ran
            raise Stopped(runtime.halted)
        state, fields = _execute(runtime, task, instance)
    except Stopped as exc:
        state, fields = TaskState.ABORT, {"error": str(exc), "rc": None}
    except Exception as exc:  # a task must never stay CURRENT because of a bug or a lost Redis
        log.exception("task %s failed inside the worker", task_id)
        state, fields = TaskState.ABORT, {"error": f"worker error: {exc}", "rc": None}
    store.finish(task_id, state, started=task["start"], **fields)  # counts its run time too
    if "slot" in task:  # its slot is free: the oldest task waiting for one gets a job
        wake(runtime, task["slot"])
    return state.value


def wake(runtime: Runtime, instance_id: int) -> None:
    """Give the instance's free slots to its waiting tasks; if this fails, the reapers' backstop does it."""
    try:
        wake_waiters(runtime.store, runtime.queue, instance_id, runtime.settings.reconcile_grace)
    except RedisError:
        log.exception("waking the tasks waiting for instance %s failed (the next reaper round tries again)",
                      instance_id)


def _execute(runtime: Runtime, task: dict[str, Any], instance: dict[str, Any] | None
             ) -> tuple[TaskState, dict[str, Any]]:
    """Run a claimed task on its instance (as read with the claim; None: gone)."""
    store, task_id = runtime.store, task["id"]
    blocker = _failed_dependency(store, task.get("run_after") or [])
    if blocker:
        return TaskState.ABORT, {"error": blocker}
    if instance is None:
        return TaskState.ABORT, {"error": f"instance {task['instance']} no longer exists"}
    if instance["state"] != "ACTIVE":
        return TaskState.ABORT, {"error": f"instance {instance['id']} is {instance['state']}"}
    if task.get("kind") in files.KINDS:
        return files.run(runtime, task, _endpoint(instance, task))
    cap = runtime.settings.output_cap
    out, err = (OutputBuffer(store, task_id, stream, cap) for stream in ("stdout", "stderr"))
    renewed = time.monotonic()

    def tick() -> str | None:
        nonlocal renewed
        out.flush()
        err.flush()
        # the task renews its own lease too: the lease keeper is one thread among hundreds, and may be starved
        renew = time.monotonic() - renewed >= runtime.renew_interval
        by = store.tick(task_id, runtime.holder, runtime.settings.lease_seconds if renew else 0)
        if renew:
            renewed = time.monotonic()
        return f"cancelled by {by}" if by else runtime.halted

    fields: dict[str, Any]
    endpoint, run_as = _endpoint(instance, task), task.get("run_as")
    try:
        refused = run_as and runas.refused(runtime.pool, endpoint, run_as, task["timeout"])
        if refused:
            return TaskState.ABORT, {"error": refused, "rc": None}
        rc = runtime.pool.run(endpoint, environment.script(task), out.feed, err.feed, task["timeout"], tick,
                              on_pid=lambda pid: store.record_remote_pid(task_id, pid), run_as=run_as)
        state, fields = TaskState.DONE, {"rc": rc}
    except (Stopped, SshError) as exc:
        state, fields = TaskState.ABORT, {"error": str(exc), "rc": None}
        if isinstance(exc, SshError):
            store.count_ssh_failure(exc.reason)
    out.flush()
    err.flush()
    return state, {**fields, "stdout_dropped": out.dropped, "stderr_dropped": err.dropped}


def _endpoint(instance: dict[str, Any], task: dict[str, Any]) -> Endpoint:
    return Endpoint(instance["ip"], instance["port"], task["user"], instance.get("host_key"))


def reap_lost(runtime: Runtime, task_ids: list[int] | None = None) -> list[int]:
    """End the tasks of dead workers ABORT "worker lost" (those of `task_ids`, or all), after killing what they left
    running on their hosts: the remote process group each recorded when it started."""
    store = runtime.store
    lost = store.lost_tasks()
    if task_ids is not None:
        lost = [task_id for task_id in lost if task_id in task_ids]
    errors = {task["id"]: f"worker lost; {_kill_orphan(runtime, task)}" for task in store.get_tasks(lost)
              if (task.get("remote_pid") or task.get("temporary")) and task["state"] == TaskState.CURRENT.value}
    return store.reap_lost(lost if task_ids is None else task_ids, errors)


def _kill_orphan(runtime: Runtime, task: dict[str, Any]) -> str:
    """Kill its remote process group, or remove an upload's temporary file; say how it went."""
    try:
        instance = runtime.store.get_instance(task["instance"])
    except NotFound:
        left = f"temporary file {task['temporary']}" if "temporary" in task else f"process group {task['remote_pid']}"
        return f"its remote {left} was left: instance {task['instance']} no longer exists"
    if "temporary" in task:
        return files.remove_temporary(runtime, _endpoint(instance, task), task["temporary"])
    return runtime.pool.kill(_endpoint(instance, task), task["remote_pid"], task.get("run_as"))


def _failed_dependency(store: Store, run_after: list[int]) -> str | None:
    for dependency in run_after:
        try:
            state = store.get_task(dependency)["state"]
        except NotFound:
            return f"dependency {dependency} no longer exists"
        if state != TaskState.DONE.value:
            return f"dependency {dependency} ended {state}"
    return None


def on_job_failure(job: Any, connection: Redis, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
    """RQ's failure callback, also run for abandoned jobs: tasks whose lease expired end ABORT, never re-run."""
    reap_lost(current_runtime(), job.args[0])


class LeaseKeeper(threading.Thread):
    """Renews the leases of this worker's running tasks, aborts tasks whose worker died (kill -9), sweeps old ones,
    and reconciles INIT tasks with RQ."""

    def __init__(self, runtime: Runtime, interval: float | None = None) -> None:
        super().__init__(name="wsexec-leases", daemon=True)
        self.runtime = runtime
        self.interval = interval or runtime.renew_interval
        self.stopping = threading.Event()
        # the retention sweep: every minute, or twice per retention period when that is shorter (tests)
        self.purge_interval = min(PURGE_SECONDS, runtime.settings.retention_seconds / 2)
        self.next_purge = 0.0
        grace = runtime.settings.reconcile_grace
        self.reconciler = Reconciler(runtime.store, make_queue(runtime.connection, runtime.settings.queue), grace)
        self.reconcile_interval = min(PURGE_SECONDS, max(grace / 2, 1.0))
        self.next_reconcile = time.monotonic() + self.reconcile_interval
        # reaping opens SSH connections (to kill orphans): in a loop of its own, so renewals never wait for them
        # (a daemon thread: the process may exit while one hangs in Redis retries)
        self.reaper = threading.Thread(target=self._reap_rounds, name="wsexec-reaper", daemon=True)

    def run(self) -> None:
        self.reaper.start()
        while not self.stopping.wait(self.interval):
            try:  # nothing else in this loop: a heartbeat that waits behind a slow sweep is taken for a dead worker
                self.runtime.store.renew_leases(list(self.runtime.running), self.runtime.holder,
                                                self.runtime.settings.lease_seconds)
            except Exception:  # Redis down or restarting: try again next round
                log.exception("lease keeping failed")

    def _reap_rounds(self) -> None:
        while not self.stopping.wait(self.interval):
            self.reap()
            try:
                if time.monotonic() >= self.next_purge:
                    self.next_purge = time.monotonic() + self.purge_interval
                    self.runtime.store.purge_expired()
                if time.monotonic() >= self.next_reconcile:
                    self.next_reconcile = time.monotonic() + self.reconcile_interval
                    self.reconciler.run()
            except Exception:  # Redis down or restarting: the next round tries again
                log.exception("retention sweep or reconciliation failed")

    def reap(self) -> None:
        """Abort the tasks of dead workers, killing their orphans, and fail their RQ jobs; wake the tasks waiting
        for a slot that is free (the backstop of the wake at each task's end: a dead worker's slots, a lost wake)."""
        try:
            reaped = reap_lost(self.runtime)
            if reaped:
                log.warning("tasks %s: their worker is gone, marked ABORT", reaped)
                jobs = {task["job"] for task in self.runtime.store.get_tasks(reaped) if "job" in task}
                fail_abandoned_jobs(self.runtime.connection, self.runtime.settings.queue, jobs)
            for instance_id in self.runtime.store.slots.instances_waiting():
                wake(self.runtime, instance_id)
        except Exception:  # Redis down or restarting: the next round tries again
            log.exception("reaping lost tasks failed")
