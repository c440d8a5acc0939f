"""nginx keeps its connections to gunicorn open (upstream keepalive) and never reuses one gunicorn is closing.

Without keepalive every proxied request opens and closes a connection: a TIME_WAIT socket on gunicorn's port each,
tens of thousands under load (issue 15). Real nginx (the shipped site file) in front of real gunicorn.
"""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlsplit

import requests

from tests.helpers import ROOT
from tests.test_deploy import nginx  # noqa: F401  (the fixture: the shipped site in front of gunicorn_url)
from wsexec.testing.nginx import Nginx

SITE = ROOT / "nginx" / "wsexec.conf"
REQUESTS = 60


def upstream_block() -> str:
    found = re.search(r"^upstream wsexec_app \{\n(.*?)^\}", SITE.read_text(), re.MULTILINE | re.DOTALL)
    assert found, "nginx/wsexec.conf has no upstream wsexec_app block"
    return found.group(1)


def directive(text: str, name: str) -> str | None:
    found = re.search(rf"^\s*{name}\s+([^;]+);", text, re.MULTILINE)
    return found.group(1).strip() if found else None


def test_upstream_keepalive_closes_idle_connections_before_gunicorn_does() -> None:
    """nginx must drop an idle connection first: a request sent on one gunicorn is closing would fail (a POST is
    not retried: 502). HTTP/1.1 and an empty Connection header are what lets nginx keep them at all."""
    block = upstream_block()
    assert int(directive(block, "keepalive") or 0) >= 1
    gunicorn_keepalive = re.search(r"^keepalive = (\d+)", (ROOT / "gunicorn.conf.py").read_text(), re.MULTILINE)
    assert gunicorn_keepalive
    timeout = directive(block, "keepalive_timeout")
    assert timeout and timeout.endswith("s") and int(timeout[:-1]) < int(gunicorn_keepalive.group(1))
    site = SITE.read_text()
    assert directive(site, "proxy_http_version") == "1.1"
    assert directive(site, "proxy_set_header Connection") == '""'


def closed_on(port: int) -> int:
    """TIME_WAIT sockets with this port at one end: connections closed in the last minute."""
    listing = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True, check=True)
    return sum(1 for line in listing.stdout.splitlines() if re.search(rf":{port}\s", line + " "))


def test_requests_through_nginx_reuse_their_upstream_connections(nginx: Nginx, gunicorn_url: str) -> None:  # noqa: F811
    port = urlsplit(gunicorn_url).port
    assert port
    session = requests.Session()
    session.trust_env = False
    session.verify = str(nginx.cert)
    before = closed_on(port)
    statuses = {session.get(f"{nginx.https}/health", timeout=10).status_code for _ in range(REQUESTS)}
    assert statuses <= {200, 503}  # 503: no worker runs here, but gunicorn answered
    assert closed_on(port) - before < REQUESTS // 4  # not one closed connection per request
