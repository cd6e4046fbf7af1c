"""Docker HEALTHCHECK for a face3d worker (``python -m face3d.worker.healthcheck``): healthy when a Celery worker on this
host answers a ping.

Worker names are ``face3d-<queues>-<pid>@<hostname>`` (worker/cli.py) and a container's hostname is its own, so
a reply whose name ends in ``@<hostname>`` comes from this container.
"""
from __future__ import annotations

import socket
import sys


def answered_here(replies: list[dict] | None, hostname: str) -> bool:
    return any(name.endswith(f"@{hostname}") for reply in replies or [] for name in reply)


def main() -> int:
    from face3d.shared.config import load_settings
    from face3d.shared.queue import make_celery

    replies = make_celery(load_settings()).control.ping(timeout=5.0)
    return 0 if answered_here(replies, socket.gethostname()) else 1


if __name__ == "__main__":
    sys.exit(main())
