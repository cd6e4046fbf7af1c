"""A submit into a job: the request's fields and options, the photo (an upload or a fetched image_url), the size,
type and pixel checks, the engine, the stored input and the committed row, then the message to a worker. POST
/v1/jobs uses all of it; POST /v1/batches shares the engine choice and the checks."""
from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import uuid
import warnings
from typing import Any

from flask import request
from PIL import Image
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from face3d.api import auth
from face3d.api.edge import loads_checked, refuse_control_characters
from face3d.api.forms import request_fingerprint
from face3d.api.problems import RequestValidationError
from face3d.api.services import Services
from face3d.shared import jobs
from face3d.shared.config import Settings
from face3d.shared.engines import engine_names
from face3d.shared.errors import Conflict, ErrorCode, Face3dError, InputError, NotFound
from face3d.shared.imaging import check_image_bytes, plan_decode, sniff_image_type
from face3d.shared.models import Job
from face3d.shared.schema import JobOptions
from face3d.shared.storage import input_key, job_prefix

MAX_URL_LENGTH = 2048
MAX_INPUT_NAME = 120


def submit(svc: Services) -> tuple[Job, bool]:
    """The job of this POST /v1/jobs: (job, created); created=False for a replayed Idempotency-Key."""
    upload = read_image(svc.settings)
    options = read_job_options(submission_fields())
    engine, engine_options = engine_and_options(svc.settings, options)
    require_engine_served(svc, engine)
    webhook_url = webhook_url_of(svc.settings, options)
    auth.enforce_active_job_cap(svc.settings, svc.session_factory)
    data = upload.read()
    media_type = require_image_bytes(data, svc.settings.max_upload_bytes)
    require_pixel_limit(data, svc.settings.max_pixels, svc.settings.decode_memory_bytes)
    job, created = create_job(svc, upload, data, media_type, engine, engine_options, webhook_url)
    if created:
        send_or_fail(svc, job)
    return job, created


def read_job_options(form: Any) -> JobOptions:
    """Options come as one JSON field ``options`` and/or as individual form fields (these win)."""
    raw: dict[str, Any] = {}
    if isinstance(form.get("options"), dict):           # JSON body: options is already an object
        raw = dict(form["options"])
    elif form.get("options"):
        try:
            raw = loads_checked(form["options"], "options")
        except json.JSONDecodeError as exc:
            raise Face3dError(f"options is not valid JSON: {exc.msg}", ErrorCode.VALIDATION_FAILED) from exc
        if not isinstance(raw, dict):
            raise Face3dError("options must be a JSON object", ErrorCode.VALIDATION_FAILED)
    # A multipart part whose name cannot be parsed (e.g. it holds a NUL) comes back named None.
    unknown = sorted(key or "(unnamed)" for key in set(form.keys()) - set(JobOptions.model_fields)
                     - {"options", "image_url"})
    if unknown:
        raise Face3dError(f"unknown form field(s): {', '.join(unknown)}", ErrorCode.VALIDATION_FAILED)
    raw.update({key: form[key] for key in JobOptions.model_fields if form.get(key) not in (None, "")})
    try:
        return JobOptions.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc) from exc


def submission_fields() -> Any:
    """The form fields, or the JSON object of an ``application/json`` submit (``{"image_url": ..., "options": {}}``)."""
    if not request.is_json:
        return request.form
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Face3dError("the JSON body must be an object like {\"image_url\": \"https://...\"}",
                          ErrorCode.INVALID_REQUEST)
    return body


def read_image(settings: Settings) -> FileStorage:
    image_url = submission_fields().get("image_url")
    upload = request.files.get("image")
    if image_url and upload is not None:
        raise Face3dError("send either an 'image' file or an 'image_url', not both", ErrorCode.INVALID_REQUEST)
    if image_url:
        return _fetch_image_url(image_url, settings)
    if upload is None:
        raise Face3dError("send the photo as a multipart/form-data file field named 'image', or its address as "
                          "'image_url'", ErrorCode.INVALID_REQUEST)
    return upload


