"""/wsexec/schedules against real Redis, sshd and worker processes: CRUD and validation, roles, exactly one run per fire
time with several schedulers, overlap, what happens after the schedulers were away, tasks that say their schedule.

Fires with a chosen `now` go through the workers' own ScheduleLoop in this process (its clock is the one argument it
takes instead of Redis's); the others through real `python -m workers` processes ticking by Redis's clock."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from typing import Any

import pytest
from redis import Redis

from tests.helpers import Api, WorkerProcesses, wait_finished, wait_for
from workers.schedules import ScheduleLoop
from wsexec import jobs
from wsexec.config import Settings
from wsexec.store import Store


def schedule_body(instance: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid POST /schedules body: every minute, `echo tick` on the instance; None drops a default."""
    template = {"instance": instance["id"], "script": "echo tick", **fields.pop("template", {})}
    body = {"name": "tick", "interval": 60, "template": template, **fields}
    body["template"] = {k: v for k, v in template.items() if v is not None}
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def loop(store: Store, redis: Redis, settings: Settings) -> ScheduleLoop:
    """A worker's scheduler loop, driven by hand."""
    return ScheduleLoop(store, jobs.make_queue(redis, settings.queue), settings, "test-loop")


def tasks_of(api: Api, schedule_id: int) -> list[dict[str, Any]]:
    listing = api.get(f"/tasks?schedule={schedule_id}&page_size=100").json
    return listing["results"]


def test_crud(api: Api, instance: dict[str, Any]) -> None:
    created = api.created("/schedules", schedule_body(instance, name="nightly", cron="30 2 * * *",
                                                      interval=None, timezone="Europe/Berlin"))
    assert created["cron"] == "30 2 * * *" and "interval" not in created and created["enabled"] is True
    assert created["overlap"] == "skip" and created["catch_up"] is False and created["created_by"] == "admin"
    assert created["template"]["instance"] == instance["id"] and created["next_run"] % 60 == 0
    assert created["last_run"] is None and created["missed"] == 0
    sid = created["id"]
    assert api.get(f"/schedules/{sid}").json == created
    assert api.get("/schedules").json["results"] == [created]

    # cron replaced by an interval; disabled: no next_run
    changed = api.patch(f"/schedules/{sid}", json={"interval": 300, "enabled": False}).json
    assert changed["interval"] == 300 and "cron" not in changed and changed["next_run"] is None
    enabled = api.put(f"/schedules/{sid}", json={"enabled": True}).json
    assert enabled["next_run"] is not None and enabled["timezone"] == "Europe/Berlin"

    assert api.delete(f"/schedules/{sid}").status_code == 204
    gone = api.get(f"/schedules/{sid}")
    assert gone.status_code == 404 and gone.json["error"]
    actions = [entry["action"] for entry in api.get("/audit").json["results"]]
    assert actions[:4] == ["schedule.delete", "schedule.update", "schedule.update", "schedule.create"]


@pytest.mark.parametrize(("fields", "field"), [
    ({"cron": "61 * * * *", "interval": None}, "cron"),
    ({"cron": "* * * *", "interval": None}, "cron"),
    ({"cron": "0 0 31 2 *", "interval": None}, "cron"),
    ({"cron": "@reboot", "interval": None}, "cron"),
    ({"cron": "0 * * * *"}, "cron"),  # and an interval
    ({"interval": None}, "cron"),  # neither
    ({"interval": 0}, "interval"),
    ({"interval": 1.5}, "interval"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"overlap": "queue"}, "overlap"),
    ({"template": {"script": ""}}, "template"),
    ({"template": {"run_after": [1]}}, "template"),
    ({"template": {"scheduled_at": 1}}, "template"),
    ({"template": {"state": "DONE"}}, "template"),
    ({"template": {"timeout": 0}}, "template"),
    ({"template": {"user": "Root!"}}, "template"),
    ({"template": {"target": {"tag": "test"}}}, "template"),  # and an instance
    ({"name": ""}, "name"),
])
def test_invalid_schedules_are_422_naming_the_field(api: Api, instance: dict[str, Any], fields: dict[str, Any],
                                                    field: str) -> None:
    body = schedule_body(instance, **fields)
    response = api.post("/schedules", json=body)
    assert response.status_code == 422, response.json
    assert response.json["error"] and field in response.json["detail"], response.json
    assert api.get("/schedules").json["count"] == 0


