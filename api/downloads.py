"""A job's files in one go and its source photo: GET /v1/jobs/{id}/archive (a zip streamed as it is written, never
held whole in memory) and GET /v1/jobs/{id}/input (the uploaded photo, for the page's thumbnails)."""
from __future__ import annotations

import io
from typing import Any, Iterator
from urllib.parse import quote

from flask import Blueprint, Response, request, send_file
from PIL import Image, ImageOps
from zipstream import ZIP_DEFLATED, ZIP_STORED, ZipStream

from face3d.api import auth
from face3d.api.openapi_paths import MAX_THUMB, MIN_THUMB
from face3d.api.services import services
from face3d.shared import jobs
from face3d.shared.errors import Conflict, ErrorCode, Face3dError, InputError, NotFound
from face3d.shared.imaging import reduced_image
from face3d.shared.models import Job
from face3d.shared.schema import download_name
from face3d.shared.storage import Storage, content_type_for

bp = Blueprint("downloads", __name__, url_prefix="/v1/jobs")

CHUNK_BYTES = 256 * 1024
# Text formats shrink; GLB, PNG, MP4, GIF, 3MF and USDZ are compressed already and are stored as they are.
DEFLATED_SUFFIXES = (".json", ".obj", ".mtl", ".ply", ".stl")


@bp.get("/<job_id>/archive")
def get_archive(job_id: str) -> Response:
    svc = services()
    job = _visible_job(job_id)
    artifacts = ready_artifacts(job)
    if not artifacts:
        raise Conflict(f"job {job_id} has no files yet (state {job.state.value})")
    archive = ZipStream(compress_type=ZIP_STORED)
    fallback = job.id[:8]
    for artifact in artifacts:
        name = artifact["name"]
        archive.add(_chunks(svc.storage, artifact["key"]), download_name(job.input_name, name, fallback),
                    compress_type=ZIP_DEFLATED if name.endswith(DEFLATED_SUFFIXES) else ZIP_STORED)
    zip_name = download_name(job.input_name, "3d.zip", fallback)
    return Response(archive, mimetype="application/zip", direct_passthrough=True,
                    headers={"Content-Disposition": attachment(zip_name), "Cache-Control": "private, no-store"})


@bp.get("/<job_id>/input")
def get_input(job_id: str) -> Response:
    """The photo as uploaded, or with ``?max_side=N`` a small upright JPEG of it (the job list's thumbnails)."""
    svc = services()
    job = _visible_job(job_id)
    if not job.input_key or "://" in job.input_key:      # a batch item read from its own bucket is not ours to serve
        raise NotFound(f"job {job_id} has no stored photo")
    max_side = _max_side()
    if max_side is not None:
        data = thumbnail(svc.storage.get_bytes(job.input_key), max_side)
        return _private(send_file(io.BytesIO(data), mimetype="image/jpeg", max_age=3600))
    name = job.input_name or "photo"
    return _private(send_file(svc.storage.open_stream(job.input_key), mimetype=content_type_for(name),
                              download_name=name, as_attachment=False, max_age=3600))


def _private(response: Response) -> Response:
    """A key's photo: browsers may keep it, shared caches never."""
    response.cache_control.public = False
    response.cache_control.private = True
    return response


def _max_side() -> int | None:
    """``?max_side=``: ASCII digits in range, else 422 (an empty or non-numeric one used to serve the whole photo)."""
    raw = request.args.get("max_side")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and MIN_THUMB <= int(raw) <= MAX_THUMB):
        raise Face3dError(f"max_side must be an integer from {MIN_THUMB} to {MAX_THUMB}", ErrorCode.VALIDATION_FAILED)
    return int(raw)


def thumbnail(photo: bytes, max_side: int) -> bytes:
    try:
        with Image.open(io.BytesIO(photo)) as image:
            small = ImageOps.exif_transpose(reduced_image(image, max_side)).convert("RGB")     # no full-size copy
            small.thumbnail((max_side, max_side))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"the stored photo could not be read: {exc}") from exc
    out = io.BytesIO()
    small.save(out, "JPEG", quality=82)
    return out.getvalue()


def ready_artifacts(job: Job) -> list[dict[str, Any]]:
    """The stored files; while a job runs, planned ones (``ready: false``) may be listed too and are left out."""
    return [a for a in (job.result or {}).get("artifacts", []) if a.get("ready", True) and a.get("key")]


def attachment(name: str) -> str:
    """A Content-Disposition any browser reads: an ASCII fallback plus the RFC 5987 UTF-8 name."""
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def _chunks(storage: Storage, key: str) -> Iterator[bytes]:
    """The object's bytes, opened only when the zip reaches this entry."""
    stream = storage.open_stream(key)
    try:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()


def _visible_job(job_id: str) -> Job:
    return auth.ensure_visible(jobs.get_job(services().session_factory, job_id), f"job {job_id}")
