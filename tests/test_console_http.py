"""The console's files over HTTP: served without credentials (they are code, no data), with security headers that
forbid inline scripts and framing; the API behind them still asks for credentials, and never opens the browser's own
login dialog for the console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Api
from wsexec.ui import STATIC


def directives(response: Any) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/wsexec/ui/", "/wsexec/ui/js/main.js", "/wsexec/ui/css/console.css",
                                  "/wsexec/ui/vendor/xterm/xterm.mjs"])
def test_console_files_need_no_credentials_and_forbid_inline_scripts_and_frames(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    policy = directives(response)
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no other origin
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["connect-src"] == ["'self'"]
    assert "Authorization" not in response.request.headers


def test_scripts_are_served_as_javascript_so_nosniff_lets_modules_run(api: Api) -> None:
    for path in ("js/main.js", "vendor/xterm/xterm.mjs", "vendor/ansi_up/ansi_up.js"):
        response = api.client.get(f"/wsexec/ui/{path}")
        assert response.mimetype == "text/javascript", path


def test_the_page_loads_only_its_own_module_script(api: Api) -> None:
    page = api.client.get("/wsexec/ui/").get_data(as_text=True)
    assert '<script type="module" src="js/main.js"></script>' in page
    assert page.count("<script") == 1 and "style=" not in page and " on" not in page.replace(" one", "")


@pytest.mark.parametrize("path", ["/wsexec/ui/../config.py", "/wsexec/ui/%2e%2e/config.py", "/wsexec/ui/nothing.js",
                                  "/wsexec/ui/../__init__.py"])
def test_nothing_outside_the_static_folder_is_served(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 404
    assert response.json["error"]


def test_the_data_still_needs_credentials(api: Api) -> None:
    response = api.client.get("/wsexec/tasks")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")  # curl users keep their challenge
    assert directives(response)["default-src"] == ["'none'"]  # JSON is never a page to run anything in
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_console_gets_a_401_without_a_basic_challenge(api: Api) -> None:
    """A `Basic` challenge would make the browser ask by itself and then send that password on its own."""
    response = api.client.get("/wsexec/tasks", headers={"X-Wsexec-Client": "console"})
    assert response.status_code == 401
    assert not response.headers["WWW-Authenticate"].lower().startswith("basic")
    assert response.json["error"].startswith("authentication required")


@pytest.mark.parametrize("user", ["viewer", "operator", "admin"])
def test_whoami_names_the_caller_and_role(api: Api, user: str) -> None:
    response = api.as_user(user).get("/whoami")
    assert response.status_code == 200
    assert response.json == {"name": user, "role": user}
    assert api.client.get("/wsexec/whoami").status_code == 401


def test_every_vendored_library_has_its_licence_and_version_recorded() -> None:
    vendor = STATIC / "vendor"
    listed = [line.split() for line in (vendor / "VERSIONS").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert {name for name, _ in listed} == {"@xterm/xterm", "@xterm/addon-fit", "ansi_up"}
    directories = {path.name for path in vendor.iterdir() if path.is_dir()}
    assert directories == {"xterm", "addon-fit", "ansi_up"}
    for directory in directories:
        licence = (vendor / directory / "LICENSE").read_text()
        assert "MIT" in licence or "Permission is hereby granted" in licence, directory


def test_the_console_scripts_reach_no_other_origin() -> None:
    """No CDN: every import is relative, every fetch goes to /wsexec."""
    for script in (STATIC / "js").rglob("*.js"):
        text = script.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, script.name
        for line in text.splitlines():
            if line.startswith("import "):
                assert "from '." in line, (script.name, line)
        assert "innerHTML" not in text and "EventSource" not in text and "document.cookie" not in text, script.name


def test_the_static_folder_is_inside_the_package() -> None:
    assert Path(STATIC).parent.name == "ui" and (STATIC / "index.html").is_file()
