"""The job task: run a queued job. Thin: database verbs, storage and shared.pipeline do the work. JobTask, the
base of every task that runs a job, starts the webhook of a job it finished.

Every outcome ends in a database verb that only moves a job from the state this worker expects, so a redelivered
message of a finished job, or a job canceled or deleted meanwhile, changes nothing.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from celery import Task, shared_task
from celery import states as celery_states
from celery.exceptions import SoftTimeLimitExceeded

from face3d.shared import db, jobs, models
from face3d.shared.engines import Options, get_engine
from face3d.shared.errors import (Backoff, ErrorCode, Face3dError, InputError, JobCanceled, StorageUnavailable,
                                  retrying)
from face3d.shared.states import JobState
from face3d.shared.queue import TASK_NAME
from face3d.shared.storage import Storage, content_type_for, output_key
from face3d.worker.context import WorkerContext, context_for
from face3d.worker.publish import WRITE_EVERY_S, ArtifactPublisher, overall_progress
from face3d.worker.heartbeat import Heartbeat, OwnershipLost, previous_owner_lost, worker_identity
from face3d.worker.outages import Outlasted, Patience
from face3d.worker.webhooks import notify_finished

log = logging.getLogger(__name__)
T = TypeVar("T")
STORAGE_ATTEMPTS = 3
STORAGE_BACKOFF = Backoff(first_s=0.5)


class JobTask(Task):
    """Base of the tasks that run a job. Celery calls ``after_return`` once the task body is over, however it
    ended: a job the body finished gets its webhook here, the one finish point of the worker."""

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if status == celery_states.SUCCESS:
            notify_finished(context_for(self.app), args[0], retval)


@shared_task(name=TASK_NAME, base=JobTask, bind=True, acks_late=True)
def reconstruct_job(self: Any, job_id: str) -> str:
    return run_job(context_for(self.app), job_id, worker=worker_identity(self.request.hostname or "worker"),
                   redelivered=is_redelivery(self.request))


def is_redelivery(request: Any) -> bool:
    """Whether the broker hands this message out again (its first worker died or lost it)."""
    return bool((request.delivery_info or {}).get("redelivered"))


def run_job(ctx: WorkerContext, job_id: str, *, worker: str, redelivered: bool = False,
            patience: Patience | None = None) -> str:
    """Run one job; returns what happened: succeeded, failed, canceled, ignored, or deferred (handed back after an
    outage longer than OUTAGE_RETRY_S; worker/outages.py). An outage never fails the job."""
    patience = patience or Patience(ctx.settings.outage_retry_s, job_id)
    try:
        return _run(ctx, job_id, worker, redelivered, patience)
    except Outlasted as exc:
        log.warning("job %s: %s; handed back to the queue", job_id, exc)
        _hand_back(ctx, job_id, worker)
        return "deferred"


def _run(ctx: WorkerContext, job_id: str, worker: str, redelivered: bool, patience: Patience) -> str:
    tries = itertools.count()
    claim = patience.retry(lambda: _claim(ctx, job_id, worker, redelivered, resumed=next(tries) > 0))
    if claim != "claimed":
        log.info("job %s: %s", job_id, "not queued, message ignored" if claim == "ignored" else claim)
        return claim
    sf = ctx.session_factory
    try:
        with Heartbeat(sf, job_id, worker, ctx.settings.heartbeat_interval_s) as beat:
            result = patience.retry(lambda: _reconstruct(ctx, jobs.get_job(sf, job_id), beat.lost))
    except Outlasted:
        raise
    except OwnershipLost:
        log.warning("job %s: taken from this worker meanwhile; result dropped", job_id)
        return "ignored"
    except JobCanceled:
        patience.retry(lambda: jobs.mark_canceled(sf, job_id))
        return "canceled"
    except SoftTimeLimitExceeded:
        return _fail(ctx, patience, job_id, ErrorCode.TIMEOUT,
                     f"the job ran longer than {ctx.settings.job_time_limit_s} s")
    except Face3dError as exc:
        return _fail(ctx, patience, job_id, exc.code, exc.message)
    except Exception as exc:
        log.exception("job %s: unexpected error", job_id)
        return _fail(ctx, patience, job_id, ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
    return "succeeded" if patience.retry(lambda: jobs.mark_succeeded(sf, job_id, result)) else "ignored"


def _fail(ctx: WorkerContext, patience: Patience, job_id: str, code: ErrorCode, message: str) -> str:
    patience.retry(lambda: jobs.mark_failed(ctx.session_factory, job_id, code, message))
    return "failed"


def _hand_back(ctx: WorkerContext, job_id: str, worker: str) -> None:
    """After a long outage: requeue the job if this worker holds it and the database answers again (the sweeper
    then resends it); otherwise the sweeper's heartbeat rule takes it back later."""
    try:
        job = jobs.find_job(ctx.session_factory, job_id)
        if job is not None and job.state is JobState.RUNNING and job.worker == worker[:255]:
            jobs.requeue(ctx.session_factory, job_id)
    except Exception as exc:  # noqa: BLE001 - still down: nothing more to do here
        log.warning("job %s: not requeued (%s); the sweeper will take it back", job_id, type(exc).__name__)


