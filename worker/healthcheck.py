"""Docker HEALTHCHECK for a face3d worker (``python -m face3d.worker.healthcheck``): healthy when a Celery worker on this
host answers a ping.

Worker names are ``face3d-<queues>-<pid>@<hostname>`` (worker/cli.py) and a container's hostname is its own, so
a reply whose name ends in ``@<hostname>`` comes from this container. A gpu worker is healthy only once HRN has
loaded (its pool child writes HRN's state to a status file, shared/engines/hrn/process.py); the reason is printed
into Docker's health log.
"""
from __future__ import annotations

import socket
import sys


def answered_here(replies: list[dict] | None, hostname: str) -> bool:
    return any(name.endswith(f"@{hostname}") for reply in replies or [] for name in reply)


def main() -> int:
    from face3d.shared.config import load_settings
    from face3d.shared.engines.hrn.gpu_worker import hrn_health_problem
    from face3d.shared.queue import make_celery

    replies = make_celery(load_settings()).control.ping(timeout=5.0)
    problem = hrn_health_problem()           # None unless this is a gpu worker whose HRN is not loaded
    if problem:
        print(problem)
    return 0 if answered_here(replies, socket.gethostname()) and not problem else 1


if __name__ == "__main__":
    sys.exit(main())