def _fetch_image_url(url: Any, settings: Settings) -> FileStorage:
    """Fetched here, in the request, so a refused or broken URL is answered at once (4xx/502) and the worker
    never touches the network; the bytes then go through the same checks and storage as an upload."""
    from face3d.shared.netguard import FetchPolicy, fetch

    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise Face3dError(f"image_url must be a URL string of at most {MAX_URL_LENGTH} characters",
                          ErrorCode.VALIDATION_FAILED)
    policy = FetchPolicy(max_bytes=settings.max_upload_bytes, timeout_s=settings.image_url_timeout_s,
                         max_redirects=settings.image_url_max_redirects,
                         allow_private=settings.image_url_allow_private,
                         allowed_networks=settings.image_url_allow_networks)
    fetched = fetch(url, policy)
    return FileStorage(io.BytesIO(fetched.data), filename=fetched.filename or "image")


def engine_and_options(settings: Settings, options: JobOptions) -> tuple[str, dict[str, Any]]:
    """The engine a request asks for (or the server's default) and the options that engine receives."""
    engine = options.engine or settings.default_engine
    if engine not in engine_names():
        raise Face3dError(f"unknown engine {engine!r}; choose one of {', '.join(engine_names())}",
                          ErrorCode.VALIDATION_FAILED)
    if "usdz" in (options.outputs or ()):
        from face3d.shared.artifacts.usdz import USD_EXTRA, usdz_available

        if not usdz_available():
            raise Face3dError(f"this server cannot write usdz: {USD_EXTRA}", ErrorCode.VALIDATION_FAILED)
    return engine, {**options.engine_options(), "max_pixels": settings.max_pixels}


def require_engine_served(svc: Services, engine: str) -> None:
    """503 engine_unavailable for a GPU engine no worker has announced lately: such a job would only wait, and
    count against the active-job cap, until a GPU worker came."""
    if engine in svc.settings.gpu_engines and not svc.queue.engine_announced(engine):
        raise Face3dError(f"no worker for engine {engine!r} has announced itself in the last "
                          f"{svc.settings.gpu_worker_fresh_s:g} s; retry when a GPU worker runs",
                          ErrorCode.ENGINE_UNAVAILABLE)


def webhook_url_of(settings: Settings, options: JobOptions) -> str | None:
    from face3d.shared.webhooks import check_webhook_url

    if not options.webhook_url:
        return None
    if auth.current_owner() is None and not settings.webhook_secret:
        raise Face3dError("webhook_url needs a signing secret: set WEBHOOK_SECRET on the server (AUTH_MODE=off)",
                          ErrorCode.VALIDATION_FAILED)
    check_webhook_url(options.webhook_url, allow_private=settings.webhook_allow_private)
    return options.webhook_url