def test_a_template_post_tasks_would_refuse_is_refused(api: Api, instance: dict[str, Any]) -> None:
    missing = api.post("/schedules", json=schedule_body({"id": 999}))
    assert missing.status_code == 422 and "instance 999 does not exist" in missing.json["error"]
    no_tag = api.post("/schedules", json=schedule_body(instance, template={"instance": None, "target": {"tag": "x"}}))
    assert no_tag.status_code == 422, no_tag.json
    assert api.post("/tasks", json={"name": "t", "tag": "t", "instance": instance["id"], "script": "id",
                                    "user": "root"}).status_code == 403
    root = api.post("/schedules", json=schedule_body(instance, template={"user": "root"}))
    assert root.status_code == 403 and "may not log in" in root.json["error"]
    huge = api.post("/schedules", json=schedule_body(instance, template={"timeout": 10**6}))
    assert huge.status_code == 422 and "timeout" in huge.json["error"]
    sid = api.created("/schedules", schedule_body(instance))["id"]
    patched = api.patch(f"/schedules/{sid}", json={"template": {"instance": 999, "script": "true"}})
    assert patched.status_code == 422 and api.get(f"/schedules/{sid}").json["template"]["instance"] == instance["id"]
    bad = api.patch(f"/schedules/{sid}", json={"cron": "nope"})
    assert bad.status_code == 422 and "cron" in bad.json["detail"]
    assert api.patch("/schedules/999", json={"enabled": False}).status_code == 404


@pytest.mark.parametrize(("user", "read", "write"), [("viewer", 200, 403), ("operator", 200, 403), ("admin", 200, 201)])
def test_roles(api: Api, instance: dict[str, Any], user: str, read: int, write: int) -> None:
    sid = api.created("/schedules", schedule_body(instance))["id"]
    as_user = api.as_user(user)
    assert as_user.get("/schedules").status_code == read
    assert as_user.get(f"/schedules/{sid}").status_code == read
    assert as_user.post("/schedules", json=schedule_body(instance)).status_code == write
    changed = as_user.patch(f"/schedules/{sid}", json={"enabled": False})
    assert changed.status_code == (200 if user == "admin" else 403)
    assert as_user.delete(f"/schedules/{sid}").status_code == (204 if user == "admin" else 403)
    anonymous = api.client.get("/wsexec/schedules")
    assert anonymous.status_code == 401 and anonymous.json["error"]


def test_a_fire_makes_tasks_that_carry_the_schedule(api: Api, instance: dict[str, Any], loop: ScheduleLoop,
                                                    workers: WorkerProcesses) -> None:
    schedule = api.created("/schedules", schedule_body(instance, interval=10))
    due_at = schedule["next_run"]
    assert loop.tick(due_at - 0.5) and tasks_of(api, schedule["id"]) == []  # not due yet
    loop.tick(due_at + 0.2)
    (task,) = tasks_of(api, schedule["id"])
    assert (task["schedule"], task["fire_time"], task["name"], task["tag"]) == (schedule["id"], due_at, "tick",
                                                                                  "schedule")
    assert task["created_by"] == f"schedule:{schedule['id']}" and task["user"] == instance["user"]
    after = api.get(f"/schedules/{schedule['id']}").json
    assert (after["last_run"], after["last_outcome"], after["last_tasks"]) == (due_at, "created", [task["id"]])
    assert after["next_run"] == due_at + 10
    workers.start(1)
    assert wait_finished(api, task["id"])["stdout"] == "tick\n"
    entry = api.get("/audit").json["results"][0]
    assert (entry["action"], entry["user"], entry["target"]) == ("schedule.fire", "scheduler",
                                                                 f"schedule:{schedule['id']}")
    assert entry["detail"]["outcome"] == "created" and entry["detail"]["tasks"] == [task["id"]]
    api.create_task(instance)  # a task of no schedule is not in the filter
    assert [t["id"] for t in tasks_of(api, schedule["id"])] == [task["id"]]


def test_a_fan_out_template_makes_a_task_per_instance_of_the_tag_at_each_fire(
        api: Api, instance: dict[str, Any], loop: ScheduleLoop) -> None:
    schedule = api.created("/schedules", schedule_body(instance, template={"instance": None,
                                                                           "target": {"tag": "test"}}))
    other = api.created("/instances", {"ip": "127.0.1.1", "port": 22, "tag": "test", "user": "nobody"})
    loop.tick(schedule["next_run"] + 0.1)
    tasks = tasks_of(api, schedule["id"])
    assert sorted(t["instance"] for t in tasks) == [instance["id"], other["id"]]
    assert len({t["batch"] for t in tasks}) == 1


