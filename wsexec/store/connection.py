"""The Redis client wsexec's web processes and workers share the settings of: one server, or a Sentinel set."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

if TYPE_CHECKING:
    from wsexec.config import Settings

SOCKET_TIMEOUT = 5.0  # seconds a reply may take (redis-py's default, made explicit: blocking reads stay below it)
SENTINEL_TIMEOUT = 1.0  # seconds one sentinel may take to say who the primary is, before the next one is asked


def connect(settings: Settings, retries: int = 40, max_connections: int | None = None) -> Redis:
    """A client that rides out a Redis restart or failover (40 retries: about 30 s) instead of failing a task.

    With WSEXEC_REDIS_SENTINELS set, every new connection asks the sentinels for the current primary, and a reply
    from a demoted one (READONLY) drops the connection, so the retry lands on the new primary; the URL then gives
    only the credentials, the database and TLS. max_connections: the pool's cap (redis-py's default is 100).
    """
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
        "retry_on_error": [ConnectionError, TimeoutError],
        "health_check_interval": 10,
    }
    if not settings.redis_sentinels:
        return Redis.from_url(settings.redis_url, **options)
    url = parse_url(settings.redis_url)
    sentinel = Sentinel(
        sentinel_addresses(settings.redis_sentinels),
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT,
                         "password": settings.redis_sentinel_password or None},
    )
    ssl = url.get("connection_class") is SSLConnection
    return sentinel.master_for(
        settings.redis_sentinel_master,
        username=url.get("username"), password=url.get("password"), db=url.get("db", 0),
        connection_class=PrimarySSLConnection if ssl else PrimaryConnection,
        **options,
    )


class PrimaryConnection(SentinelManagedConnection):
    """Asks the sentinels for the primary on every reconnect, including a retried command's.

    redis-py 8 reconnects a dropped connection in send_packed_command through connect_check_health, which skips
    SentinelManagedConnection.connect's question to the sentinels: after a failover a retried command kept dialing
    the old primary until its retries ran out (RQ's scheduler lock, then the whole worker, died of it).
    """

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock or not retry_socket_connect:  # connected, or connect_to() dialing the address just asked for
            return super().connect_check_health(check_health, retry_socket_connect)
        return self.connect()


class PrimarySSLConnection(PrimaryConnection, SSLConnection):
    """The same over TLS (rediss:// URLs)."""


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """WSEXEC_REDIS_SENTINELS: "host:port host:port ..." (commas work too)."""
    addresses = []
    for item in value.replace(",", " ").split():
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{item!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def execute_scripted(redis: Redis, queue: Callable[[Pipeline], None], transaction: bool = True) -> list[Any]:
    """Queue commands that run scripts on a pipeline and execute it; once more if its retry met a restarted Redis.

    redis-py loads a pipeline's scripts before its first try only: when Redis restarts under it, the retried EVALSHA
    finds no script (NOSCRIPT), although the first try may have run. So what `queue` adds must be safe to run twice.
    That repeat is also what loads them when Redis does not have them: the first try sends no SCRIPT EXISTS (a round
    trip per claim otherwise), as Script.__call__ outside a pipeline does.
    """
    def execute(load: bool) -> list[Any]:
        with redis.pipeline(transaction=transaction) as pipe:
            queue(pipe)
            if not load:
                pipe.scripts.clear()
            return pipe.execute()

    try:
        return execute(load=False)
    except NoScriptError:  # this execute() loads the scripts
        return execute(load=True)
