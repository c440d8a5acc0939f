"""The webhook loop of every worker process: task ends become deliveries, and deliveries are POSTed, in a thread of
their own.

Why a thread draining Redis rather than a POST at the task's end or a second RQ queue: a task's end is recorded
first and never waits for a receiver (a slow or dead one only holds up this thread); the ends are read from the
events stream that every state change writes atomically, so cancels and reaped tasks notify too, and a delivery is a
Redis record due at a time (not a job in memory), so retries with backoff survive a worker restart. Each end is
handed to one process by a consumer group and each due delivery is leased to one sender (wsexec.store.webhooks), so
under normal operation nothing is delivered twice; a sender that dies mid-POST leaves its delivery to be tried again
after the lease (at least once).
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from workers.loop import Loop
from wsexec import notify
from wsexec.config import Settings
from wsexec.store import Store

log = logging.getLogger(__name__)

IDLE_BLOCK_MS = 1000  # how long one read of the events stream waits when no delivery is due sooner
SEND_MAX = 20  # deliveries sent in a row before the loop reads task ends again
STALE_LOOK_SECONDS = 5.0  # how often the loop looks for ends a dead reader left (claimable after a minute idle)
ANSWER_MAX = 4096  # bytes of a receiver's answer read (the rest is ignored)
# after a read that found events, the next waits this long: a burst of task ends is then read in a few rounds rather
# than one round trip per event (every task makes three), for deliveries at most this much later
LINGER_SECONDS = 0.05


class WebhookLoop(Loop):
    name = "webhooks"

    def __init__(self, store: Store, settings: Settings, name: str) -> None:
        super().__init__()
        self.store, self.settings, self.consumer = store, settings, name
        self.hooks = notify.global_hooks(settings.webhooks)
        self.allowed = notify.allow_list(settings.webhook_allow)
        self.joined = False
        self.next_due: int | None = None  # ms: when the first delivery is due, as last read (None: none queued)
        self.handled: list[str] = []  # the events turned into deliveries, acknowledged with the next read
        self.next_stale_look = 0.0
        self.events_read = 0  # by the last dispatch

    @property
    def lease_ms(self) -> int:
        """Longer than one attempt can take (connect, send, a few reads, each within the timeout)."""
        return int((4 * self.settings.webhook_timeout + 10) * 1000)

    def start(self) -> None:
        """Join the consumer group before any task of this process can end (an end before it would go unseen)."""
        try:
            self.store.webhooks.join()
            self.joined = True
        except RedisError:  # Redis away: the loop joins once it is back
            log.exception("webhook loop: cannot join the events' consumer group yet")
        super().start()

    def step(self) -> float:
        """Read the ends (waiting at most until the next delivery is due), then send what is due; a pause only
        after events were read (LINGER_SECONDS), so that those following come in one read.

        Every task has three events, so a round costs few round trips: the read (with the last round's
        acknowledgement and the next due time) and, for ends, which have a notify of their own (none is read whole
        without global hooks); a claim only when a delivery is due."""
        if not self.joined:
            self.store.webhooks.join()
            self.joined = True
        self.dispatch(self._block_ms())
        if self.next_due is not None and self.next_due <= int(time.time() * 1000):
            self.send_due()
            self.next_due = self.store.webhooks.next_due_ms()
            return 0.0
        return LINGER_SECONDS if self.events_read else 0.0

    def stopped(self) -> None:
        try:
            self.store.webhooks.done(self.handled)
            self.store.webhooks.leave(self.consumer)
        except RedisError:  # its name stays in the group, harmless
            pass

    def _block_ms(self) -> int:
        if self.next_due is None:
            return IDLE_BLOCK_MS
        return max(1, min(IDLE_BLOCK_MS, self.next_due - int(time.time() * 1000)))

    def dispatch(self, block_ms: int) -> int:
        """Turn the task ends read into deliveries; acknowledged once stored. The deliveries added."""
        stale = time.monotonic() >= self.next_stale_look
        if stale:
            self.next_stale_look = time.monotonic() + STALE_LOOK_SECONDS
        events, self.next_due = self.store.webhooks.read(self.consumer, block_ms, stale=stale, ack=self.handled)
        self.handled, self.events_read = [], len(events)
        ended = [event.fields["task"] for event in events if event.type == "finished"]
        if ended and not self.hooks:  # only the tasks with a notify of their own want a delivery
            ended = [task_id for task_id, own in zip(ended, self.store.webhooks.notified(ended), strict=True) if own]
        added = sum(self._deliveries(task) for task in self.store.get_tasks(ended)) if ended else 0
        if added:  # due now
            self.next_due = int(time.time() * 1000)
        self.handled = [event.id for event in events]
        return added

    def _deliveries(self, task: dict[str, Any]) -> int:
        result = notify.outcome(task["state"], task.get("rc"))
        body = {"event": "task.finished", "outcome": result, "task": notify.task_summary(task)}
        wanted = [(f"t{task['id']}-g{n}", hook) for n, hook in enumerate(self.hooks)]
        own = task.get("notify")
        if own and not task.get("batch"):
            wanted.append((f"t{task['id']}-n", own))
        about = {"task": task["id"], "batch": task.get("batch"), "schedule": task.get("schedule")}
        added = sum(self._add(delivery_id, hook, result, body, about) for delivery_id, hook in wanted)
        if own and task.get("batch"):
            added += self._batch(task["batch"], own)
        return added

    def _batch(self, batch: str, hook: dict[str, Any]) -> int:
        """The batch's webhook once its last task has ended: whichever end is read last sees them all ended (counted
        from the indexes, so a fan-out to many instances is read whole only then)."""
        if self.store.tasks.batch_active(batch):
            return 0
        tasks = self.store.batch_tasks(batch)
        outcomes = [notify.outcome(task["state"], task.get("rc")) for task in tasks]
        result = notify.batch_outcome(outcomes)
        states = {state: sum(1 for task in tasks if task["state"] == state) for state in ("DONE", "ABORT")}
        body = {"event": "batch.finished", "outcome": result,
                "batch": {"id": batch, "total": len(tasks), "states": states,
                          "failed": outcomes.count("FAILED"), "tasks": [notify.task_summary(t) for t in tasks]}}
        about = {"task": None, "batch": batch, "schedule": tasks[0].get("schedule")}
        return self._add(f"b{batch}-n", hook, result, body, about)

    def _add(self, delivery_id: str, hook: dict[str, Any], result: str, body: dict[str, Any],
             about: dict[str, Any]) -> int:
        """A delivery of `body` if the hook is for this outcome (once: the id says what it reports)."""
        if result not in hook["on"]:
            return 0
        now = time.time()
        record = {"id": delivery_id, "url": hook["url"], "event": body["event"], "outcome": result, **about,
                  "state": "pending", "attempts": 0, "statuses": [], "last_error": None, "created": now,
                  "last_attempt": None, "next_attempt": now, "delivered_at": None,
                  "body": json.dumps({**body, "delivery": delivery_id}, separators=(",", ":"))}
        return int(self.store.webhooks.add(delivery_id, record, int(now * 1000), self.settings.webhook_deliveries_max))

    def send_due(self) -> int:
        """Try the deliveries due now (up to SEND_MAX before reading ends again), taking each just before its POST so
        its lease covers that POST alone; how many were tried."""
        tried = 0
        while tried < SEND_MAX and not self.stopping.is_set():
            taken = self.store.webhooks.claim(int(time.time() * 1000), self.lease_ms, count=1)
            if not taken:
                break
            tried += 1
            delivery = self.store.webhooks.get(taken[0])
            if delivery is None:  # its record is gone: so goes its place in the queue
                self.store.webhooks.record(taken[0], {}, None)
            else:
                self.attempt(delivery)
        return tried

    def attempt(self, delivery: dict[str, Any]) -> None:
        """One POST and its outcome: delivered on a 2xx, else tried again after the backoff or (the last) given up."""
        started = time.time()
        status, error = self._post(delivery)
        attempts = delivery["attempts"] + 1
        changes: dict[str, Any] = {"attempts": attempts, "statuses": [*delivery["statuses"], status],
                                   "last_attempt": started, "last_error": error}
        next_ms = None
        if error is None:
            changes.update(state="delivered", delivered_at=time.time(), next_attempt=None)
        elif attempts >= self.settings.webhook_attempts or status == 0:
            changes.update(state="failed", next_attempt=None)
            log.warning("webhook delivery %s to %s given up after %d attempt(s): %s", delivery["id"], delivery["url"],
                        attempts, error)
        else:
            when = time.time() + notify.backoff(attempts, self.settings.webhook_backoff)
            changes.update(next_attempt=when)
            next_ms = int(when * 1000)
        self.store.webhooks.record(delivery["id"], changes, next_ms)

    def _post(self, delivery: dict[str, Any]) -> tuple[int | None, str | None]:
        """(HTTP status or None if none came, or 0 if never to be sent; the error or None when delivered)."""
        url = delivery["url"]
        refused = notify.url_refused(url, self.allowed)  # the settings may have changed since it was accepted
        if refused is None and not self.settings.webhook_secret:
            refused = "WSEXEC_WEBHOOK_SECRET is not set"
        if refused:
            return 0, f"not sent: {refused}"
        body = delivery["body"].encode()
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "wsexec-webhook",
                   notify.SIGNATURE_HEADER: notify.sign(self.settings.webhook_secret, timestamp, body),
                   notify.TIMESTAMP_HEADER: str(timestamp), notify.DELIVERY_HEADER: delivery["id"],
                   notify.EVENT_HEADER: delivery["event"]}
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timeout = self.settings.webhook_timeout
        connection: http.client.HTTPConnection = (
            http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=ssl.create_default_context())
            if parts.scheme == "https" else http.client.HTTPConnection(parts.netloc, timeout=timeout))
        try:  # http.client follows no redirect: a 3xx is an answer like any other (not delivered)
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read(ANSWER_MAX)
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        if 200 <= answer.status < 300:
            return answer.status, None
        return answer.status, f"HTTP {answer.status} {answer.reason}"[:200]
