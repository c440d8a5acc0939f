"""The console in a real headless Chromium against real gunicorn, a worker and sshd: what a user clicks and sees.

Every wait is for something to appear (tests/browser.py, 30 s at most); where the order of two things matters (output
shown before the task ends) the test itself holds the task until it has looked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser import Browser
from tests.helpers import Api, wait_finished
from wsexec.testing import SshServer


def test_login_refused_then_accepted(console: Browser) -> None:
    console.open("tasks")
    console.find("#login-form")
    console.find("#login-user").send_keys("admin")
    console.find("#login-password").send_keys("wrong")
    console.find("#login-submit").click()
    console.wait_text("#login-error", "401 authentication required")
    console.screenshot("login")
    console.login("admin")
    assert [a.text for a in console.all("#nav a")] == ["Instances", "Tasks", "Run", "Terminals", "Audit"]
    assert console.js("return document.cookie") == ""  # the credentials are in sessionStorage, not a cookie
    assert console.js("return sessionStorage.getItem('wsexec.authorization')").startswith("Basic ")


def test_admin_declares_an_instance_and_leaves_a_note(console: Browser, api: Api, sshd: SshServer,
                                                      ssh_user: str) -> None:
    console.login("admin", "instances")
    form = console.find("#instance-declare")
    form.find_element("name", "ip").send_keys(sshd.host)
    form.find_element("name", "port").send_keys(str(sshd.port))
    form.find_element("name", "tag").send_keys("browser")
    form.find_element("name", "user").send_keys(ssh_user)
    form.find_element("css selector", "button").click()
    console.wait_text("#instance-detail h2", f"{sshd.host}:{sshd.port}")
    [declared] = api.get("/instances?tag=browser").json["results"]
    assert declared["port"] == sshd.port and declared["user"] == ssh_user
    console.wait_text("#instance-rows", "browser")

    console.find("#note-content").send_keys("disk replaced <b>today</b>")
    console.find("#note-form button").click()
    console.wait_text("#instance-notes ul", "disk replaced <b>today</b>")  # shown as text, never as markup
    assert api.get(f"/notes?instance={declared['id']}").json["results"][0]["author"] == "admin"

    console.find("#facts-gather").click()  # one facts task, run by the worker over SSH
    console.wait_text("#instance-facts", "kernel")
    assert api.get(f"/instances/{declared['id']}").json["facts"]["kernel"] in console.text("#instance-facts")
    console.js("window.scrollTo(0, 0)")
    console.screenshot("instances")

    console.find("#instance-detail details.instance summary").click()  # edit: the tag, and no more limit
    tag = console.find("#instance-edit input[name='tag']")
    tag.clear()
    tag.send_keys("edited")
    console.find("#instance-edit button").click()
    console.wait_text("#instance-rows", "edited")
    assert api.get(f"/instances/{declared['id']}").json["tag"] == "edited"


def test_bad_input_is_one_line_with_the_status(console: Browser) -> None:
    console.login("admin", "instances")
    form = console.find("#instance-declare")
    form.find_element("name", "ip").send_keys("not a host!")
    form.find_element("name", "tag").send_keys("x")
    form.find_element("css selector", "button").click()
    line = console.wait_text("#error", "422 validation failed").text
    assert "ip:" in line and "\n" not in line and "Traceback" not in line


def test_output_streams_before_the_task_ends(console: Browser, api: Api, instance: dict[str, Any], gate: Path) -> None:
    script = f"printf '\\033[31mfirst\\033[0m\\n'; while [ ! -e {gate} ]; do sleep 0.1; done; echo second"
    task = api.create_task(instance, script)
    console.login("operator", f"tasks/{task['id']}")
    console.wait_text("#task-stdout", "first")
    assert "second" not in console.text("#task-stdout")
    assert console.text("#task-summary .task-state") in ("INIT", "CURRENT")
    red = console.until(lambda: console.find("#task-stdout span").value_of_css_property("color"))
    assert red != "rgba(230, 232, 235, 1)"  # the ANSI colour, not the plain text's
    assert console.find("#task-cancel").is_displayed()
    console.screenshot("task-running")
    gate.touch()
    console.wait_text("#task-summary .task-state", "DONE")
    console.wait_text("#task-stdout", "second")
    assert console.text("#task-summary .task-rc") == "0"
    assert console.text("#task-summary .task-took").endswith("s")
    assert not console.find("#task-cancel").is_displayed()


def test_cancel_a_running_task(console: Browser, api: Api, instance: dict[str, Any]) -> None:
    task = api.create_task(instance, "echo started; sleep 60")
    console.login("operator", f"tasks/{task['id']}")
    console.wait_text("#task-stdout", "started")
    console.find("#task-cancel").click()
    console.wait_text("#task-summary .task-state", "ABORT")
    assert wait_finished(api, task["id"])["state"] == "ABORT"


def test_tasks_page_follows_states_live(console: Browser, api: Api, instance: dict[str, Any]) -> None:
    console.login("viewer", "tasks")
    console.find("#task-rows[data-live='connected']")
    task = api.create_task(instance, "true")  # made once the page listens: only /events can bring it in
    row = f"#task-rows tr[data-task='{task['id']}']"
    console.wait_text(f"{row} .col-state", "DONE")
    assert console.text(f"{row} .col-rc") == "0"
    console.screenshot("tasks")


def test_run_a_fan_out_and_watch_its_grid(console: Browser, api: Api, make_sshd: Callable[..., SshServer],
                                          known_hosts: Path, ssh_user: str) -> None:
    hosts = [make_sshd(f"127.0.1.{n}") for n in (11, 12, 13)]
    known_hosts.write_text(known_hosts.read_text() + "".join(f"{h.known_hosts_line}\n" for h in hosts))
    for host in hosts:
        api.created("/instances", {"ip": host.host, "port": host.port, "tag": "fleet", "user": ssh_user})
    console.login("operator", "run")
    form = console.find("#run-form")
    form.find_element("name", "target").send_keys("every")  # the option "every ACTIVE instance of a tag"
    form.find_element("name", "target_tag").send_keys("fleet")
    console.find("#run-script").send_keys("echo on $(hostname); exit 7")
    console.screenshot("run")
    console.find("#run-submit").click()
    console.find("#batch-grid")
    for host in hosts:
        console.wait_text("#batch-grid", f"{host.host}:{host.port}")
    console.until(lambda: len(console.all("#batch-grid .host[data-state='DONE']")) == 3)
    assert [cell.text for cell in console.all("#batch-grid .host-rc")] == ["rc 7"] * 3
    console.wait_text("#batch-counts", "3 DONE")
    console.screenshot("batch")
    console.all("#batch-grid .host")[1].click()
    console.wait_text("#task-stdout", "on ")
    assert console.text("#task-summary .task-rc") == "7"


def test_a_viewer_sees_no_run_or_cancel_or_declare(console: Browser, api: Api, instance: dict[str, Any]) -> None:
    task = api.create_task(instance, "sleep 30")
    console.login("viewer", f"tasks/{task['id']}")
    console.find("#task-summary")
    assert [a.text for a in console.all("#nav a")] == ["Instances", "Tasks", "Terminals"]
    assert not console.find("#task-cancel").is_displayed()
    console.open("run")
    console.wait_text("main", "for the operator role")
    console.open(f"instances?id={instance['id']}")
    console.find("#instance-notes")
    assert console.all("#instance-declare") == [] and console.all("#instance-edit") == []
    assert console.all("#facts-gather") == []
    api.patch(f"/tasks/{task['id']}", json={"state": "ABORT"})


def test_admin_reads_the_audit_log(console: Browser, api: Api, instance: dict[str, Any]) -> None:
    console.login("admin", "audit")
    console.wait_text("#audit-rows", "instance.create")
    console.screenshot("audit")


def test_a_401_goes_back_to_login(console: Browser) -> None:
    console.login("viewer", "tasks")
    console.find("#task-rows")
    console.js("sessionStorage.setItem('wsexec.authorization', 'Basic ' + btoa('viewer:wrong'))")
    console.open("instances")
    console.wait_text("#login-error", "401")
    console.find("#login-form")


def test_no_csp_violation_nor_script_error(console: Browser, api: Api, instance: dict[str, Any]) -> None:
    task = api.create_task(instance, "echo '<img src=x onerror=alert(1)><b>x</b>'")
    console.console_errors()  # what earlier tests in this browser made the page log (their 401s, 422s) goes
    console.login("admin", f"tasks/{task['id']}")
    console.wait_text("#task-summary .task-state", "DONE")
    console.wait_text("#task-stdout", "<img src=x onerror=alert(1)><b>x</b>")  # the output is text, never markup
    assert console.all("#task-stdout img") == [] and console.all("#task-stdout b") == []
    for page in ("instances", "tasks", "run", "audit", "terminals"):
        console.open(page)
        console.find("main h1")
    assert console.console_errors() == []
