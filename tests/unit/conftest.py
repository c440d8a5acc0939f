"""The unit tier starts nothing: a test here that asks for a daemon fixture fails before it runs."""

from __future__ import annotations

import pytest

DAEMON_FIXTURES = {"redis_server", "redis", "store", "app", "api", "sshd", "make_sshd", "demo_host", "instance",
                   "workers", "gunicorn_url", "settings", "known_hosts"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    used = DAEMON_FIXTURES & set(getattr(item, "fixturenames", ()))
    if used:
        pytest.fail(f"{item.nodeid} is a unit test but uses {sorted(used)}: move it out of tests/unit/")
