"""Deployment as shipped: EXPORTME.txt names every setting, the systemd units verify, and the real nginx site file
(TLS, body limit, redirects, forwarded headers) in front of real gunicorn serves the quickstart."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import websocket

from tests import test_dos, test_readme, test_streams
from tests.helpers import CRON_TOKEN, PASSWORDS, ROOT, sse_frames, task_body, wait_for
from wsexec.config import Settings
from wsexec.files.routes import FORM_OVERHEAD
from wsexec.testing import SshServer
from wsexec.testing.http import FromAddress
from wsexec.testing.nginx import NGINX, Nginx

EXPORTME = ROOT / "EXPORTME.txt"
SITE = ROOT / "nginx" / "wsexec.conf"
ADMIN = ("admin", PASSWORDS["admin"])
CLIENT_IP = "127.0.0.7"  # the test's client connects from here; nginx reaches gunicorn from 127.0.0.1


# --- EXPORTME.txt and deploy/ can't drift from the code ---------------------------------------------------------


def exported(path: Path) -> dict[str, str]:
    """NAME -> value of the assignments in a shell or systemd environment file, as a shell would read them."""
    values = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        if words:
            name, _, value = words[0].partition("=")
            values[name] = value
    return values


def read_by_code() -> dict[str, str]:
    """Every WSEXEC_ variable the code reads -> the default it uses when the variable is unset."""
    defaults = Settings().to_env()
    gunicorn = (ROOT / "gunicorn.conf.py").read_text()
    defaults |= dict(re.findall(r'os\.environ\.get\("(WSEXEC_\w+)", "([^"]*)"\)', gunicorn))
    assert len(re.findall(r"WSEXEC_\w+", gunicorn)) == len(re.findall(r'os\.environ\.get\("WSEXEC_', gunicorn))
    for script in (ROOT / "scripts").glob("*.sh"):
        for name, default in re.findall(r"\$\{(WSEXEC_\w+):-([^}]*)\}", script.read_text()):
            defaults.setdefault(name, default)
    return defaults


def test_exportme_lists_every_setting_with_the_default_the_code_uses() -> None:
    code = read_by_code()
    assert {name: exported(EXPORTME).get(name) for name in code} == code


def test_exportme_and_the_env_example_name_only_real_settings() -> None:
    code = read_by_code()
    assert set(exported(EXPORTME)) - set(code) == set()
    assert set(exported(ROOT / "deploy" / "wsexec.env.example")) - set(code) == set()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", ["wsexec-web.service", "wsexec-worker@.service"])
def test_systemd_unit_verifies(unit: str, tmp_path: Path) -> None:
    """systemd-analyze checks every key; it needs ExecStart to exist, so /opt/wsexec becomes this checkout."""
    rendered = tmp_path / unit
    rendered.write_text((ROOT / "deploy" / unit).read_text().replace("/opt/wsexec", str(ROOT)))
    result = subprocess.run(["systemd-analyze", "verify", str(rendered)], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# --- real nginx in front of real gunicorn ----------------------------------------------------------------------

@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shipped production setting for the app behind nginx (deploy/wsexec.env.example)."""
    return dataclasses.replace(settings, trusted_proxies=1)


@pytest.fixture
def nginx(tmp_path: Path, gunicorn_url: str) -> Iterator[Nginx]:
    if not os.access(NGINX, os.X_OK):
        pytest.fail(f"{NGINX} missing: scripts/setup.sh dev installs Debian's nginx-light")
    with Nginx(tmp_path / "nginx", urlsplit(gunicorn_url).netloc, SITE).start() as server:
        yield server


