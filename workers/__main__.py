"""`python -m workers [--burst]`: one wsexec worker process running WSEXEC_WORKER_JOBS RQ jobs at a time."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from workers.process import WorkerProcess
from wsexec.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--name", default=f"{socket.gethostname()}.{os.getpid()}",
                        help="default: host.pid; its RQ workers (job slots) are NAME.slot-N")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # paramiko logs every MaxSessions refusal as an ERROR, but the pool retries them; task errors are ours to log.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    sys.exit(WorkerProcess(Settings.from_env(), args.name).run(burst=args.burst))


if __name__ == "__main__":
    main()
