"""WSEXEC_REDIS_URL may carry credentials and ask for TLS: both reach the client, neither shows in a repr or log."""

from __future__ import annotations

import pytest
from redis.connection import Connection, SSLConnection
from redis.sentinel import SentinelConnectionPool

from wsexec.config import Settings
from wsexec.store import connect
from wsexec.store.connection import PrimaryConnection, PrimarySSLConnection, sentinel_addresses

SECRET = "s3cr@t/pw"  # percent-encoded in the URL, as EXPORTME.txt says


@pytest.mark.parametrize(
    ("url", "connection_class", "username", "db"),
    [
        ("redis://wsexec:s3cr%40t%2Fpw@10.1.2.3:6380/2", Connection, "wsexec", 2),
        ("redis://:s3cr%40t%2Fpw@10.1.2.3:6380/0", Connection, None, 0),
        ("rediss://wsexec:s3cr%40t%2Fpw@10.1.2.3:6380/1", SSLConnection, "wsexec", 1),
    ],
)
def test_the_url_credentials_and_tls_reach_the_client(url: str, connection_class: type, username: str | None,
                                                      db: int) -> None:
    client = connect(Settings.from_env({"WSEXEC_REDIS_URL": url}))  # no connection is made yet
    pool = client.connection_pool
    assert pool.connection_class is connection_class
    assert pool.connection_kwargs.get("username") == username
    assert (pool.connection_kwargs["password"], pool.connection_kwargs["db"]) == (SECRET, db)
    assert (pool.connection_kwargs["host"], pool.connection_kwargs["port"]) == ("10.1.2.3", 6380)
    for shown in (repr(client), repr(pool), repr(pool.make_connection())):
        assert "s3cr" not in shown


def test_settings_keep_secrets_out_of_their_repr() -> None:
    settings = Settings(redis_url="redis://wsexec:hunter2@127.0.0.1:6390/0", users="a:admin:hash-1",
                        tokens="b:viewer:digest-2")
    for secret in ("hunter2", "hash-1", "digest-2"):
        assert secret not in repr(settings)


@pytest.mark.parametrize(("scheme", "connection_class"),
                         [("redis", PrimaryConnection), ("rediss", PrimarySSLConnection)])
def test_with_sentinels_the_url_gives_credentials_and_tls_and_the_sentinels_the_primary(
        scheme: str, connection_class: type) -> None:
    settings = Settings.from_env({"WSEXEC_REDIS_URL": f"{scheme}://wsexec:s3cr%40t%2Fpw@unused:1/3",
                                  "WSEXEC_REDIS_SENTINELS": "10.0.0.1:26379, [fd00::2]:26380",
                                  "WSEXEC_REDIS_SENTINEL_MASTER": "main", "WSEXEC_REDIS_SENTINEL_PASSWORD": "sent-pw"})
    client = connect(settings)  # no connection is made yet
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "main"
    assert pool.connection_class is connection_class
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == ("wsexec", SECRET)
    assert pool.connection_kwargs["db"] == 3 and "host" not in pool.connection_kwargs
    sentinels = pool.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in sentinels] == [("10.0.0.1", 26379), ("fd00::2", 26380)]
    assert all(s.connection_pool.connection_kwargs["password"] == "sent-pw" for s in sentinels)
    for shown in (repr(client), repr(pool), repr(settings)):
        assert "s3cr" not in shown and "sent-pw" not in shown


@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.1:port", ":26379"])
def test_a_sentinel_address_must_be_host_and_port(value: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        sentinel_addresses(value)
