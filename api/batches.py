"""/v1/batches: many photos in one request (item list, S3 prefix, zip upload, or item by item), one results file out.

Each item becomes an ordinary job in the batch (its own row, its own id), inserted and queued in chunks of
BATCH_CHUNK_SIZE on the low-priority ``batch`` queue by a worker that expands the batch's source
(shared/expansion.py); the request only stores the source. Where items come from: shared/batch_sources.py.
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError

from face3d.api import batch_sources, paging
from face3d.api.auth import current_owner, ensure_visible, visible_owner
from face3d.api.edge import loads_checked
from face3d.api.forms import BatchCreate, BatchItemIn
from face3d.api.problems import RequestValidationError
from face3d.api.services import Services, services
from face3d.api.submission import engine_and_options, require_engine_served
from face3d.shared import batches, expansion, jobs
from face3d.shared.batch_sources import check_item_shapes, reference_item
from face3d.shared.errors import Conflict, ErrorCode, Face3dError
from face3d.shared.models import Batch
from face3d.shared.schema import BatchList, JobOptions, UniqueNames, batch_view, display_name, result_line
from face3d.shared.storage import input_key, job_prefix

log = logging.getLogger(__name__)

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")


@bp.post("")
def create_batch() -> Response:
    """Answers at once: a source (items, an S3 prefix, a zip) is stored with the batch ``expanding`` and turned
    into items by a worker (shared/expansion.py); without one, the batch receives items one by one."""
    svc = services()
    if request.mimetype == "multipart/form-data":
        return _create_from_archive(svc)
    raw = _json_object()
    items = raw.pop("items", None)      # checked item by item by the worker: 400,000 would cost the request seconds
    body = _validated(BatchCreate, raw)
    if items is not None and not isinstance(items, list):
        raise Face3dError("body.items must be a list of {key|url, name} objects", ErrorCode.VALIDATION_FAILED)
    check_item_shapes(items or [])
    if items is not None and body.s3_prefix is not None:
        raise Face3dError("give 'items' or 's3_prefix', not both", ErrorCode.VALIDATION_FAILED)
    engine, options = engine_and_options(svc.settings, body.options)
    require_engine_served(svc, engine)
    if body.s3_prefix is not None:
        batch_sources.check_prefix(svc.settings, body.s3_prefix)
        batch = _new_batch(svc, engine, options, body.s3_prefix, body.name, expanding=True)
        _start_expansion(svc, batch)
    elif items:
        batch = _new_batch(svc, engine, options, expansion.MANIFEST, body.name, expanding=True,
                           source_key=expansion.source_key(batch_id := uuid.uuid4().hex, expansion.MANIFEST),
                           batch_id=batch_id)
        _store_source(svc, batch, lambda: expansion.store_manifest(svc.storage, batch.id, request.get_data()))
    else:
        batch = _new_batch(svc, engine, options, "client", body.name)
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
    if batch.canceled_at is not None:
        raise Conflict(f"batch {batch.id} is canceled")
    _check_in_flight_cap(svc, batch)
    if request.mimetype == "multipart/form-data":
        item, error = batch_sources.uploaded_item(svc.settings, svc.storage)
    else:
        item, error = reference_item(svc.settings, _json_body(BatchItemIn), UniqueNames()), None
    stored = item.input_key == input_key(item.job_id, item.name)
    try:
        job, created = batches.add_item(svc.session_factory, batch, item)
    except Exception:
        if stored:                                              # no row references the bytes: never orphaned
            svc.storage.delete_prefix(job_prefix(item.job_id))
        raise
    if created:
        expansion.queue_page(svc.session_factory, svc.queue, batch, [(item, error)])
        job = jobs.get_job(svc.session_factory, job.id)
    elif stored:
        svc.storage.delete_prefix(job_prefix(item.job_id))     # the copy we just stored is not needed
    body = {"job_id": job.id, "name": display_name(job.input_name), "state": job.state.value, "created": created}
    return Response(json.dumps(body), status=201 if created else 200, mimetype="application/json")


def _check_in_flight_cap(svc: Services, batch: Batch) -> None:
    cap = svc.settings.max_batch_items_in_flight_per_key
    if cap and batches.items_in_flight(svc.session_factory, batch.owner_id) >= cap:
        raise Face3dError(f"this key has {cap} batch items queued or running (MAX_BATCH_ITEMS_IN_FLIGHT_PER_KEY); "
                          "retry once some have finished", ErrorCode.TOO_MANY_ACTIVE_JOBS)


def _create_from_archive(svc: Services) -> Response:
    """The zip's central directory is checked (entry count, declared sizes, overlaps) before anything is stored;
    the worker that expands it counts the real bytes."""
    request.max_content_length = svc.settings.max_archive_bytes     # before the form is parsed
    upload = request.files.get("archive")
    if upload is None:
        raise Face3dError("send the zip as a multipart/form-data file field named 'archive'", ErrorCode.INVALID_REQUEST)
    engine, options = engine_and_options(svc.settings, _form_options(request.form.get("options")))
    with batch_sources.open_archive(upload.stream) as archive:
        batch_sources.check_archive(svc.settings, archive)
    source = f"{expansion.ARCHIVE_PREFIX}{upload.filename or 'upload.zip'}"
    batch_id = uuid.uuid4().hex
    key = expansion.source_key(batch_id, source)
    batch = _new_batch(svc, engine, options, source, request.form.get("name"), expanding=True, source_key=key,
                       batch_id=batch_id)
    _store_source(svc, batch, lambda: batch_sources.store_upload(svc.storage, key, upload))
    return _batch_response(svc, batch.id, status=201)


def _store_source(svc: Services, batch: Batch, store: Callable[[], object]) -> None:
    """The row is written first, so the stored source always belongs to a batch; a store that fails ends the
    expansion before it began (the batch answers ``failed`` with the reason) and the request gets the error."""
    try:
        store()
    except Face3dError as exc:
        svc.storage.delete_prefix(batch.source_key or "")
        batches.finish_expansion(svc.session_factory, batch.id, error=f"{exc.code.value}: {exc.message}")
        raise
    _start_expansion(svc, batch)


def _start_expansion(svc: Services, batch: Batch) -> None:
    try:
        svc.queue.send_expand(batch.id)
    except Face3dError as exc:      # the batch stays expanding; the sweeper sends it once the broker is back
        log.warning("batch %s: expansion not queued yet: %s", batch.id, exc.message)


def _new_batch(svc: Services, engine: str, options: dict[str, Any], source: str, name: str | None,
               **expansion_fields: Any) -> Batch:
    return batches.create_batch(svc.session_factory, engine=engine, options=options, source=source, name=name,
                                owner_id=current_owner(), **expansion_fields)


def _json_body(model: type[BaseModel]) -> Any:
    return _validated(model, _json_object())


def _json_object() -> dict[str, Any]:
    raw = request.get_json(silent=True)
    if not isinstance(raw, dict):
        raise Face3dError("send a JSON object (Content-Type: application/json) or a multipart upload",
                          ErrorCode.INVALID_REQUEST)
    return raw


def _validated(model: type[BaseModel], raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc, prefix="body") from exc


def _form_options(raw: str | None) -> JobOptions:
    try:
        return JobOptions.model_validate(loads_checked(raw, "options") if raw else {})
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
