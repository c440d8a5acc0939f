"""Settings: the only reader of os.environ in the wsexec and workers packages (tests/unit/test_imports.py checks).

Outside them, gunicorn.conf.py reads the server's own WSEXEC_ variables (bind, processes, threads: gunicorn loads
that file before any app code) and scripts/run.sh those of `make run`; EXPORTME.txt lists all of them, and
tests/test_deploy.py checks it against the defaults of all three.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from wsexec import notify

DEFAULT_COMMANDS = {
    "uptime": "uptime",
    "top": "top -b -n 1",
    "free": "free -m",
    "df": "df -P",
    "ps": "ps aux",
}


_PARSERS = {"int": int, "float": float}
# The worker's bootstrap hands the script to /bin/sh as one argument: Linux takes at most 128 KiB per argument
# (MAX_ARG_STRLEN, its NUL included) and guarantees 128 KiB for all of argv and the environment whatever the stack
# limit; 8 KiB stay for the environment, the other arguments and the bootstrap's sentinel.
SCRIPT_MAX_LIMIT = 120 * 1024


def _commands(raw: str) -> dict[str, str]:
    """WSEXEC_COMMANDS: a JSON object of name -> command line."""
    commands = json.loads(raw)
    if not isinstance(commands, dict) or not all(isinstance(v, str) for v in commands.values()):
        raise ValueError("not a JSON object of name -> command line")
    return commands


@dataclass(frozen=True)
class Settings:
    """Typed settings; each field maps to WSEXEC_<NAME upper-cased>."""

    # Secrets (a Redis URL may carry a password) stay out of repr(), so logging the settings never shows them.
    redis_url: str = field(default="redis://127.0.0.1:6390/0", repr=False)  # redis[s]://[user:password@]host:port/db
    redis_sentinels: str = ""  # "host:port host:port ...": sentinels to ask for the primary (redis_url's host unused)
    redis_sentinel_master: str = "wsexec"  # the name the sentinels monitor the primary under
    redis_sentinel_password: str = field(default="", repr=False)  # the sentinels' own requirepass, if any
    queue: str = "wsexec"
    users: str = field(default="", repr=False)  # "name:role:hash name:role:hash" (hash from `wsexec-auth hash PW`)
    tokens: str = field(default="", repr=False)  # "name:role:sha256 ..." (from `wsexec-auth token NAME ROLE`)
    users_file: str = ""  # a file with more lines in the users/tokens format, "user ..." / "token ..."
    ssh_key: str = "var/ssh/id_ed25519"
    known_hosts: str = "var/ssh/known_hosts"
    connect_timeout: float = 10.0
    task_timeout: int = 3600
    task_timeout_max: int = 86400
    output_cap: int = 1024 * 1024
    max_body: int = 1024 * 1024
    file_max: int = 100 * 1024 * 1024  # bytes of one POST /wsexec/files upload (413 above); nginx's limit there matches
    fetch_max: int = 16 * 1024 * 1024  # bytes one fetch task may bring back (larger files: the task ends ABORT)
    trusted_proxies: int = 0  # proxy hops (nginx: 1) whose X-Forwarded-For/-Proto are believed
    public_url: str = ""  # base of absolute links ("https://wsexec.example.com"); empty: links are relative
    script_max: int = 64 * 1024
    ssh_keepalive: int = 15
    ssh_idle: int = 300
    channels_per_connection: int = 9
    connects_per_host: int = 8
    tasks_per_job: int = 50  # tasks ready at once are run in groups: one RQ job runs up to this many
    worker_threads: int = 16  # tasks one job runs at the same time (at most channels_per_connection per host)
    worker_jobs: int = 8  # RQ jobs one worker process runs at the same time (job slots sharing its SSH pool)
    stop_grace: int = 3600  # seconds a stopping worker lets its running tasks finish before it kills them
    lease_seconds: int = 10
    retention_days: float = 30  # finished tasks and their output are deleted this long after they end
    reconcile_grace: float = 60  # seconds before an INIT task that RQ holds nowhere is ended ABORT by the workers
    idempotency_window: int = 86400  # seconds a POST's answer is kept for retries with the same Idempotency-Key
    audit_max: int = 100_000  # audit log entries kept (the oldest are dropped)
    audit_max_bytes: int = 64 * 1024 * 1024  # bytes of audit entries (JSON) kept, whatever their number
    login_failures_per_address: int = 10  # failed logins (passwords or tokens) from one address per window: then 429
    login_failures_per_user: int = 30  # failed passwords for one user name per window, from anywhere: then 429
    login_window: int = 300  # seconds a failure counts, from the first of the window
    redis_connections: int = 1100  # Redis connections one web process may hold: above WSEXEC_GUNICORN_CONNECTIONS
    wait_max: int = 300  # seconds a ?wait=SECONDS may ask for (beyond: 422); keep nginx's and gunicorn's timeouts above
    user_waits_max: int = 4  # ?wait requests one user may have open at once (beyond: 429)
    user_tasks_max: int = 2000  # tasks one user may have INIT or CURRENT at once (beyond: 429)
    events_window: int = 10_000  # lifecycle events kept in Redis for /wsexec/events to resume from (about)
    events_heartbeat: float = 5.0  # seconds between comment heartbeats on an idle /wsexec/events stream
    events_streams_max: int = 200  # /wsexec/events streams one web process serves at once (beyond: 503)
    scheduler: int = 1  # 1: this worker process fires due schedules (any number may: each fire is claimed once)
    schedule_grace: float = 60.0  # seconds after its time a fire still runs; older ones were missed (see catch_up)
    login_users: str = ""  # login users allowed on instances without their own login_users (besides their user)
    webhook_allow: str = ""  # URL prefixes webhooks may call, space separated; empty: every webhook is refused (422)
    webhooks: str = ""  # JSON array of {"url": ..., "on": [DONE, FAILED, ABORT]}: called for every task's end
    webhook_secret: str = field(default="", repr=False)  # HMAC-SHA256 key of X-Wsexec-Signature; empty: refused
    webhook_attempts: int = 5  # tries per delivery before it is given up (failed)
    webhook_backoff: float = 2.0  # seconds before the second try; doubled before each next one
    webhook_timeout: float = 5.0  # seconds to connect, and to wait for each read of the answer
    webhook_deliveries_max: int = 10_000  # delivery records kept (the oldest are dropped, pending ones too)
    websh_ticket_ttl: float = 30.0  # seconds a terminal's one-time websocket URL stays valid
    websh_idle: float = 900.0  # seconds a terminal may go without a keystroke before it is closed (1008)
    websh_max: float = 28800.0  # seconds a terminal may stay open in all (then closed, 1008)
    websh_recording_max: int = 2 * 1024 * 1024  # bytes of a session's asciicast recording; beyond, it stops growing
    websh_origins: str = ""  # websocket Origins allowed besides the request's own host, space separated
    websh_ping: float = 25.0  # seconds between websocket pings, so proxies keep an idle terminal open
    commands: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COMMANDS))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read WSEXEC_* variables, converting each to its field's type."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f"WSEXEC_{f.name.upper()}"
            raw = source.get(name)
            if raw is None:
                continue
            try:
                values[f.name] = _PARSERS.get(str(f.type), str)(raw) if f.name != "commands" else _commands(raw)
            except ValueError as exc:  # a service that won't start should say which variable is wrong
                raise ValueError(f"{name}={raw!r}: {exc}") from None
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if not 1 <= self.script_max <= SCRIPT_MAX_LIMIT:
            raise ValueError(f"WSEXEC_SCRIPT_MAX={self.script_max}: must be within 1..{SCRIPT_MAX_LIMIT} bytes "
                             "(the script is one argument of /bin/sh on the host, and Linux limits that)")
        try:
            notify.global_hooks(self.webhooks)
        except ValueError as exc:
            raise ValueError(f"WSEXEC_WEBHOOKS: {exc}") from None

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400

    def to_env(self) -> dict[str, str]:
        """The WSEXEC_* variables that reproduce these settings in another process (workers, gunicorn)."""
        return {
            f"WSEXEC_{f.name.upper()}": json.dumps(value) if isinstance(value, dict) else str(value)
            for f in fields(self)
            for value in [getattr(self, f.name)]
        }
