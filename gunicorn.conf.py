"""gunicorn settings for wsexec; every value can be overridden by the WSEXEC_* variable named beside it."""

import os

bind = os.environ.get("WSEXEC_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WSEXEC_GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("WSEXEC_GUNICORN_THREADS", "4"))
worker_class = "gthread"  # threads: a ?wait=SECONDS request must not block a whole worker
timeout = int(os.environ.get("WSEXEC_GUNICORN_TIMEOUT", "330"))  # above the longest ?wait (300 s)
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("WSEXEC_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("WSEXEC_FORWARDED_ALLOW_IPS", "127.0.0.1")
# No ~/.gunicorn/gunicorn.ctl: systemd and scripts/run.sh manage gunicorn with signals, and that one shared path
# would be taken over (and deleted on exit) by every other gunicorn of the same user, e.g. parallel tests.
control_socket_disable = True