@pytest.fixture
def client(nginx: Nginx) -> requests.Session:
    """A curl-like client that trusts the test's self-signed certificate."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace verify, a *_PROXY variable would leave loopback
    session.verify = str(nginx.cert)
    session.mount("https://", FromAddress(CLIENT_IP))
    session.mount("http://", FromAddress(CLIENT_IP))
    return session


def test_readme_quickstart_through_nginx_with_curl_over_tls(nginx: Nginx, workers: Any, demo_host: SshServer,
                                                           tmp_path: Path) -> None:
    """The README's quickstart block as written, but with the HTTPS address of nginx instead of gunicorn's."""
    workers.start(1)
    # curl verifies the certificate against CURL_CA_BUNDLE only; no *_proxy variable may take it off loopback.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CURL_CA_BUNDLE": str(nginx.cert)}
    done = test_readme.run_blocks(["quickstart"], nginx.https.removesuffix("/wsexec"), demo_host.port, tmp_path, env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines(keepends=True)
    instance, created, task, listing = (json.loads(line) for line in lines[:4])
    assert (instance["id"], created["created_by"]) == (1, "admin")
    assert (task["state"], task["rc"]) == ("DONE", 3) and task["stdout"].startswith("hello from ")
    assert listing["results"][0]["id"] == 1
    assert "".join(lines[4:]) == task["stdout"] + task["stderr"], "curl -N's follow through nginx"


def test_health_and_credentials_through_nginx(nginx: Nginx, client: requests.Session, workers: Any) -> None:
    workers.start(1)
    assert wait_for(lambda: client.get(f"{nginx.https}/health").status_code == 200)
    refused = client.get(f"{nginx.https}/tasks")
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
    assert refused.json()["error"]
    assert client.get(f"{nginx.https}/tasks", auth=ADMIN).status_code == 200


def test_the_app_sees_the_client_and_links_back_through_nginx(nginx: Nginx, client: requests.Session) -> None:
    """X-Forwarded-For reaches the app: the audit log has the client's address; links are relative, they work."""
    for tag in ("first", "second"):
        assert client.post(f"{nginx.https}/instances", auth=ADMIN, json={"ip": "127.0.0.9", "tag": tag}).ok
    audit = client.get(f"{nginx.https}/audit?page_size=1", auth=ADMIN).json()
    assert audit["results"][0]["ip"] == CLIENT_IP  # not nginx's 127.0.0.1
    assert audit["next"].startswith("/wsexec/audit?")
    second = client.get(nginx.https.removesuffix("/wsexec") + audit["next"], auth=ADMIN).json()
    assert [entry["target"] for entry in second["results"]] != [entry["target"] for entry in audit["results"]]


def test_nginx_body_limit_is_the_apps() -> None:
    """client_max_body_size must stand for the same number of bytes as WSEXEC_MAX_BODY's default, and for uploads
    as WSEXEC_FILE_MAX's plus the form around the file."""
    megabytes = re.findall(r"^\s*client_max_body_size (\d+)m;", SITE.read_text(), re.MULTILINE)
    assert [int(m) * 1024 * 1024 for m in megabytes] == [Settings().max_body, Settings().file_max + FORM_OVERHEAD]


def test_nginx_and_gunicorn_wait_longer_than_the_longest_wait() -> None:
    """A ?wait=WSEXEC_WAIT_MAX (its default) must not be cut by nginx (504) or gunicorn (worker killed)."""
    wait_max = Settings().wait_max
    seconds = re.findall(r"^\s*proxy_read_timeout (\d+)s;", SITE.read_text(), re.MULTILINE)
    assert seconds and all(int(s) > wait_max for s in seconds)  # the server's, and websh's websocket location's
    websh = re.search(r"location ~ \^/wsexec/websh/.*?proxy_read_timeout (\d+)s;", SITE.read_text(), re.DOTALL)
    assert websh and int(websh.group(1)) > max(Settings().websh_ping, Settings().websh_idle)
    assert int(read_by_code()["WSEXEC_GUNICORN_TIMEOUT"]) > wait_max


def test_redis_pool_outnumbers_a_gunicorn_workers_connections() -> None:
    """Each connection's greenlet may block in a ?wait or a stream holding a Redis connection: the pool has room."""
    assert Settings().redis_connections > int(read_by_code()["WSEXEC_GUNICORN_CONNECTIONS"])


