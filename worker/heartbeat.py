"""Proof of life for running jobs: a thread stamps ``jobs.heartbeat_at`` while a job runs, and the rule for a
redelivered message of a running job: take it over only when the worker that holds it is really gone.

Why a database heartbeat rather than Celery's own signals: the database is the source of truth the sweeper reads,
and it also works when a whole worker (not only a pool process) dies and no broker redelivery comes for an hour
(the visibility timeout).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from face3d.shared import db, jobs, models
from face3d.shared.config import Settings
from face3d.shared.errors import JobCanceled, NotFound
from face3d.shared.states import JobState

if TYPE_CHECKING:
    from face3d.shared.queue import JobQueue

log = logging.getLogger(__name__)


class OwnershipLost(JobCanceled):
    """The job is no longer this worker's (requeued by the sweeper, failed, deleted): stop without touching it."""


def worker_identity(node_name: str, pid: int | None = None) -> str:
    """``<celery node>/<pid>``: unique per process, so a prefork sibling never passes for the owner."""
    return f"{node_name}/{os.getpid() if pid is None else pid}"


class Heartbeat:
    """``with Heartbeat(...) as beat:`` stamps heartbeat_at now and every ``interval_s`` until the block ends.

    ``beat.lost`` is set once a stamp finds the job no longer running under this worker.
    """

    def __init__(self, sf: db.SessionFactory, job_id: str, worker: str, interval_s: float) -> None:
        self.sf, self.job_id, self.worker, self.interval_s = sf, job_id, worker, interval_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id[:8]}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s) and not self.lost.is_set():
            self._beat()

    def _beat(self) -> None:
        try:
            if not jobs.touch_heartbeat(self.sf, self.job_id, self.worker):
                log.warning("job %s is no longer run by %s; stopping at the next stage", self.job_id, self.worker)
                self.lost.set()
        except Exception as exc:  # database hiccup: the next beat tries again; the timeout absorbs a few misses
            log.warning("heartbeat of job %s not written: %s", self.job_id, exc)


def previous_owner_lost(sf: db.SessionFactory, job: models.Job, settings: Settings,
                        poll_s: float | None = None) -> bool:
    """For a redelivered message of a running job: is the worker holding it gone?

    Yes when it never beat, when it is a dead process on this host, or when its heartbeat is (or becomes, while we
    watch for up to HEARTBEAT_TIMEOUT_S) older than the timeout. A live worker's next beat answers no.
    """
    if job.heartbeat_at is None or _local_process_dead(job.worker):
        return True
    timeout = timedelta(seconds=settings.heartbeat_timeout_s)
    poll_s = poll_s or min(1.0, settings.heartbeat_interval_s / 2)
    first_beat = job.heartbeat_at
    while True:
        if db.utcnow() - jobs.last_sign_of_life(job) > timeout:
            return True
        time.sleep(poll_s)
        try:
            job = jobs.get_job(sf, job.id)
        except NotFound:
            return False
        if job.state is not JobState.RUNNING or job.heartbeat_at is None or job.heartbeat_at != first_beat:
            return False


def _local_process_dead(worker: str | None) -> bool:
    """True only when ``worker`` names a process on this host that no longer exists (or is a zombie)."""
    node, _, pid = (worker or "").rpartition("/")
    host = node.rpartition("@")[2]
    if not pid.isdigit() or not host or host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def announce_engines_while_running(queue: "JobQueue", settings: Settings,
                                   stop: threading.Event | None = None) -> threading.Thread:
    """A daemon thread that announces GPU_ENGINES every third of GPU_WORKER_FRESH_S (the API refuses those engines
    while no announcement is fresh); a broker that does not answer is logged and tried again at the next beat."""
    stop = stop or threading.Event()
    every_s = max(0.5, settings.gpu_worker_fresh_s / 3)

    def run() -> None:
        while True:
            try:
                queue.announce_engines(settings.gpu_engines, settings.gpu_worker_fresh_s)
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("could not announce engines %s: %s", ", ".join(settings.gpu_engines), exc)
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=run, name="engine-announcer", daemon=True)
    thread.start()
    return thread
