"""WSEXEC_REDIS_URL may carry credentials and ask for TLS: both reach the client, neither shows in a repr or log."""

from __future__ import annotations

import pytest
from redis.connection import Connection, SSLConnection

from wsexec.config import Settings
from wsexec.store import connect

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
    client = connect(Settings.from_env({"WSEXEC_REDIS_URL": url}).redis_url)  # no connection is made yet
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
