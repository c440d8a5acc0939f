"""GET /wsexec/metrics: Prometheus exposition, read from Redis at scrape time.

Needs credentials like every route but /health (viewer is enough: give Prometheus a viewer bearer token).
Everything is read from Redis when scraped, so any gunicorn process answers for every worker on every machine;
only the open streams are the answering process's own (a stream is a greenlet and a connection of that process).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

from flask import Response, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from rq import Queue

from wsexec import context, jobs
from wsexec.blueprint import Blueprint
from wsexec.sse import StreamSlots
from wsexec.store import FINISHED_STATES, RUN_TIME_BUCKETS, Store

blp = Blueprint("metrics", __name__, description="Prometheus metrics (viewer role)")

FORMATS = ("text/plain", "application/openmetrics-text")


class WsexecCollector(Collector):
    """Tasks by state, run times, RQ queue depth, SSH failures and live workers, as stored in Redis now."""

    def __init__(self, store: Store, queue: Queue, streams: StreamSlots) -> None:
        self.store, self.queue, self.streams = store, queue, streams

    def collect(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily("wsexec_tasks", "Tasks stored, by state", labels=["state"])
        for state, count in self.store.task_counts().items():
            tasks.add_metric([state], count)
        yield tasks

        run = HistogramMetricFamily("wsexec_task_run_seconds", "Run time of tasks, by how they ended", labels=["state"])
        for state in FINISHED_STATES:
            counts, total = self.store.run_times(state)
            bounds = [floatToGoString(bound) for bound in RUN_TIME_BUCKETS]
            run.add_metric([state.value], list(zip(bounds, itertools.accumulate(counts), strict=True)), total)
        yield run

        queued = GaugeMetricFamily("wsexec_queue_jobs", "RQ jobs (each runs some tasks), by state", labels=["state"])
        for state, count in jobs.job_counts(self.queue).items():
            queued.add_metric([state], count)
        yield queued

        failures = CounterMetricFamily(
            "wsexec_ssh_failures", "SSH failures that ended a task, by reason (timeout, refused, auth, host_key...)",
            labels=["reason"],
        )
        for reason, count in sorted(self.store.ssh_failures().items()):
            failures.add_metric([reason], count)
        yield failures

        yield GaugeMetricFamily("wsexec_workers", "worker processes alive on the queue",
                                value=jobs.workers_seen(self.queue))
        yield GaugeMetricFamily("wsexec_job_slots", "RQ workers (job slots) alive on the queue",
                                value=jobs.job_slots_seen(self.queue))
        labels = {"pid": str(os.getpid())}  # this web process's, unlike the rest
        for name, help_text, value in (
            ("wsexec_web_streams_open", "SSE and follow streams this web process holds open", self.streams.open),
            ("wsexec_web_streams_max", "its cap (WSEXEC_EVENTS_STREAMS_MAX; beyond: 503)", self.streams.limit),
        ):
            gauge = GaugeMetricFamily(name, help_text, labels=list(labels))
            gauge.add_metric(list(labels.values()), value)
            yield gauge


@blp.route("")
@blp.doc(
    responses={
        "200": {
            "description": "Prometheus text format (OpenMetrics if the Accept header asks for it)",
            "content": {media: {"schema": {"type": "string"}} for media in FORMATS},
        }
    }
)
def metrics() -> Response:
    """The metrics, for Prometheus to scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WsexecCollector(context.store(), context.queue(), context.streams()))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(registry), status=200, content_type=content_type)
