"""`python -m workers [--burst]`: one wsexec worker on the configured queue (run several for more throughput)."""

from __future__ import annotations

import argparse
import logging
import os
import socket

from workers.rq_adapter import SERIALIZER, make_queue
from workers.worker import TaskWorker
from wsexec.config import Settings
from wsexec.store import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--name", default=f"{socket.gethostname()}.{os.getpid()}", help="default: host.pid")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # paramiko logs every MaxSessions refusal as an ERROR, but the pool retries them; task errors are ours to log.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    settings = Settings.from_env()
    redis = connect(settings.redis_url)
    queue = make_queue(redis, settings.queue)
    worker = TaskWorker([queue], connection=redis, name=args.name, settings=settings, serializer=SERIALIZER)
    worker.work(burst=args.burst, with_scheduler=True, logging_level="WARNING")


if __name__ == "__main__":
    main()
