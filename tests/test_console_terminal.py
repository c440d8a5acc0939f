"""The console's terminals in a real headless Chromium: open a websh on an instance, type, read, resize it with
the window, end it, and play its recording, against real gunicorn and sshd."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.keys import Keys

from tests.browser import Browser
from tests.helpers import ROOT, Api
from wsexec.config import Settings
from wsexec.testing.nginx import Nginx

ROWS = "return [...document.querySelectorAll(arguments[0] + ' .xterm-rows > div')]" \
       ".map(row => row.textContent.replace(/\\u00a0/g, ' ').trimEnd())"
SIZE = re.compile(r"^(\d+) (\d+)$")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """As deployed behind nginx (deploy/wsexec.env.example); direct requests carry no forwarded headers to trust."""
    return dataclasses.replace(settings, trusted_proxies=1)


@pytest.fixture
def nginx(tmp_path: Path, gunicorn_url: str) -> Iterator[Nginx]:
    """The shipped site file (nginx/wsexec.conf) over TLS in front of the test's gunicorn."""
    with Nginx(tmp_path / "nginx", urlsplit(gunicorn_url).netloc, ROOT / "nginx" / "wsexec.conf").start() as server:
        yield server


def rows(console: Browser, screen: str = "#terminal") -> list[str]:
    """The terminal's lines as xterm.js draws them."""
    return console.js(ROWS, screen)


def typed(console: Browser, text: str) -> None:
    console.find("#terminal .xterm-helper-textarea").send_keys(text, Keys.ENTER)


def stty_sizes(console: Browser) -> list[tuple[int, int]]:
    return [(int(m[1]), int(m[2])) for line in rows(console) if (m := SIZE.match(line))]


def test_a_terminal_echoes_resizes_and_its_recording_plays(console: Browser, api: Api,
                                                           instance: dict[str, Any]) -> None:
    console.driver.set_window_size(1280, 900)
    console.login("admin", f"terminals?instance={instance['id']}")
    console.find("#terminal-open").click()
    console.until(lambda: console.find("#terminal").get_attribute("data-session"))
    console.until(lambda: any(line.endswith("$") for line in rows(console)), "no shell prompt")
    typed(console, "echo hi")
    console.until(lambda: "hi" in rows(console), lambda: f"no line 'hi' in {rows(console)}")
    console.screenshot("terminal")

    typed(console, "stty size")
    [first] = console.until(lambda: stty_sizes(console))
    console.driver.set_window_size(900, 640)  # the page fits the terminal to the window and PATCHes the session
    console.until(lambda: f"{first[1]}×{first[0]}" not in console.text("#terminal-status"))
    typed(console, "stty size")
    sizes = console.until(lambda: len(stty_sizes(console)) == 2 and stty_sizes(console))
    assert sizes[1] != first and sizes[1][1] < first[1]  # fewer columns in the narrower window
    session_id = int(console.find("#terminal").get_attribute("data-session"))
    assert (api.get(f"/websh/sessions/{session_id}").json["cols"]) == sizes[1][1]

    typed(console, "exit")
    console.until(lambda: console.find("#terminal").get_attribute("data-ended"))
    console.wait_text("#terminal-status", "ended (1000")

    console.driver.set_window_size(1280, 900)
    console.open("terminals")
    console.find(f"#session-rows tr[data-session='{session_id}'] a.play").click()
    console.find("#player .xterm-rows")
    # one synchronous step: the click plays what is due at 0 s only, the rest waits for its recorded time
    done_at_once = console.js("document.getElementById('player-toggle').click();"
                              "return document.getElementById('player').dataset.done")
    assert done_at_once == "false"
    console.until(lambda: console.find("#player").get_attribute("data-done") == "true")
    played = rows(console, "#player")
    assert "hi" in played and any(line.endswith("echo hi") for line in played)
    assert console.text("#player-toggle") == "Play again"
    console.screenshot("recording")
    assert [e for e in console.console_errors() if "Content Security Policy" in e] == []  # xterm.js runs under it


def test_a_viewer_cannot_open_a_terminal(console: Browser, instance: dict[str, Any]) -> None:
    console.login("viewer", "terminals")
    console.wait_text("main", "Opening a terminal takes the operator role")
    assert console.all("#terminal-open") == []


def test_the_console_and_a_terminal_through_nginx_over_tls(console: Browser, nginx: Nginx,
                                                           instance: dict[str, Any]) -> None:
    """Production's path: https pages, fetch() streams and a wss:// websocket (CSP connect-src 'self') via nginx."""
    console.fresh(nginx.https.removesuffix("/wsexec"))
    console.login("operator", f"terminals?instance={instance['id']}")
    console.find("#terminal-open").click()
    console.until(lambda: any(line.endswith("$") for line in rows(console)), "no shell prompt")
    typed(console, "echo h''i")  # the echoed command reads h''i: a line "hi" is the shell's answer
    console.until(lambda: "hi" in rows(console), lambda: f"no line 'hi' in {rows(console)}")
    assert console.js("return location.protocol") == "https:"
    assert console.find("#terminal").get_attribute("data-ended") is None
