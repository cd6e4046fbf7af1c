"""/v1/batches: many photos in one request (item list, S3 prefix, zip upload, or item by item), one results file out.

Each item becomes an ordinary job in the batch (its own row, its own id), inserted and queued in chunks of
BATCH_CHUNK_SIZE on the low-priority ``batch`` queue. Where the items come from: api/batch_sources.py.
"""
from __future__ import annotations

import json
from itertools import islice
from typing import Any, Iterable

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError

from face3d.api import batch_sources, paging
from face3d.api.auth import current_owner, ensure_visible, visible_owner
from face3d.api.batch_sources import Pending
from face3d.api.forms import BatchCreate, BatchItemIn
from face3d.api.problems import RequestValidationError
from face3d.api.services import Services, services
from face3d.api.submission import engine_and_options
from face3d.shared import batches, jobs
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.models import Batch
from face3d.shared.schema import BatchList, JobOptions, UniqueNames, batch_view, result_line
from face3d.shared.storage import input_key, job_prefix

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")


@bp.post("")
def create_batch() -> Response:
    svc = services()
    if request.mimetype == "multipart/form-data":
        return _create_from_archive(svc)
    body = _json_body(BatchCreate)
    engine, options = engine_and_options(svc.settings, body.options)
    if body.s3_prefix is not None:
        listed = batch_sources.prefix_items(svc.settings, body.s3_prefix)
        batch = _new_batch(svc, engine, options, body.s3_prefix, body.name)
        _ingest(svc, batch, ((item, None) for item in listed))
    else:
        items, names = body.items or [], UniqueNames()
        pending = [(batch_sources.reference_item(svc.settings, item, names), None) for item in items]
        batch = _new_batch(svc, engine, options, "items" if items else "client", body.name)
        _ingest(svc, batch, pending)
    return _batch_response(svc, batch.id, status=201)


@bp.get("")
def list_batches() -> Response:
    """The caller's batches (an admin key's or an open API's: all), newest first; ``limit`` and ``cursor`` page
    them like GET /v1/jobs."""
    svc = services()
    limit = paging.limit_arg(paging.MAX_BATCHES_PAGE)
    rows, next_cursor = batches.list_batches(svc.session_factory, owner_id=visible_owner(),
                                             cursor=paging.cursor_arg(), limit=limit)
    progress = batches.batches_progress(svc.session_factory, rows)
    base = _base_url(svc)
    page = BatchList(items=[batch_view(row, progress[row.id], base) for row in rows], next_cursor=next_cursor)
    return paging.page_response(page.model_dump_json(), f"{base}/v1/batches", limit, next_cursor)


@bp.get("/<batch_id>")
def get_batch(batch_id: str) -> Response:
    svc = services()
    return _batch_response(svc, _visible_batch(svc, batch_id).id)


@bp.post("/<batch_id>/cancel")
def cancel_batch(batch_id: str) -> Response:
    svc = services()
    batch = _visible_batch(svc, batch_id)
    outcome = batches.cancel_batch(svc.session_factory, batch.id)
    svc.queue.announce_finished(outcome.webhook_job_ids)
    return _batch_response(svc, batch.id, status=202)


@bp.get("/<batch_id>/results")
def batch_results(batch_id: str) -> Response:
    """JSON Lines, one per item in submission order, streamed page by page. ``?state=terminal`` (or a comma list
    of job states) limits it to those items."""
    svc = services()
    batch = _visible_batch(svc, batch_id)
    states = paging.states_arg()
    base = _base_url(svc)
    lines = (json.dumps(result_line(job, base)) + "\n"
             for job in batches.iter_batch_jobs(svc.session_factory, batch.id, states))
    return Response(lines, mimetype="application/x-ndjson")