def test_many_schedulers_racing_for_one_fire_make_it_once(api: Api, instance: dict[str, Any], store: Store,
                                                          settings: Settings, redis: Redis) -> None:
    schedule = api.created("/schedules", schedule_body(instance, interval=5, overlap="allow"))
    loops = [ScheduleLoop(Store.from_settings(Redis.from_url(settings.redis_url), settings),
                          jobs.make_queue(redis, settings.queue), settings, f"loop-{n}") for n in range(8)]
    outcomes: list[str] = []
    start = threading.Barrier(len(loops))

    def race(loop: ScheduleLoop) -> None:
        start.wait()
        fired = loop.fire(schedule["id"], schedule["next_run"] + 0.1)
        outcomes.append(fired.outcome if fired else "none")

    threads = [threading.Thread(target=race, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # one made it; the others lost the claim ("") or read the schedule once it had moved on (None: not due)
    assert outcomes.count("created") == 1 and set(outcomes) <= {"created", "", "none"}, outcomes
    assert len(tasks_of(api, schedule["id"])) == 1
    fires = [e for e in api.get("/audit").json["results"] if e["action"] == "schedule.fire"]
    assert len(fires) == 1


def test_worker_processes_run_an_every_second_schedule_once_per_fire_time(
        api: Api, instance: dict[str, Any], workers: WorkerProcesses) -> None:
    workers.start(3)
    schedule = api.created("/schedules", schedule_body(instance, cron="* * * * * *", interval=None, overlap="allow",
                                                       template={"script": "true"}))
    wait_for(lambda: len(tasks_of(api, schedule["id"])) >= 5, timeout=60)
    api.patch(f"/schedules/{schedule['id']}", json={"enabled": False})
    tasks = tasks_of(api, schedule["id"])
    per_fire = Counter(task["fire_time"] for task in tasks)
    assert len(per_fire) >= 5 and set(per_fire.values()) == {1}, per_fire
    fires = [e["detail"] for e in api.get("/audit?page_size=100").json["results"] if e["action"] == "schedule.fire"]
    assert Counter(d["fire_time"] for d in fires if d["outcome"] == "created") == per_fire
    assert len({d["worker"] for d in fires}) >= 1
    for task in tasks:
        assert wait_finished(api, task["id"], timeout=60)["state"] == "DONE"


def test_overlap_skip_waits_for_the_previous_run_and_allow_does_not(api: Api, instance: dict[str, Any],
                                                                    loop: ScheduleLoop) -> None:
    skip = api.created("/schedules", schedule_body(instance, interval=10))
    allow = api.created("/schedules", schedule_body(instance, interval=10, overlap="allow"))
    first = skip["next_run"]
    for step in (0, 10):  # no worker runs: the first fire's task stays INIT
        for schedule in (skip, allow):  # each from its own next_run: the two POSTs may straddle a fire time
            loop.fire(schedule["id"], schedule["next_run"] + step + 0.1)
    assert len(tasks_of(api, skip["id"])) == 1 and len(tasks_of(api, allow["id"])) == 2
    skipped = api.get(f"/schedules/{skip['id']}").json
    assert skipped["last_outcome"] == "skipped" and "still going" in skipped["last_error"]
    assert skipped["last_run"] == first + 10 and skipped["next_run"] == first + 20
    api.patch(f"/tasks/{tasks_of(api, skip['id'])[0]['id']}", json={"state": "ABORT"})
    loop.fire(skip["id"], first + 20.1)
    assert len(tasks_of(api, skip["id"])) == 2
    assert api.get(f"/schedules/{skip['id']}").json["last_error"] is None


def test_a_slow_script_is_never_run_twice_at_once_with_overlap_skip(api: Api, instance: dict[str, Any],
                                                                   workers: WorkerProcesses) -> None:
    workers.start(2)
    schedule = api.created("/schedules", schedule_body(instance, cron="* * * * * *", interval=None,
                                                       template={"script": "sleep 2.5"}))
    wait_for(lambda: api.get(f"/schedules/{schedule['id']}").json["last_outcome"] == "skipped", timeout=60)
    wait_for(lambda: len(tasks_of(api, schedule["id"])) >= 2, timeout=60)
    api.patch(f"/schedules/{schedule['id']}", json={"enabled": False})
    runs = sorted((wait_finished(api, t["id"], timeout=60) for t in tasks_of(api, schedule["id"])),
                  key=lambda t: t["fire_time"])
    assert all(run["state"] == "DONE" for run in runs)
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later["created_at"] >= earlier["end"], (earlier, later)  # made only once the previous run had ended


def test_after_downtime_missed_fires_are_not_replayed(api: Api, instance: dict[str, Any], loop: ScheduleLoop) -> None:
    loop.settings = dataclasses.replace(loop.settings, schedule_grace=10)
    plain = api.created("/schedules", schedule_body(instance, interval=60))
    catching = api.created("/schedules", schedule_body(instance, interval=60, catch_up=True))
    for schedule in (plain, catching):
        loop.fire(schedule["id"], schedule["next_run"] + 3600 + 30)  # an hour away, back 30 s after a fire time
    assert tasks_of(api, plain["id"]) == []
    missed = api.get(f"/schedules/{plain['id']}").json
    assert missed["last_outcome"] == "missed" and missed["missed"] == 61 and missed["last_run"] is None
    assert missed["next_run"] == plain["next_run"] + 3660
    (task,) = tasks_of(api, catching["id"])
    assert task["fire_time"] == catching["next_run"] + 3600  # the latest only
    caught = api.get(f"/schedules/{catching['id']}").json
    assert caught["missed"] == 60 and caught["next_run"] == catching["next_run"] + 3660


def test_a_stopped_scheduler_misses_fires_and_a_restarted_one_goes_on(
        api: Api, instance: dict[str, Any], settings: Settings) -> None:
    """The same with real workers: none runs the loop for a while, then one does."""
    schedule = api.created("/schedules", schedule_body(instance, interval=1, catch_up=True,
                                                       template={"script": "true"}))
    idle = WorkerProcesses(dataclasses.replace(settings, scheduler=0, schedule_grace=0.5))
    busy = WorkerProcesses(dataclasses.replace(settings, schedule_grace=0.5))
    try:
        idle.start(1)
        wait_for(lambda: api.get("/health").status_code == 200, timeout=30)  # up, and not firing
        start = api.get(f"/schedules/{schedule['id']}").json["next_run"]
        wait_for(lambda: Redis.from_url(settings.redis_url).time()[0] >= start + 3, timeout=30)
        assert tasks_of(api, schedule["id"]) == []  # nobody fires
        busy.start(1)
        wait_for(lambda: api.get(f"/schedules/{schedule['id']}").json["missed"] > 0, timeout=60)
    finally:
        busy.stop()
        idle.stop()
    after = api.get(f"/schedules/{schedule['id']}").json
    first = min(tasks_of(api, schedule["id"]), key=lambda t: t["fire_time"])
    assert first["fire_time"] >= start + 3 and after["missed"] >= 3  # the gap's fires were not replayed


def test_a_fire_that_cannot_make_its_tasks_says_why(api: Api, instance: dict[str, Any], loop: ScheduleLoop) -> None:
    schedule = api.created("/schedules", schedule_body(instance))
    assert api.delete(f"/instances/{instance['id']}").status_code == 204
    loop.fire(schedule["id"], schedule["next_run"] + 0.1)
    after = api.get(f"/schedules/{schedule['id']}").json
    assert after["last_outcome"] == "error" and f"instance {instance['id']} does not exist" in after["last_error"]
    assert after["next_run"] == schedule["next_run"] + 60 and tasks_of(api, schedule["id"]) == []
    entry = api.get("/audit").json["results"][0]
    assert entry["detail"]["outcome"] == "error" and "does not exist" in entry["detail"]["error"]


def test_a_fire_prepared_from_a_schedule_changed_meanwhile_is_refused(api: Api, instance: dict[str, Any],
                                                                      store: Store, loop: ScheduleLoop) -> None:
    schedule = api.created("/schedules", schedule_body(instance))
    stale = store.schedules.get(schedule["id"])
    api.patch(f"/schedules/{schedule['id']}", json={"template": {"instance": instance["id"], "script": "echo new"}})
    fired = store.schedules.fire(stale, loop_due(stale), [], "", {"detail": {}}, (10, 10**6), stale["next_run"],
                                 "job-", 1)
    assert fired.outcome == "" and tasks_of(api, schedule["id"]) == []
    loop.fire(schedule["id"], schedule["next_run"] + 0.1)
    (task,) = tasks_of(api, schedule["id"])
    assert api.get(f"/tasks/{task['id']}").json["script"] == "echo new"


def loop_due(schedule: dict[str, Any]) -> Any:
    from wsexec.cron import due
    from wsexec.schedules.template import timetable

    return due(timetable(schedule), schedule["next_run"], schedule["next_run"] + 0.1, 60, False)