@pytest.mark.parametrize("extra, status, by_nginx", [(0, 422, False), (1, 413, True)])
def test_body_limit_through_nginx(nginx: Nginx, client: requests.Session, extra: int, status: int,
                                  by_nginx: bool) -> None:
    """At the limit the app answers (the script is too long for it); one byte more and nginx refuses, in JSON."""
    task = {"name": "big", "tag": "t", "instance": 1, "script": ""}
    task["script"] = "x" * (Settings().max_body + extra - len(json.dumps(task)))
    response = client.post(f"{nginx.https}/tasks", auth=ADMIN, data=json.dumps(task),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "detail"}
    assert (response.json()["detail"] == {"max_body": "1m"}) is by_nginx  # nginx's answer, not the app's


def test_uploads_pass_nginx_beyond_the_json_limit(nginx: Nginx, client: requests.Session) -> None:
    """/wsexec/files has its own client_max_body_size: a 2 MiB file gets to the app (here: no such instance)."""
    files = {"content": ("big.bin", b"x" * 2 * 1024 * 1024)}
    response = client.post(f"{nginx.https}/files", auth=ADMIN, files=files, data={"instance": "9", "path": "/tmp/x"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "instance: instance 9 does not exist"


@pytest.mark.parametrize("path", ["/wsexec/tasks", "/wsexec/instances?page=2", "/"])
def test_plain_http_redirects_to_https(nginx: Nginx, client: requests.Session, path: str) -> None:
    """To the configured server_name: a forged Host header does not choose where clients are sent."""
    response = client.get(f"http://127.0.0.1:{nginx.http_port}{path}", auth=ADMIN, allow_redirects=False,
                          headers={"Host": "evil.example"})
    assert (response.status_code, response.headers["Location"]) == (301, f"https://wsexec.example.com{path}")


def test_plain_http_still_serves_health_and_certificate_challenges(nginx: Nginx, client: requests.Session) -> None:
    health = client.get(f"{nginx.http}/health", allow_redirects=False)
    assert health.status_code == 503  # the app's answer (no worker runs here), not a redirect
    assert health.json()["detail"]["redis"] is True
    challenge = f"http://127.0.0.1:{nginx.http_port}/.well-known/acme-challenge/no-such-token"
    assert client.get(challenge, allow_redirects=False).status_code == 404


def test_readme_deployment_check_through_nginx(nginx: Nginx, workers: Any, tmp_path: Path) -> None:
    """The README's "Check it" curls, with nginx's address for wsexec.example.com and the test's token."""
    workers.start(1)
    wait_for(lambda: requests.get(f"{nginx.http}/health").status_code == 200)
    base = nginx.https.removesuffix("/wsexec")
    script = test_readme.block("deploy-check").replace("https://wsexec.example.com", base)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CURL_CA_BUNDLE": str(nginx.cert), "TOKEN": CRON_TOKEN}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60)
    health, instances = (json.loads(line) for line in done.stdout.splitlines())
    assert health["status"] == "ok" and health["workers"] == 1
    assert instances["count"] == 0 and instances["results"] == []


@pytest.mark.parametrize("accept", ["text/event-stream", "text/plain"])
def test_following_a_task_through_nginx_shows_its_output_before_it_ends(
    nginx: Nginx, client: requests.Session, workers: Any, instance: dict, accept: str, tmp_path: Path
) -> None:
    """curl -N through the shipped site: the first line arrives while the task still waits for its gate file (nginx
    passes the stream unbuffered, X-Accel-Buffering: no), the rest and the end once it goes on."""
    gate = Path(f"/tmp/wsexec-test-{uuid.uuid4().hex}.go")
    script = f"echo before; until [ -e {gate} ]; do sleep 0.1; done; echo after"
    task = client.post(f"{nginx.https}/tasks", auth=ADMIN, json=task_body(instance, script), timeout=30).json()
    workers.start(1)
    url = f"{nginx.https}/tasks/{task['id']}/output?follow=true&timeout=120"
    try:
        # a read that waits 60 s for its next bytes fails the test: a buffering nginx holds them until the end
        with client.get(url, auth=ADMIN, headers={"Accept": accept}, stream=True, timeout=(10, 60)) as stream:
            assert stream.status_code == 200 and stream.headers["Content-Type"].startswith(accept)
            lines = stream.iter_lines(decode_unicode=True)
            first = next(line for line in lines if line.startswith(("data: ", "before")))
            assert first.removeprefix("data: ") == "before"
            assert client.get(f"{nginx.https}/tasks/{task['id']}", auth=ADMIN).json()["state"] == "CURRENT"
            gate.touch()
            rest = list(lines)
    finally:
        gate.touch()
        gate.unlink()
    if accept == "text/plain":
        assert rest == ["after"]
    else:
        events = [f for f in sse_frames(rest) if "event" in f]
        assert [(f["event"], f["data"]) for f in events][:1] == [("stdout", "after\n")]
        assert events[-1]["event"] == "end" and json.loads(events[-1]["data"])["rc"] == 0


def test_a_text_follow_cut_short_behind_nginx_is_cut_short_for_the_client(
    nginx: Nginx, client: requests.Session, api: Any, store: Any, instance: dict, redis_server: Any
) -> None:
    """Redis lost under a text/plain follow: the client's transfer ends without its last chunk, as gunicorn's does
    (tests/test_streams.py), instead of nginx presenting the output as complete."""
    task = api.create_task(instance)
    assert store.claim(task["id"], "test-worker", 600)
    url = f"{nginx.https}/tasks/{task['id']}/output?follow=true"
    with client.get(url, auth=ADMIN, stream=True, timeout=(10, 60)) as stream:
        assert stream.status_code == 200
        test_streams.cut_short_when_redis_stops(stream, redis_server)


STREAM_SOURCES = tuple(f"127.0.0.{n}" for n in range(20, 24))  # 4 x 50 streams: under limit_conn's 64 per address
GET_SOURCES = tuple(f"127.0.0.{n}" for n in range(30, 36))  # 600 GETs faster than limit_req's 50 a second


class RoundRobin(requests.adapters.HTTPAdapter):
    """Each request from the next of some loopback addresses (one connection pool each)."""

    def __init__(self, sources: tuple[str, ...]) -> None:
        super().__init__()
        self.adapters, self.turn = [FromAddress(source) for source in sources], 0

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.turn += 1
        return self.adapters[self.turn % len(self.adapters)].send(request, **kwargs)

    def close(self) -> None:
        for adapter in self.adapters:
            adapter.close()


def test_200_follow_streams_through_nginx_beside_ordinary_requests(gunicorn_url: str, api: Any, store: Any,
                                                                  instance: dict, tmp_path: Path) -> None:
    """200 follow streams held open through the shipped site (its nginx with room for their 400 connections): every
    GET of one task is still answered 200. p50/p99 printed (pytest -s), never asserted: `make bench` measures."""
    task = api.create_task(instance)
    assert store.claim(task["id"], "test-worker", 600)  # running, silent: its follows stay open
    with Nginx(tmp_path / "roomy", urlsplit(gunicorn_url).netloc, SITE, connections=1024).start() as roomy:
        session = requests.Session()  # from a new address each GET, in turn: limit_req's burst allows 200 each
        session.trust_env, session.verify = False, str(roomy.cert)
        session.mount("https://", RoundRobin(GET_SOURCES))
        url = f"{roomy.https}/tasks/{task['id']}"
        alone, alone_seconds = test_streams.get_one_task(session, url)
        tls = ssl.create_default_context(cafile=str(roomy.cert))
        follow = f"/wsexec/tasks/{task['id']}/output?follow=true"
        with test_streams.streams(roomy.https, follow, test_streams.STREAMS, sources=STREAM_SOURCES,
                                  wrap=tls) as held:
            loaded, loaded_seconds = test_streams.get_one_task(session, url)
            assert len(held) == test_streams.STREAMS
    assert alone == loaded == [200] * test_streams.GETS
    print(f"\nthrough nginx, GET one task ({test_streams.GETS} sequential): no streams: "
          f"{test_streams.percentiles(alone_seconds)}; {test_streams.STREAMS} follow streams open: "
          f"{test_streams.percentiles(loaded_seconds)}")


# --- a few hostile clients through nginx ------------------------------------------------------------------------

SLOW_CLIENT_IP = "127.0.0.8"


def test_the_api_answers_through_nginx_and_directly_while_slow_clients_hold_connections(
    nginx: Nginx, client: requests.Session, gunicorn_url: str
) -> None:
    """Slowloris on both of nginx's ports and on gunicorn itself; then nginx drops its idle ones on its own."""
    tls = ssl.create_default_context(cafile=str(nginx.cert))
    with (test_dos.slowloris(nginx.http, source=SLOW_CLIENT_IP) as plain,
          test_dos.slowloris(nginx.https, source=SLOW_CLIENT_IP, wrap=tls) as encrypted,
          test_dos.slowloris(gunicorn_url, source=SLOW_CLIENT_IP)):
        for base in (nginx.https, f"{gunicorn_url}/wsexec"):
            assert client.get(f"{base}/health", timeout=test_dos.ANSWER_WITHIN).status_code == 503  # no worker
            assert client.get(f"{base}/tasks", auth=test_dos.VIEWER, timeout=test_dos.ANSWER_WITHIN).ok
        assert client.get(f"{nginx.http}/health", timeout=test_dos.ANSWER_WITHIN).status_code == 503
        assert len(encrypted) == test_dos.SLOW_CLIENTS
        plain[0].settimeout(30)  # client_header_timeout (10 s): nginx hangs up without an answer
        assert plain[0].recv(4096) == b""


def test_a_flood_from_one_address_is_429_in_the_error_shape_and_others_still_pass(
    nginx: Nginx, client: requests.Session
) -> None:
    """limit_req per client address: the flood's excess is refused by nginx; another address is not touched."""
    flooder = requests.Session()
    flooder.mount("http://", FromAddress(SLOW_CLIENT_IP))
    challenge = f"http://127.0.0.1:{nginx.http_port}/.well-known/acme-challenge/none"
    # Bounded, and not by time: on a busy machine the bucket refills while the flood runs, so keep sending until
    # a refusal comes and look at that one.
    answers = []
    for _ in range(3000):
        answers.append(flooder.get(challenge))
        if answers[-1].status_code == 429:
            break
    statuses = [answer.status_code for answer in answers]
    refused = answers[-1]
    assert statuses.count(404) >= 200 and set(statuses) == {404, 429}, sorted(set(statuses))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json() == {"error": "too many requests from your address", "detail": {"retry_after": 1}}
    assert client.get(challenge).status_code == 404  # the test's client, from CLIENT_IP


def test_a_terminal_through_nginx_over_tls(nginx: Nginx, client: requests.Session, instance: dict) -> None:
    """websh behind the shipped site: a wss:// URL built from what nginx passes on, the upgrade through it, echo hi."""
    body = {"instance": instance["id"], "rows": 24, "cols": 80}
    session = client.post(f"{nginx.https}/websh/sessions", auth=ADMIN, json=body, timeout=30).json()
    assert session["websocket"].startswith(f"wss://127.0.0.1:{nginx.port}/wsexec/websh/sessions/{session['id']}/")
    ws = websocket.create_connection(session["websocket"], timeout=20, sslopt={"ca_certs": str(nginx.cert)},
                                     origin=nginx.https.removesuffix("/wsexec"))
    ws.send("echo h''i\n")  # the echoed line reads h''i: "hi" alone is the command's output
    output = b""
    while b"hi\r\n" not in output:
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY, (opcode, data, output)
        output += data
    ws.send("exit\n")
    opcode, data = ws.recv_data(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, data = ws.recv_data(control_frame=True)
    assert int.from_bytes(data[:2], "big") == 1000  # the shell's exit, as the app closed it, through nginx
    ended = wait_for(lambda: (s := client.get(session["api"], auth=ADMIN).json())["state"] == "ENDED" and s)
    assert ended["bytes_in"] == len("echo h''i\nexit\n")
