"""/v1/batches: many photos in one request (item list, S3 prefix, zip upload, or item by item), one results file out.

Each item becomes an ordinary job in the batch (its own row, its own id), inserted and queued in chunks of
BATCH_CHUNK_SIZE on the low-priority ``batch`` queue. Sources are read lazily: an S3 listing or a zip is walked entry
by entry, never held whole in memory, and S3 objects are read by the worker, not here.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import zipfile
from itertools import islice
from typing import Any, Iterable, Iterator
from urllib.parse import urlencode, urlparse

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError

from face3d.api.auth import current_owner, ensure_visible, visible_owner
from face3d.api.problems import RequestValidationError
from face3d.api.forms import BatchCreate, BatchItemIn
from face3d.api.services import Services, services
from face3d.shared import batches, db, jobs, models
from face3d.shared.batches import NewItem
from face3d.shared.engines import engine_names
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.imaging import check_image_bytes
from face3d.shared.schema import BatchList, JobOptions, UniqueNames, batch_view, clip_name, result_line
from face3d.shared.states import TERMINAL_STATES, JobState
from face3d.shared.storage import input_key, job_prefix, make_s3_client

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")

UPLOADS_PREFIX = "uploads/"
DEFAULT_PAGE = 50
Pending = tuple[NewItem, Face3dError | None]      # an item, and why it already failed (None: it goes to a worker)


# ---------------------------------------------------------------- routes


@bp.post("")
def create_batch() -> Response:
    svc = services()
    if request.mimetype == "multipart/form-data":
        return _create_from_archive(svc)
    body = _json_body(BatchCreate)
    engine, options = _engine_and_options(svc, body.options)
    if body.s3_prefix is not None:
        bucket, prefix = _s3_source(svc, body.s3_prefix, is_prefix=True)
        client = make_s3_client(svc.settings.s3_endpoint_url, svc.settings.s3_region)
        _require_objects(client, bucket, prefix)
        batch = _new_batch(svc, engine, options, body.s3_prefix, body.name)
        _ingest(svc, batch, ((item, None) for item in _s3_items(client, bucket, prefix)))
    else:
        items, names = body.items or [], UniqueNames()
        pending = [(_reference_item(svc, item, names), None) for item in items]
        batch = _new_batch(svc, engine, options, "items" if items else "client", body.name)
        _ingest(svc, batch, pending)
    return _batch_response(svc, batch.id, status=201)


@bp.get("")
def list_batches() -> Response:
    """The caller's batches (an admin key's or an open API's: all), newest first; ``limit`` and ``cursor`` page
    them like GET /v1/jobs."""
    svc = services()
    limit = _limit_arg(request.args.get("limit"))
    rows, next_cursor = batches.list_batches(svc.session_factory, owner_id=visible_owner(),
                                             cursor=request.args.get("cursor") or None, limit=limit)
    progress = batches.batches_progress(svc.session_factory, rows)
    base = _base_url(svc)
    page = BatchList(items=[batch_view(row, progress[row.id], base) for row in rows], next_cursor=next_cursor)
    response = Response(page.model_dump_json(), mimetype="application/json")
    if next_cursor:
        query = urlencode({"limit": limit, "cursor": next_cursor})
        response.headers["Link"] = f'<{base}/v1/batches?{query}>; rel="next"'
    return response


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
    states = _states_arg(request.args.get("state"))
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
        item, error = _uploaded_item(svc)
    else:
        item, error = _reference_item(svc, _json_body(BatchItemIn), UniqueNames()), None
    job, created = batches.add_item(svc.session_factory, batch, item)
    if created:
        _queue(svc, batch, [(item, error)])
        job = jobs.get_job(svc.session_factory, job.id)
    elif item.input_key == input_key(item.job_id, item.name):
        svc.storage.delete_prefix(job_prefix(item.job_id))     # the copy we just stored is not needed
    body = {"job_id": job.id, "name": job.input_name, "state": JobState(job.state).value, "created": created}
    return Response(json.dumps(body), status=201 if created else 200, mimetype="application/json")


# ---------------------------------------------------------------- sources


def _create_from_archive(svc: Services) -> Response:
    request.max_content_length = svc.settings.max_archive_bytes     # before the form is parsed
    upload = request.files.get("archive")
    if upload is None:
        raise Face3dError("send the zip as a multipart/form-data file field named 'archive'", ErrorCode.INVALID_REQUEST)
    engine, options = _engine_and_options(svc, _form_options(request.form.get("options")))
    try:
        archive = zipfile.ZipFile(upload.stream)    # werkzeug spooled the upload to a temporary file
    except (zipfile.BadZipFile, OSError):
        raise Face3dError("'archive' is not a zip file", ErrorCode.UNSUPPORTED_MEDIA_TYPE) from None
    with archive:
        entries = [info for info in archive.infolist() if _is_photo_candidate(info.filename) and not info.is_dir()]
        if not entries:
            raise Face3dError("the zip archive holds no files", ErrorCode.VALIDATION_FAILED)
        source = f"archive:{upload.filename or 'upload.zip'}"
        batch = _new_batch(svc, engine, options, source, request.form.get("name"))
        _ingest(svc, batch, _zip_items(svc, archive, entries))
    return _batch_response(svc, batch.id, status=201)


def _zip_items(svc: Services, archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo]) -> Iterator[Pending]:
    names = UniqueNames()
    limit = svc.settings.max_upload_bytes
    for info in entries:
        item = NewItem(name=names(info.filename), input_key="")
        try:
            with archive.open(info) as entry:
                data = entry.read(limit + 1)        # bounded, whatever the header claims
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
            yield item, Face3dError(f"cannot unpack {info.filename}: {exc}", ErrorCode.INVALID_REQUEST)
            continue
        yield _stored_item(svc, item, data)


def _uploaded_item(svc: Services) -> Pending:
    upload = request.files.get("image")
    if upload is None:
        raise Face3dError("send the photo as a multipart/form-data file field named 'image'", ErrorCode.INVALID_REQUEST)
    name = request.form.get("name") or upload.filename or "photo"
    data = upload.read(svc.settings.max_upload_bytes + 1)
    return _stored_item(svc, NewItem(name=clip_name(name), input_key=""), data)


def _stored_item(svc: Services, item: NewItem, data: bytes) -> Pending:
    """Store an image's bytes as the item's input (hash known); a non-image fails its own item only."""
    try:
        media_type = check_image_bytes(data, svc.settings.max_upload_bytes, name=item.name)
    except Face3dError as exc:
        return item, exc
    key = input_key(item.job_id, item.name)
    svc.storage.put_bytes(key, data, content_type=media_type)
    return NewItem(name=item.name, input_key=key, input_size=len(data),
                   input_sha256=hashlib.sha256(data).hexdigest(), job_id=item.job_id), None


def _reference_item(svc: Services, item: BatchItemIn, names: UniqueNames) -> NewItem:
    if item.key is not None:
        key = item.key.lstrip("/")
        if not key.startswith(UPLOADS_PREFIX) or ".." in key.split("/"):
            raise Face3dError(f"item key {item.key!r} must be under {UPLOADS_PREFIX}", ErrorCode.VALIDATION_FAILED)
        return NewItem(name=names(item.name or posixpath.basename(key)), input_key=key)
    bucket, key = _s3_source(svc, item.url or "", is_prefix=False)
    return NewItem(name=names(item.name or posixpath.basename(key)), input_key=f"s3://{bucket}/{key}")


def _s3_source(svc: Services, url: str, *, is_prefix: bool) -> tuple[str, str]:
    """(bucket, key or prefix) of an s3:// URL the service may read; the service's own files are off limits
    except its uploads/ folder."""
    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not bucket or (not key and not is_prefix):
        raise Face3dError(f"{url!r} is not an s3://bucket/{'prefix' if is_prefix else 'key'} URL",
                          ErrorCode.VALIDATION_FAILED)
    allowed = svc.settings.batch_s3_buckets
    if "*" not in allowed and bucket not in allowed:
        raise Face3dError(f"bucket {bucket!r} is not one this service reads (BATCH_S3_BUCKETS)",
                          ErrorCode.VALIDATION_FAILED)
    own = svc.settings.storage_backend == "s3" and bucket == svc.settings.s3_bucket
    if own and not key.startswith(svc.settings.s3_prefix + UPLOADS_PREFIX):
        raise Face3dError(f"in the service's own bucket only {svc.settings.s3_prefix}{UPLOADS_PREFIX} may be read",
                          ErrorCode.VALIDATION_FAILED)
    return bucket, key


def _require_objects(client: Any, bucket: str, prefix: str) -> None:
    try:
        found = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0)
    except Exception as exc:  # noqa: BLE001 - botocore errors: missing bucket, no access, unreachable
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise Face3dError(f"cannot list s3://{bucket}/{prefix}: {code}", ErrorCode.VALIDATION_FAILED) from exc
    if not found:
        raise Face3dError(f"no objects under s3://{bucket}/{prefix}", ErrorCode.VALIDATION_FAILED)


def _s3_items(client: Any, bucket: str, prefix: str) -> Iterator[NewItem]:
    names = UniqueNames()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            relative = key[len(prefix):].lstrip("/") or posixpath.basename(key)
            if key.endswith("/") or not _is_photo_candidate(relative):
                continue
            yield NewItem(name=names(relative), input_key=f"s3://{bucket}/{key}", input_size=int(obj.get("Size", 0)))


def _is_photo_candidate(path: str) -> bool:
    """Skips only system clutter (macOS resource forks, hidden files); anything else is an item, and a non-image
    fails its own item with a reason."""
    parts = path.split("/")
    return "__MACOSX" not in parts and not parts[-1].startswith(".")


# ---------------------------------------------------------------- creating and queueing items


def _new_batch(svc: Services, engine: str, options: dict[str, Any], source: str, name: str | None) -> models.Batch:
    return batches.create_batch(svc.session_factory, engine=engine, options=options, source=source, name=name,
                                owner_id=current_owner())


def _ingest(svc: Services, batch: models.Batch, pending: Iterable[Pending]) -> None:
    """Insert and queue items chunk by chunk: one executemany and one broker connection per chunk."""
    iterator = iter(pending)
    while chunk := list(islice(iterator, svc.settings.batch_chunk_size)):
        batches.add_items(svc.session_factory, batch, [item for item, _ in chunk])
        _queue(svc, batch, chunk)


def _queue(svc: Services, batch: models.Batch, chunk: list[Pending]) -> None:
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


# ---------------------------------------------------------------- parsing helpers


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


def _engine_and_options(svc: Services, options: JobOptions) -> tuple[str, dict[str, Any]]:
    """The same engine choice and engine options a single POST /v1/jobs would get."""
    engine = options.engine or svc.settings.default_engine
    if engine not in engine_names():
        raise Face3dError(f"unknown engine {engine!r}; choose one of {', '.join(engine_names())}",
                          ErrorCode.VALIDATION_FAILED)
    return engine, {**options.engine_options(), "max_pixels": svc.settings.max_pixels}


def _limit_arg(value: str | None) -> int:
    if not value:
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= db.MAX_PAGE:
        raise Face3dError(f"limit must be an integer from 1 to {db.MAX_PAGE}", ErrorCode.VALIDATION_FAILED)
    return int(value)


def _states_arg(value: str | None) -> list[JobState] | None:
    if not value:
        return None
    if value == "terminal":
        return list(TERMINAL_STATES)
    try:
        return [JobState(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError:
        choices = ", ".join(["terminal", *(s.value for s in JobState)])
        raise Face3dError(f"state must be a comma list of {choices}", ErrorCode.VALIDATION_FAILED) from None


def _visible_batch(svc: Services, batch_id: str) -> models.Batch:
    return ensure_visible(batches.get_batch(svc.session_factory, batch_id), f"batch {batch_id}")


# ---------------------------------------------------------------- responses


def _batch_response(svc: Services, batch_id: str, status: int = 200) -> Response:
    batch = batches.get_batch(svc.session_factory, batch_id)
    view = batch_view(batch, batches.batch_progress(svc.session_factory, batch), _base_url(svc))
    response = Response(view.model_dump_json(), status=status, mimetype="application/json")
    response.headers["Location"] = f"/v1/batches/{batch.id}"
    return response


def _base_url(svc: Services) -> str:
    return (svc.settings.public_base_url or request.host_url).rstrip("/")
