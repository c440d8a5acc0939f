"""Fixtures only (helpers live in tests/helpers.py): real redis-server and sshd daemons on loopback for the session,
started only when a test asks for them; a fresh app per test."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from werkzeug.security import generate_password_hash

from tests.clirun import Cli, environment, runner
from tests.helpers import CRON_TOKEN, PASSWORDS, ROOT, SSH_USER, Api, WorkerProcesses, wait_for
from wsexec import create_app
from wsexec.config import Settings
from wsexec.store import Store
from wsexec.testing import RedisServer, SshServer, ensure_login_user, free_port, generate_keypair


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wsexec")


def readme_acl_rules() -> str:
    """The rules of the README's `user wsexec` line, so the suite runs with the production ACL, not as admin."""
    found = re.search(r"^user wsexec on >\S+ (.+)$", (ROOT / "README.md").read_text(), re.M)
    assert found, "README has no `user wsexec on >PASSWORD RULES` line"
    return found.group(1)


@pytest.fixture(scope="session")
def redis_server(session_dir: Path) -> Iterator[RedisServer]:
    """Passwords required; wsexec connects as the README's ACL user `wsexec` (redis_server.url is the admin)."""
    with RedisServer(session_dir / "redis", users={"wsexec": readme_acl_rules()}).start() as server:
        yield server


@pytest.fixture(scope="session")
def ssh_user() -> str:
    return ensure_login_user(SSH_USER)


@pytest.fixture(scope="session")
def client_key(session_dir: Path) -> Path:
    """The service's private key; its public half is authorized on every test sshd."""
    key = session_dir / "id_ed25519"
    public = generate_keypair(key)
    (session_dir / "authorized_keys").write_text(public + "\n")
    return key


@pytest.fixture(scope="session")
def make_sshd(session_dir: Path, ssh_user: str, client_key: Path) -> Iterator[Callable[..., SshServer]]:
    """Start more sshd daemons (own address, port and host key); all stopped at the end of the session."""
    started: list[SshServer] = []

    def make(host: str = "127.0.1.1", **options: str) -> SshServer:
        port = free_port(host)
        server = SshServer(session_dir / f"sshd-{host}-{port}", host, port, ssh_user,
                           session_dir / "authorized_keys", options or None)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sshd(make_sshd: Callable[..., SshServer]) -> SshServer:
    return make_sshd("127.0.1.1")


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    """Cheap hashes: the default scrypt costs 0.1-0.5 s per request, and the tests make thousands."""
    return {user: generate_password_hash(password, "pbkdf2:sha256:1") for user, password in PASSWORDS.items()}


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: SshServer) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts_line + "\n")
    return path


@pytest.fixture
def settings(
    redis_server: RedisServer, client_key: Path, known_hosts: Path, password_hashes: dict[str, str]
) -> Settings:
    users = " ".join(f"{user}:{user}:{digest}" for user, digest in password_hashes.items())
    return Settings(
        redis_url=redis_server.user_url("wsexec"),
        users=users,
        tokens=f"nightly:operator:{hashlib.sha256(CRON_TOKEN.encode()).hexdigest()}",
        ssh_key=str(client_key),
        known_hosts=str(known_hosts),
        connect_timeout=3.0,
        lease_seconds=4,
        # the suite's own walks with wrong credentials would lock 127.0.0.1 out; tests/test_logins.py sets them low
        login_failures_per_address=100_000,
        login_failures_per_user=100_000,
    )


@pytest.fixture
def redis(settings: Settings, redis_server: RedisServer) -> Redis:
    """wsexec's connection (its ACL user) to an empty Redis: emptied by the admin, as wsexec may not FLUSHALL."""
    Redis.from_url(redis_server.url).flushall()
    return Redis.from_url(settings.redis_url)


@pytest.fixture
def store(redis: Redis, settings: Settings) -> Store:
    return Store.from_settings(redis, settings)


@pytest.fixture
def app(settings: Settings, redis: Redis) -> Any:
    return create_app(settings)


@pytest.fixture
def api(app: Any) -> Api:
    return Api(app.test_client())


@pytest.fixture
def demo_host(session_dir: Path, known_hosts: Path) -> Iterator[SshServer]:
    """Like `make demo-host`: user wsexec-demo on 127.0.0.1, trusting the service key (the README's host)."""
    server = SshServer(session_dir / "demo-host", "127.0.0.1", free_port(), ensure_login_user("wsexec-demo"),
                       session_dir / "authorized_keys").start()
    known_hosts.write_text(known_hosts.read_text() + server.known_hosts_line + "\n")
    yield server
    server.stop()


@pytest.fixture
def instance(api: Api, sshd: SshServer, ssh_user: str) -> dict[str, Any]:
    response = api.post("/instances", json={"ip": sshd.host, "port": sshd.port, "tag": "test", "user": ssh_user})
    assert response.status_code == 201, response.json
    return response.json


@pytest.fixture
def runs_dir() -> Iterator[Path]:
    """A directory the sshd login user can append to (pytest's tmp_path is root's alone): tasks leave marks of their
    runs there, so a test counts how often each ran."""
    path = Path(tempfile.mkdtemp(prefix="wsexec-runs-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def workers(settings: Settings) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(settings)
    yield processes
    processes.stop()


@pytest.fixture
def gunicorn_url(settings: Settings, redis: Redis, tmp_path: Path) -> Iterator[str]:
    """Real gunicorn (gunicorn.conf.py, wsgi:app) on a free loopback port with the test settings; its base URL."""
    import requests

    port = free_port("127.0.0.1")
    env = {**os.environ, **settings.to_env(), "WSEXEC_BIND": f"127.0.0.1:{port}"}
    log = tmp_path / "gunicorn.log"
    with log.open("ab") as out:
        # its own session, so a hung shutdown can be cleaned up by killing exactly this process group
        proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            return requests.get(f"{url}/wsexec/health", timeout=2).status_code in (200, 503)
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or still importing the app (busy CPU)
            return False

    try:
        wait_for(serving, timeout=30)
        yield url
    finally:
        proc.terminate()  # SIGTERM: the master stops its workers gracefully
        try:
            proc.wait(35)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (starting one costs seconds); each test logs in afresh."""
    from tests.browser import Browser

    started = Browser()
    yield started
    started.quit()


@pytest.fixture
def console(browser: Any, gunicorn_url: str, workers: WorkerProcesses) -> Iterator[Any]:
    """The browser on the console of a real gunicorn with one worker, logged out."""
    workers.start(1)
    browser.fresh(gunicorn_url)
    yield browser
    browser.driver.get("about:blank")  # its streams end now: gunicorn's graceful stop need not wait for them


@pytest.fixture
def gate() -> Iterator[Path]:
    """A file the test creates to let a script go on: in a folder the SSH login user can read (not tmp_path)."""
    folder = Path(tempfile.mkdtemp(prefix="wsexec-gate-"))
    folder.chmod(0o755)
    yield folder / "gate"
    shutil.rmtree(folder)


@pytest.fixture
def cli_env(gunicorn_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment `wsexec` runs in as the operator (tests/clirun.py), for a command left running."""
    return environment(gunicorn_url, "operator", tmp_path)


@pytest.fixture
def cli(gunicorn_url: str, workers: WorkerProcesses, tmp_path: Path) -> Cli:
    """The installed `wsexec` run as a subprocess against real gunicorn and one worker (tests/clirun.py)."""
    workers.start(1)
    return runner(gunicorn_url, tmp_path)
