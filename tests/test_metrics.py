"""GET /wsexec/metrics: Prometheus text, from Redis at scrape time, so every worker process counts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Api, WorkerProcesses, wait_finished
from wsexec.config import Settings
from wsexec.testing import free_port


def scrape(api: Api, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, labels) -> value."""
    response = api.as_user("viewer").get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = text_string_to_metric_families(response.get_data(as_text=True))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def test_counts_tasks_queue_run_times_failures_and_workers(api: Api, instance: dict[str, Any], ssh_user: str,
                                                           workers: WorkerProcesses, settings: Settings) -> None:
    closed = api.post("/instances", json={"ip": "127.0.0.1", "port": free_port(), "tag": "x", "user": ssh_user}).json
    task = {"name": "m", "tag": "m", "script": "true"}
    created = api.post("/tasks", json=[{**task, "instance": instance["id"]}, {**task, "instance": closed["id"]},
                                       {**task, "instance": instance["id"], "scheduled_at": time.time() + 3600}])
    assert created.status_code == 201, created.json
    before = scrape(api)
    assert before[("wsexec_tasks", (("state", "INIT"),))] == 3
    assert before[("wsexec_queue_jobs", (("state", "queued"),))] == 1  # the two ready tasks: one job
    assert before[("wsexec_workers", ())] == 0

    workers.start(1)
    done, aborted = (wait_finished(api, t["id"]) for t in created.json[:2])
    assert (done["state"], aborted["state"]) == ("DONE", "ABORT")
    after = scrape(api)
    assert {state: after[("wsexec_tasks", (("state", state),))] for state in ("INIT", "CURRENT", "DONE", "ABORT")} == {
        "INIT": 1, "CURRENT": 0, "DONE": 1, "ABORT": 1}
    assert after[("wsexec_queue_jobs", (("state", "queued"),))] == 0
    assert after[("wsexec_queue_jobs", (("state", "scheduled"),))] == 1
    assert after[("wsexec_ssh_failures_total", (("reason", "refused"),))] == 1
    assert after[("wsexec_workers", ())] == 1
    assert after[("wsexec_job_slots", ())] == settings.worker_jobs
    for state in ("DONE", "ABORT"):
        assert after[("wsexec_task_run_seconds_count", (("state", state),))] == 1
        assert after[("wsexec_task_run_seconds_bucket", (("le", "+Inf"), ("state", state)))] == 1
        assert after[("wsexec_task_run_seconds_sum", (("state", state),))] > 0


def test_histogram_buckets_are_cumulative(api: Api, store: Any) -> None:
    for seconds in (0.05, 0.3, 0.3, 7.0, 99999.0):
        store.observe_run_time("DONE", seconds)
    samples = scrape(api)

    def bucket(le: str) -> float:
        return samples[("wsexec_task_run_seconds_bucket", (("le", le), ("state", "DONE")))]

    assert [bucket(le) for le in ("0.1", "0.5", "5.0", "10.0", "14400.0", "+Inf")] == [1, 3, 3, 4, 4, 5]
    assert samples[("wsexec_task_run_seconds_sum", (("state", "DONE"),))] == pytest.approx(100006.65)


def test_openmetrics_when_asked(api: Api) -> None:
    response = api.as_user("viewer").get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


@pytest.mark.parametrize("auth, status", [(None, 401), (("viewer", "wrong"), 401)])
def test_needs_credentials(api: Api, auth: Any, status: int) -> None:
    assert api.get("/metrics", auth=auth).status_code == status
