"""gunicorn settings for wsexec; every value can be overridden by the WSEXEC_* variable named beside it."""

import gc
import os

from wsexec import wire

bind = os.environ.get("WSEXEC_BIND", "127.0.0.1:5000")
# Processes: one per core (2 on the 2-core reference machine), from `make bench-http` (GET one task, 50 connections,
# wrk): through nginx a GET cost gunicorn 1.26 ms of CPU with 2 gevent processes and 1.80 with 4 on a quiet machine
# (bench/results/http-20261204T195000Z.txt, before this file's cheaper paths), 1.70 / 1.86 / 2.02 with 2 / 3 / 4 on a
# loaded one (http-20261204T211706Z.txt, load 13 / 21 / 19-25): processes beyond the cores add switching and buy no
# capacity; nginx, Redis and the clients need the rest of the cores. Requests a second swung 3x between runs on the
# shared machine: measure on yours before raising it. gthread (2 x 8 threads) cost 1.17 ms in the loaded run but
# holds a thread per open connection, which ?wait requests, streams, terminals and slow clients would exhaust (below).
workers = int(os.environ.get("WSEXEC_GUNICORN_WORKERS", "2"))
# gevent: every connection is a greenlet, not a thread. A ?wait=SECONDS request, a client that sends its headers one
# byte a minute (slowloris), or (later) an SSE stream or a websocket costs a few KB, not one of a handful of threads.
# The worker monkey-patches the standard library before loading the app, so redis-py (a ?wait's or a stream's XREAD
# BLOCK) and RQ's enqueueing yield instead of blocking; CPU-bound password hashing runs in a thread pool
# (wsexec.offload).
worker_class = "gevent"
worker_connections = int(os.environ.get("WSEXEC_GUNICORN_CONNECTIONS", "1000"))  # open connections per worker
timeout = int(os.environ.get("WSEXEC_GUNICORN_TIMEOUT", "330"))  # above the longest ?wait (300 s)
graceful_timeout = 30
keepalive = 5
accesslog = "-"
logger_class = "wsexec.accesslog.AccessLogger"  # %(u)s only once authenticated, client-chosen values escaped
wire.install()  # a small answer's headers and body in one send, not two (wsexec/wire.py)
errorlog = "-"
loglevel = os.environ.get("WSEXEC_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("WSEXEC_FORWARDED_ALLOW_IPS", "127.0.0.1")
# No ~/.gunicorn/gunicorn.ctl: systemd and scripts/run.sh manage gunicorn with signals, and that one shared path
# would be taken over (and deleted on exit) by every other gunicorn of the same user, e.g. parallel tests.
control_socket_disable = True


def post_worker_init(worker: object) -> None:
    """Keep the loaded app (about 100k objects) out of the collector's full collections: each one stopped the process,
    and every request it held, for 50-150 ms (gc.callbacks timing a GET one task loop; once per ~3,000 requests)."""
    gc.freeze()