@bp.post("/<batch_id>/items")
def add_item(batch_id: str) -> Response:
    """One more item: a multipart ``image`` (+ optional ``name``), or JSON {"key"|"url", "name"}. An item whose name
    is already in the batch is not added again: the existing one is returned with 200 (safe to retry)."""
    svc = services()
    batch = _visible_batch(svc, batch_id)
    if request.mimetype == "multipart/form-data":
        item, error = batch_sources.uploaded_item(svc.settings, svc.storage)
    else:
        item, error = batch_sources.reference_item(svc.settings, _json_body(BatchItemIn), UniqueNames()), None
    job, created = batches.add_item(svc.session_factory, batch, item)
    if created:
        _queue(svc, batch, [(item, error)])
        job = jobs.get_job(svc.session_factory, job.id)
    elif item.input_key == input_key(item.job_id, item.name):
        svc.storage.delete_prefix(job_prefix(item.job_id))     # the copy we just stored is not needed
    body = {"job_id": job.id, "name": job.input_name, "state": job.state.value, "created": created}
    return Response(json.dumps(body), status=201 if created else 200, mimetype="application/json")


def _create_from_archive(svc: Services) -> Response:
    request.max_content_length = svc.settings.max_archive_bytes     # before the form is parsed
    upload = request.files.get("archive")
    if upload is None:
        raise Face3dError("send the zip as a multipart/form-data file field named 'archive'", ErrorCode.INVALID_REQUEST)
    engine, options = engine_and_options(svc.settings, _form_options(request.form.get("options")))
    archive, entries = batch_sources.archive_entries(upload)
    with archive:
        source = f"archive:{upload.filename or 'upload.zip'}"
        batch = _new_batch(svc, engine, options, source, request.form.get("name"))
        _ingest(svc, batch, batch_sources.zip_items(svc.settings, svc.storage, archive, entries))
    return _batch_response(svc, batch.id, status=201)


def _new_batch(svc: Services, engine: str, options: dict[str, Any], source: str, name: str | None) -> Batch:
    return batches.create_batch(svc.session_factory, engine=engine, options=options, source=source, name=name,
                                owner_id=current_owner())


def _ingest(svc: Services, batch: Batch, pending: Iterable[Pending]) -> None:
    """Insert and queue items chunk by chunk: one executemany and one broker connection per chunk."""
    iterator = iter(pending)
    while chunk := list(islice(iterator, svc.settings.batch_chunk_size)):
        batches.add_items(svc.session_factory, batch, [item for item, _ in chunk])
        _queue(svc, batch, chunk)


def _queue(svc: Services, batch: Batch, chunk: list[Pending]) -> None:
    for item, error in chunk:
        if error is not None:
            jobs.mark_failed(svc.session_factory, item.job_id, error.code, error.message)
    ready = [item.job_id for item, error in chunk if error is None]
    if not ready:
        return
    try:
        svc.queue.send_items(ready, batch.engine)
    except Face3dError as exc:
        unsent = ready[int(exc.details.get("sent", 0)):]
        jobs.fail_all(svc.session_factory, unsent, ErrorCode.BROKER_UNAVAILABLE, exc.message)
        raise Face3dError(f"batch {batch.id}: {exc.message}; {len(unsent)} item(s) failed", exc.code) from exc


def _json_body(model: type[BaseModel]) -> Any:
    raw = request.get_json(silent=True)
    if raw is None:
        raise Face3dError("send a JSON object (Content-Type: application/json) or a multipart upload",
                          ErrorCode.INVALID_REQUEST)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc, prefix="body") from exc


def _form_options(raw: str | None) -> JobOptions:
    try:
        return JobOptions.model_validate(json.loads(raw) if raw else {})
    except json.JSONDecodeError as exc:
        raise Face3dError(f"options is not valid JSON: {exc.msg}", ErrorCode.VALIDATION_FAILED) from exc
    except ValidationError as exc:
        raise RequestValidationError(exc) from exc


def _visible_batch(svc: Services, batch_id: str) -> Batch:
    return ensure_visible(batches.get_batch(svc.session_factory, batch_id), f"batch {batch_id}")


def _batch_response(svc: Services, batch_id: str, status: int = 200) -> Response:
    batch = batches.get_batch(svc.session_factory, batch_id)
    view = batch_view(batch, batches.batch_progress(svc.session_factory, batch), _base_url(svc))
    response = Response(view.model_dump_json(), status=status, mimetype="application/json")
    response.headers["Location"] = f"/v1/batches/{batch.id}"
    return response


def _base_url(svc: Services) -> str:
    return paging.base_url(svc.settings.public_base_url)
