"""All Redis access, one concept per module (as rq splits its persistence); Store is the facade the app uses.

Shared by the web app and the workers, so nothing here imports Flask. Every key is built in keys.py, every
multi-key write is a Lua script in scripts.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis import Redis

from wsexec.store.admission import Admission
from wsexec.store.audit import Audit
from wsexec.store.connection import connect
from wsexec.store.events import Event, Events
from wsexec.store.files import Files
from wsexec.store.idempotency import Idempotency
from wsexec.store.instances import Instances
from wsexec.store.leases import Leases
from wsexec.store.limits import Limits
from wsexec.store.metrics import RUN_TIME_BUCKETS, Metrics
from wsexec.store.notes import Notes
from wsexec.store.output import Output
from wsexec.store.registrations import Registrations
from wsexec.store.retention import Retention
from wsexec.store.schedules import Schedules
from wsexec.store.slots import Slots
from wsexec.store.states import FINISHED_STATES, RUNNING_STATES, STREAMS, InstanceState, TaskState
from wsexec.store.tasks import Tasks
from wsexec.store.waits import Waits
from wsexec.store.webhooks import Webhooks
from wsexec.store.websh import Sessions

if TYPE_CHECKING:
    from wsexec.config import Settings

__all__ = ["FINISHED_STATES", "RUNNING_STATES", "RUN_TIME_BUCKETS", "STREAMS", "Event", "InstanceState", "Store",
           "TaskState", "connect"]


class Store:
    """The wsexec data model on one Redis connection: a part per concept, and today's call sites as short names."""

    def __init__(self, redis: Redis, output_cap: int = 1024 * 1024, retention_seconds: float = 30 * 86400,
                 events_window: int = 10_000) -> None:
        self._redis = redis
        self.instances = Instances(redis)
        self.notes = Notes(redis)
        self.registrations = Registrations(redis)
        self.tasks = Tasks(redis, retention_seconds, events_window)
        self.layout = self.tasks.layout
        self.events = Events(redis)
        self.schedules = Schedules(redis, self.tasks)
        self.waits = Waits(redis, self.tasks, self.events)
        self.leases = Leases(redis, self.tasks)
        self.output = Output(redis, output_cap)
        self.files = Files(redis, self.tasks.expire_seconds)
        self.retention = Retention(redis, retention_seconds)
        self.audit = Audit(redis)
        self.idempotency = Idempotency(redis)
        self.metrics = Metrics(redis)
        self.limits = Limits(redis)
        self.slots = Slots(redis)
        self.admission = Admission(redis, self.instances, self.tasks, self.limits)
        self.webhooks = Webhooks(redis)
        self.websh = Sessions(redis, retention_seconds)
        # today's call sites keep their short names: each is the bound method of the part that owns it
        self.create_instance = self.instances.create
        self.get_instance = self.instances.get
        self.list_instances = self.instances.page
        self.active_instances_with_tag = self.instances.active_with_tag
        self.update_instance = self.instances.update
        self.delete_instance = self.instances.delete
        self.create_tasks = self.tasks.create
        self.get_task = self.tasks.get
        self.task_exists = self.tasks.exists
        self.get_tasks = self.tasks.get_many
        self.list_tasks = self.tasks.page
        self.batch_tasks = self.tasks.batch
        self.update_task = self.tasks.update
        self.delete_task = self.tasks.delete
        self.abort_queued = self.tasks.abort_queued
        self.request_cancel = self.tasks.request_cancel
        self.cancel_requested_by = self.tasks.cancel_requested_by
        self.record_remote_pid = self.tasks.record_remote_pid
        self.finish = self.tasks.finish
        self.hold = self.leases.hold
        self.claim = self.leases.claim
        self.renew_leases = self.leases.renew
        self.tick = self.leases.tick
        self.reap_lost = self.leases.reap_lost
        self.lost_tasks = self.leases.lost
        self.append_output = self.output.append
        self.read_output = self.output.read
        self.output_snapshot = self.output.snapshot
        self.wait_output = self.output.wait
        self.until_finished = self.waits.until_finished
        self.get_tasks_with_output = self.waits.with_output
        self.output_key = self.output.key
        self.purge_expired = self.retention.purge_expired
        self.add_audit = self.audit.add
        self.audit_page = self.audit.page
        self.idempotency_begin = self.idempotency.begin
        self.idempotency_save = self.idempotency.save
        self.idempotency_release = self.idempotency.release
        self.idempotency_key = self.idempotency.key
        self.task_counts = self.metrics.task_counts
        self.observe_run_time = self.metrics.observe_run_time
        self.run_times = self.metrics.run_times
        self.count_ssh_failure = self.metrics.count_ssh_failure
        self.ssh_failures = self.metrics.ssh_failures

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> Store:
        """The store as settings configure it: output cap, retention and the events window."""
        return cls(redis, settings.output_cap, settings.retention_seconds, settings.events_window)

    def ping(self) -> bool:
        """Redis answers (raises RedisError if not)."""
        return bool(self._redis.ping())
