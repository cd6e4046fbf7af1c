"""`face3d worker`: a Celery worker consuming the cpu and/or gpu queue."""
from __future__ import annotations

import dataclasses
import os
import socket

import click

from shared.queue import CPU_QUEUE, SERVE_QUEUES

# The modules whose tasks a worker consumes (a sender needs only their names, from shared.queue).
TASK_MODULES = ("worker.tasks", "worker.batch_tasks", "worker.webhooks")


@click.command()
@click.option("--queues", "-Q", default=CPU_QUEUE, show_default=True,
              help=f"Comma-separated queues, in priority order: {', '.join(SERVE_QUEUES)}.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Worker processes (default WORKER_CONCURRENCY). Each loads its own engine.")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True)
@click.option("--loglevel", "-l", default="info", show_default=True)
@click.option("--migrate/--no-migrate", default=False, show_default=True,
              help="Run database migrations before consuming (handy with the embedded SQLite default).")
def worker(queues: str, concurrency: int | None, pool: str, loglevel: str, migrate: bool) -> None:
    """Run a worker: takes queued jobs, reconstructs them, stores the artifacts."""
    from shared.broker import embedded_broker
    from shared.config import load_settings
    from shared.migrations import upgrade
    from shared.queue import QUEUES, make_celery

    names = [name.strip() for name in queues.split(",") if name.strip()]
    unknown = set(names) - set(QUEUES)
    if not names or unknown:
        raise click.BadParameter(f"choose from {', '.join(QUEUES)}", param_hint="--queues")
    settings = load_settings()
    if migrate:
        upgrade(settings.database_url)
    argv = ["worker", "-Q", ",".join(names), "-c", str(concurrency or settings.worker_concurrency),
            "-P", pool, "-l", loglevel, "-n", f"face3d-{'-'.join(names)}-{os.getpid()}@{socket.gethostname()}",
            "--without-gossip", "--without-mingle"]
    if not settings.uses_embedded_broker:
        make_celery(settings, include=TASK_MODULES).worker_main(argv)
        return
    with embedded_broker(settings.data_dir) as broker:
        settings = dataclasses.replace(settings, broker_url=broker.url)
        make_celery(settings, include=TASK_MODULES).worker_main(argv)


if __name__ == "__main__":
    worker()
