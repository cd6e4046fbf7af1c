"""The batch tasks. ``expand_batch`` turns a batch's source into items (shared/expansion.py). ``batch_item``: read the item's bytes once (hash, type check, copy from an s3:// source into storage), reuse
an earlier result on the same bytes and options, and otherwise run it as an ordinary job (worker.tasks.run_job).

Hashing happens here, not in the API, so submitting a 10,000-object S3 prefix reads no object at all.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

from celery import shared_task
from sqlalchemy.exc import SQLAlchemyError

from face3d.shared import batches, expansion, jobs, models
from face3d.shared.errors import Face3dError
from face3d.shared.imaging import check_image_bytes
from face3d.shared.queue import BATCH_TASK_NAME, EXPAND_TASK_NAME
from face3d.shared.states import JobState
from face3d.shared.storage import input_key, make_s3_client, output_key, read_source
from face3d.worker.context import WorkerContext, context_for
from face3d.worker.heartbeat import worker_identity
from face3d.worker.outages import Outlasted, Patience, is_outage
from face3d.worker.tasks import JobTask, is_redelivery, run_job, with_storage_retries

log = logging.getLogger(__name__)
EXPAND_PAUSE_S = 30.0           # how long an expansion at its owner's in-flight cap waits before it looks again
EXPAND_RETRY_S = 10.0           # ... and one stopped by an outage (database, storage) before it resumes


@shared_task(name=EXPAND_TASK_NAME, bind=True, acks_late=True, max_retries=None)
def expand_batch(self: Any, batch_id: str) -> str:
    """Turn a batch's stored source into items from its resume point (shared/expansion.py)."""
    ctx = context_for(self.app)
    slice_s = ctx.settings.job_time_limit_s / 2
    try:
        outcome = expansion.expand(ctx.session_factory, ctx.settings, ctx.storage, ctx.queue, batch_id, slice_s)
        if outcome == "continued":      # the next slice is a task of its own; if it cannot be sent, the sweeper will
            ctx.queue.send_expand(batch_id)
        return outcome
    except expansion.Paused as paused:
        log.info("%s; expansion resumes in %.0f s", paused, EXPAND_PAUSE_S)
        raise self.retry(countdown=EXPAND_PAUSE_S) from None
    except (Face3dError, SQLAlchemyError) as exc:   # only infrastructure errors come out: resume after it
        log.warning("batch %s: expansion interrupted (%s); resuming in %.0f s", batch_id, exc, EXPAND_RETRY_S)
        raise self.retry(countdown=EXPAND_RETRY_S) from None


@shared_task(name=BATCH_TASK_NAME, base=JobTask, bind=True, acks_late=True)
def batch_item(self: Any, job_id: str) -> str:
    ctx = context_for(self.app)
    worker = worker_identity(self.request.hostname or "worker")
    patience = Patience(ctx.settings.outage_retry_s, job_id)     # one budget for reading and running the item
    try:
        outcome = patience.retry(lambda: prepare_item(ctx, job_id, worker))
    except Outlasted as exc:
        log.warning("batch item %s: %s; left queued for the sweeper", job_id, exc)
        return "deferred"
    if outcome is None:
        outcome = run_job(ctx, job_id, worker=worker, redelivered=is_redelivery(self.request), patience=patience)
    return outcome


def prepare_item(ctx: WorkerContext, job_id: str, worker: str) -> str | None:
    """Returns the final outcome when the item needs no engine run (reused, failed, gone), else None."""
    sf = ctx.session_factory
    job = jobs.find_job(sf, job_id)
    if job is None:
        return "ignored"
    if job.state is not JobState.QUEUED:
        return None                     # run_job decides (redelivery of a running job, or a finished one)
    if not job.input_sha256:
        try:
            job = _read_input(ctx, job)
        except Face3dError as exc:
            if is_outage(exc):
                raise       # the caller waits it out; the item's input is not at fault
            jobs.mark_failed(sf, job_id, exc.code, exc.message)
            return "failed"
        if job is None:
            return "ignored"
    source = jobs.find_succeeded_by_content(sf, job.input_sha256, job.engine, job.options, job.owner_id)
    if source is None:
        return None
    try:
        reused = batches.reuse_result(sf, job_id, source, worker, lambda found: _copy_artifacts(ctx, job_id, found))
    except Face3dError as exc:
        log.warning("job %s: cannot copy the result of job %s (%s); running it", job_id, source.id, exc.message)
        return None
    if reused:
        log.info("job %s: same input and options as job %s, result reused", job_id, source.id)
        return "reused"
    return None


def _copy_artifacts(ctx: WorkerContext, job_id: str, artifacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    copies = []
    for artifact in artifacts:
        key = output_key(job_id, artifact["name"])
        with_storage_retries(lambda: ctx.storage.copy(artifact["key"], key))
        copies.append({**artifact, "key": key})
    return copies


def _read_input(ctx: WorkerContext, job: models.Job) -> models.Job | None:
    data = _fetch(ctx, job.input_key)
    check_image_bytes(data, ctx.settings.max_upload_bytes, name=job.input_name)
    key = job.input_key
    if key.startswith("s3://"):
        key = input_key(job.id, job.input_name)
        with_storage_retries(lambda: ctx.storage.put_bytes(key, data))
    digest = hashlib.sha256(data).hexdigest()
    if not jobs.record_input(ctx.session_factory, job.id, input_key=key, input_size=len(data),
                                input_sha256=digest):
        return None                     # canceled meanwhile
    return jobs.get_job(ctx.session_factory, job.id)


def _fetch(ctx: WorkerContext, key: str) -> bytes:
    if not key.startswith("s3://"):
        return with_storage_retries(lambda: ctx.storage.get_bytes(key))
    return read_source(make_s3_client(ctx.settings.s3_endpoint_url, ctx.settings.s3_region), key)