def _claim(ctx: WorkerContext, job_id: str, worker: str, redelivered: bool, resumed: bool = False) -> str:
    """queued -> running: "claimed". A redelivered message of a job left running means the previous worker died
    mid-job: run it again, or "failed" (worker_lost) after JOB_MAX_ATTEMPTS. ``resumed``: an outage interrupted an
    earlier try of this very call, whose claim may have committed. Else "ignored"."""
    sf = ctx.session_factory
    if jobs.mark_running(sf, job_id, worker):
        return "claimed"
    job = jobs.find_job(sf, job_id) if redelivered or resumed else None
    if job is None or job.state is not JobState.RUNNING:
        return "ignored"
    if resumed and job.worker == worker[:255]:
        return "claimed"
    if not redelivered:
        return "ignored"
    if not previous_owner_lost(sf, job, ctx.settings):
        log.info("job %s: redelivered while its worker is alive, message ignored", job_id)
        return "ignored"
    if job.attempts >= ctx.settings.job_max_attempts:
        failed = jobs.mark_failed(sf, job_id, ErrorCode.WORKER_LOST,
                                    f"the worker stopped during each of {job.attempts} attempts")
        return "failed" if failed else "ignored"      # "failed": the caller sends its webhook
    log.warning("job %s: previous worker lost, running it again", job_id)
    return "claimed" if jobs.requeue(sf, job_id) and jobs.mark_running(sf, job_id, worker) else "ignored"


def _reconstruct(ctx: WorkerContext, job: models.Job, lost: threading.Event | None = None) -> dict[str, Any]:
    from face3d.shared.pipeline import process_photo

    progress = ProgressReporter(ctx.session_factory, job.id, lost)
    data = with_storage_retries(lambda: ctx.storage.get_bytes(job.input_key))
    options = options_for_engine(job.options)
    options = dataclasses.replace(options, max_pixels=min(options.max_pixels, ctx.settings.max_pixels),
                                  decode_memory_bytes=ctx.settings.decode_memory_bytes)
    publisher = ArtifactPublisher(ctx.session_factory, ctx.storage, job.id, _upload_all, result_summary, progress)
    progress("load_engine")
    engine = get_engine(job.engine)
    try:
        with tempfile.TemporaryDirectory(prefix=f"face3d-{job.id}-") as folder:
            process_photo(data, job.input_name, engine, options, Path(folder), progress=progress,
                          on_written=publisher)
            progress("upload")
    except OwnershipLost:
        raise                   # the job is another worker's now: its files are not ours to remove
    except BaseException:
        publisher.discard(lambda: _remove_outputs(ctx.storage, job.id))     # a failed job leaves no partial output
        raise
    return publisher.result


def _upload_all(storage: Storage, job_id: str, paths: list[Path]) -> list[dict[str, Any]]:
    """Every artifact, or none: a failed upload (a full disk, an outage) removes the ones already stored, so a
    failed job leaves no partial output."""
    try:
        return [_upload(storage, job_id, path) for path in paths]
    except Exception:
        _remove_outputs(storage, job_id)
        raise


def _remove_outputs(storage: Storage, job_id: str) -> None:
    try:
        storage.delete_prefix(output_key(job_id, "x").rsplit("/", 1)[0] + "/")
    except Exception as exc:  # noqa: BLE001 - the storage sweep can't help here (the row exists); log it
        log.warning("job %s: partial outputs left after a failed job: %s", job_id, exc)


def _upload(storage: Storage, job_id: str, path: Path) -> dict[str, Any]:
    key = output_key(job_id, path.name)
    content_type = content_type_for(path.name)
    with_storage_retries(lambda: storage.put_file(key, path, content_type=content_type))
    return {"name": path.name, "key": key, "size": path.stat().st_size, "content_type": content_type, "ready": True}


def with_storage_retries(action: Callable[[], T], attempts: int = STORAGE_ATTEMPTS) -> T:
    return retrying(action, attempts=attempts, backoff=STORAGE_BACKOFF,
                    transient=lambda error: isinstance(error, StorageUnavailable))


def options_for_engine(raw: dict[str, Any] | None) -> Options:
    """A job's stored options as the engine's Options; unknown or ill-typed ones fail the job."""
    known = {field.name for field in dataclasses.fields(Options)}
    unknown = set(raw or {}) - known
    if unknown:
        raise InputError(f"unknown option(s): {', '.join(sorted(unknown))}", ErrorCode.VALIDATION_FAILED)
    try:
        return Options(**(raw or {}))
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid options: {exc}", ErrorCode.VALIDATION_FAILED) from None


def result_summary(reconstruction: Any, artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    faces = [
        {"index": face.index, "bbox": [round(float(v), 1) for v in face.bbox], "score": round(float(face.score), 4),
         "yaw": round(float(face.yaw), 2), "pitch": round(float(face.pitch), 2), "roll": round(float(face.roll), 2),
         "warnings": list(face.warnings)}
        for face in reconstruction.faces
    ]
    return {"faces": faces, "artifacts": artifacts, "warnings": list(reconstruction.warnings),
            "timings_ms": {k: round(float(v), 1) for k, v in reconstruction.timings_ms.items()}}


class ProgressReporter:
    """The pipeline's progress callback: records the stage and the job's progress (weighted by each stage's cost,
    worker/publish.py), and stops the job at a stage boundary if it was canceled (or is no longer this worker's to
    finish). Inside a stage (``fraction`` given) it writes at most every WRITE_EVERY_S."""

    def __init__(self, sf: db.SessionFactory, job_id: str, lost: threading.Event | None = None) -> None:
        self.sf = sf
        self.job_id = job_id
        self.progress = 0.0
        self.lost = lost
        self.written_at = 0.0

    def __call__(self, stage: str, fraction: float | None = None) -> None:
        self.progress = overall_progress(stage, fraction, self.progress)
        now = time.monotonic()
        if fraction is not None and fraction < 1.0 and now - self.written_at < WRITE_EVERY_S:
            return
        self.written_at = now
        canceled = None if self.lost is not None and self.lost.is_set() else jobs.report_progress(
            self.sf, self.job_id, stage, self.progress)
        if canceled is None:
            raise OwnershipLost(f"job {self.job_id} is no longer running under this worker")
        if canceled:
            raise JobCanceled(f"job {self.job_id} was canceled")
