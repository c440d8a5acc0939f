"""The Redis client wsexec's web processes and workers share the settings of."""

from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

SOCKET_TIMEOUT = 5.0  # seconds a reply may take (redis-py's default, made explicit: blocking reads stay below it)


def connect(url: str, retries: int = 40, max_connections: int | None = None) -> Redis:
    """A client that rides out a Redis restart (40 retries: about 30 s) instead of failing a task or a worker.

    max_connections: the pool's cap (redis-py's default is 100, beyond which a call fails "Too many connections").
    """
    return Redis.from_url(
        url,
        max_connections=max_connections,
        socket_timeout=SOCKET_TIMEOUT,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
        retry_on_error=[ConnectionError, TimeoutError],
        health_check_interval=10,
    )
