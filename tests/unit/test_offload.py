"""wsexec.offload: under gevent (as gunicorn's worker runs the app) a CPU-bound call must leave the loop serving."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

UNDER_GEVENT = """
from gevent import monkey; monkey.patch_all()
import gevent, hashlib, threading
from wsexec import offload
order = []
def hash_it():
    order.append(("hash", threading.get_native_id() != main))
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 300_000)
def other():
    while not order:
        gevent.sleep(0.001)
    order.append(("other greenlet", True))
main = threading.get_native_id()
gevent.spawn(other)
offload.blocking(hash_it)
order.append(("returned", True))
print(order)
"""


def test_under_gevent_the_call_runs_in_another_thread_while_greenlets_go_on() -> None:
    done = subprocess.run([sys.executable, "-c", UNDER_GEVENT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('hash', True), ('other greenlet', True), ('returned', True)]"


def test_without_gevent_it_is_a_plain_call() -> None:
    from wsexec import offload

    assert offload.blocking(divmod, 7, 2) == (3, 1)
