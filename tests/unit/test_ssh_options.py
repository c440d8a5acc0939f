"""SshOptions from Settings, Endpoint names and a Connection's life before it opens: no sshd needed."""

from __future__ import annotations

import threading
from pathlib import Path

from workers.ssh import Connection, Endpoint, SshOptions, parse_host_key
from wsexec.config import Settings


def test_options_come_from_the_settings() -> None:
    settings = Settings(connect_timeout=4.5, ssh_keepalive=7, ssh_idle=60, channels_per_connection=5,
                        connects_per_host=3)
    assert SshOptions.from_settings(settings) == SshOptions(connect_timeout=4.5, keepalive=7, idle_seconds=60,
                                                            channels_per_connection=5, connects_per_host=3)


def test_known_hosts_names_follow_openssh() -> None:
    assert Endpoint("10.0.0.1", 22, "u").known_hosts_name == "10.0.0.1"
    assert Endpoint("10.0.0.1", 2222, "u").known_hosts_name == "[10.0.0.1]:2222"
    assert Endpoint("h", 22, "u", "SHA256:x").pool_key != Endpoint("h", 22, "u").pool_key


def test_a_connection_counts_its_channels_and_closes_before_opening(tmp_path: Path) -> None:
    key = parse_host_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    connection = Connection(Endpoint("127.0.9.9", 22, "u"), key, str(tmp_path / "known_hosts"),
                            SshOptions(channels_per_connection=2))
    assert not connection.is_connected
    connection.close()  # nothing opened: a no-op
    connection.acquire()
    connection.acquire()
    assert (connection.in_use, connection.idle) == (2, False)
    third = threading.Thread(target=connection.acquire)
    third.start()
    third.join(0.2)
    assert third.is_alive()  # all slots taken: the third waits
    connection.release()
    third.join(5)
    assert not third.is_alive() and connection.in_use == 2
    connection.release()
    connection.release()
    assert connection.idle