def require_image_bytes(data: bytes, max_bytes: int) -> str:
    if data == b"":
        raise Face3dError("the 'image' file is empty: not a supported image", ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    return check_image_bytes(data, max_bytes)


def require_pixel_limit(data: bytes, max_pixels: int, memory_bytes: int | None = None) -> None:
    """413 image_too_large from the header alone (no pixel is decoded): over ``max_pixels``, or a decode that would
    not fit the workers' DECODE_MEMORY_BYTES. A header Pillow cannot read is not refused here: the sniffer accepted
    the bytes, so the job decodes them and reports exactly what is wrong."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                refusal = _decode_refusal(image, memory_bytes)
    except Image.DecompressionBombError as exc:     # Pillow's own ceiling, far above any sane max_pixels
        raise Face3dError(f"the image is over the limit of {max_pixels} pixels ({exc})",
                          ErrorCode.IMAGE_TOO_LARGE) from exc
    except Exception:  # noqa: BLE001 - any header Pillow rejects is left to the worker's decode
        return
    if width * height > max_pixels:
        raise Face3dError(f"the image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
                          ErrorCode.IMAGE_TOO_LARGE)
    if refusal:
        raise Face3dError(refusal, ErrorCode.IMAGE_TOO_LARGE)


def _decode_refusal(image: Image.Image, memory_bytes: int | None) -> str | None:
    try:
        if memory_bytes:
            plan_decode(image, "the image", memory_bytes)
    except InputError as exc:
        return exc.message
    return None


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise Face3dError("Idempotency-Key must be 1 to 255 characters", ErrorCode.INVALID_REQUEST)
    if key is not None:
        refuse_control_characters(key, "Idempotency-Key")
    return key


def create_job(svc: Services, upload: FileStorage, data: bytes, media_type: str, engine: str,
                options: dict[str, Any], webhook_url: str | None = None) -> tuple[Job, bool]:
    """Store the input, then commit the row. A replayed Idempotency-Key reuses the first job (its input kept)."""
    digest = hashlib.sha256(data).hexdigest()
    # Capped from the left so the extension stays: input_name is a 255-character column.
    name = (secure_filename(upload.filename or "")[-MAX_INPUT_NAME:].lstrip("._")
            or "photo" + (mimetypes.guess_extension(media_type) or ""))
    fingerprint = request_fingerprint(digest, engine, _fingerprinted(options, webhook_url))
    return _insert_with_input(svc, name, data, media_type, fingerprint, engine=engine, options=options,
                              owner_id=auth.current_owner(), webhook_url=webhook_url)


def retry(svc: Services, failed: Job) -> tuple[Job, bool]:
    """POST /v1/jobs/{id}/retry: the failed job's stored input submitted again as a new job with the same engine,
    options, owner and webhook, linked to it by ``retry_of``. The old job stays as it is."""
    jobs.require_retryable(failed)
    require_engine_served(svc, failed.engine)
    auth.enforce_active_job_cap(svc.settings, svc.session_factory)
    try:
        data = svc.storage.get_bytes(failed.input_key)
    except NotFound:
        raise Conflict(f"job {failed.id} has no stored input any more; submit the photo again") from None
    fingerprint = request_fingerprint(hashlib.sha256(data).hexdigest(), failed.engine, {"retry_of": failed.id})
    job, created = _insert_with_input(svc, failed.input_name, data, sniff_image_type(data) or "", fingerprint,
                                      engine=failed.engine, options=failed.options, owner_id=failed.owner_id,
                                      webhook_url=failed.webhook_url, retry_of=failed.id)
    if created:
        send_or_fail(svc, job)
    return job, created


def _insert_with_input(svc: Services, name: str, data: bytes, media_type: str, fingerprint: str,
                       **row: Any) -> tuple[Job, bool]:
    """Store the bytes under a new job id, then commit its row; the stored copy goes again when the insert fails
    or replays an earlier request (same Idempotency-Key)."""
    job_id = uuid.uuid4().hex
    svc.storage.put_bytes(input_key(job_id, name), data, content_type=media_type or None)
    try:
        job, created = jobs.create_job(
            svc.session_factory, input_name=name, input_key=input_key(job_id, name), input_size=len(data),
            input_sha256=hashlib.sha256(data).hexdigest(), job_id=job_id, request_fingerprint=fingerprint,
            idempotency_key=auth.scoped_idempotency_key(_idempotency_key()),
            active_cap=svc.settings.max_active_jobs_per_key, **row)
    except jobs.TooManyActiveJobs as exc:
        svc.storage.delete_prefix(job_prefix(job_id))
        raise auth.too_many_active_jobs(exc.message) from None
    except BaseException:
        svc.storage.delete_prefix(job_prefix(job_id))
        raise
    if not created:
        svc.storage.delete_prefix(job_prefix(job_id))
    return job, created


def _fingerprinted(options: dict[str, Any], webhook_url: str | None) -> dict[str, Any]:
    return {**options, "webhook_url": webhook_url} if webhook_url else options


def send_or_fail(svc: Services, job: Job) -> None:
    """The row is committed before the message is sent; if sending fails the job is failed, never left queued."""
    try:
        svc.queue.send_job(job.id, job.engine)
    except Exception as exc:
        message = exc.message if isinstance(exc, Face3dError) else f"could not queue the job: {exc}"
        jobs.mark_failed(svc.session_factory, job.id, ErrorCode.BROKER_UNAVAILABLE, message)
        raise Face3dError(message, ErrorCode.BROKER_UNAVAILABLE) from exc
