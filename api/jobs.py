"""/v1/jobs: submit a photo, follow the job, fetch its files, cancel or delete it."""
from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import re
import time
import uuid
import warnings
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, request, send_file
from PIL import Image
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from face3d.api import auth
from face3d.api.problems import RequestValidationError
from face3d.api.forms import request_fingerprint
from face3d.api.services import Services, services
from face3d.shared import jobs
from face3d.shared.schema import JobList, JobOptions, WebhookDeliveryList, job_view
from face3d.shared.engines import engine_names
from face3d.shared.errors import Conflict, ErrorCode, Face3dError, NotFound
from face3d.shared.imaging import check_image_bytes
from face3d.shared.states import JobState
from face3d.shared.storage import content_type_for, input_key, job_prefix

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

MAX_WAIT_S = 60
WAIT_POLL_S = 0.1
MAX_PAGE = 100
MAX_URL_LENGTH = 2048
MAX_INPUT_NAME = 120
_WAIT_PREFERENCE = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


# ---------------------------------------------------------------- routes


@bp.post("")
def submit_job() -> Response:
    svc = services()
    upload = _required_image()
    options = read_job_options(submission_fields())
    engine = _engine_name(options, svc.settings.default_engine)
    webhook_url = _webhook_url(svc, options)
    auth.enforce_active_job_cap(svc.settings, svc.session_factory)
    data = upload.read()
    media_type = _require_image_bytes(data, svc.settings.max_upload_bytes)
    _require_pixel_limit(data, svc.settings.max_pixels)
    engine_options = {**options.engine_options(), "max_pixels": svc.settings.max_pixels}
    job, created = _create_job(svc, upload, data, media_type, engine, engine_options, webhook_url)
    if created:
        _dispatch_or_fail(svc, job)
    return _job_response(svc, job, created=created)


@bp.get("")
def list_jobs() -> Response:
    state = _state_arg(request.args.get("state"))
    limit = _limit_arg(request.args.get("limit"))
    cursor = request.args.get("cursor") or None
    svc = services()
    rows, next_cursor = jobs.list_jobs(svc.session_factory, state=state, cursor=cursor, limit=limit,
                                         owner_id=auth.visible_owner())
    page = JobList(items=[job_view(row, _base_url()) for row in rows], next_cursor=next_cursor)
    response = _json(page.model_dump_json())
    if next_cursor:
        query = {"limit": limit, "cursor": next_cursor, **({"state": state.value} if state else {})}
        response.headers["Link"] = f'<{_base_url()}/v1/jobs?{urlencode(query)}>; rel="next"'
    return response


@bp.get("/<job_id>")
def get_job(job_id: str) -> Response:
    svc = services()
    job = _visible_job(svc, job_id)
    wait_s = _wait_preference()
    if wait_s is not None:
        job = _wait_for_terminal(svc, job, wait_s)
    response = _json(job_view(job, _base_url()).model_dump_json())
    if wait_s is not None:
        response.headers["Preference-Applied"] = f"wait={wait_s}"
    return response


@bp.post("/<job_id>/cancel")
def cancel_job(job_id: str) -> Response:
    svc = services()
    _visible_job(svc, job_id)
    job = jobs.cancel_job(svc.session_factory, job_id)
    if job.is_terminal and job.webhook_url:      # canceled while queued: the API finished it
        svc.queue.announce_finished([job.id])
    return _json(job_view(job, _base_url()).model_dump_json(), status=202)


@bp.delete("/<job_id>")
def delete_job(job_id: str) -> Response:
    """Delete a job and its files. A queued job is canceled first; a running one must be canceled by the client
    (409) so a worker never writes files for a row that no longer exists."""
    svc = services()
    job = _visible_job(svc, job_id)
    if JobState(job.state) is JobState.QUEUED:
        job = _cancel_queued(svc, job_id)
    if JobState(job.state) is JobState.RUNNING:
        raise Conflict(f"job {job_id} is running; cancel it (POST /v1/jobs/{job_id}/cancel) and retry when it stops")
    deleted = jobs.delete_job(svc.session_factory, job_id)
    svc.storage.delete_prefix(job_prefix(deleted.id))
    return Response(status=204)


@bp.get("/<job_id>/artifacts/<name>")
def get_artifact(job_id: str, name: str) -> Response:
    svc = services()
    job = _visible_job(svc, job_id)
    artifact = _find_artifact(job, name)
    url = svc.storage.url_for(artifact["key"], filename=name)
    if url:
        return redirect(url, code=302)
    content_type = artifact.get("content_type") or content_type_for(name)
    return send_file(svc.storage.open_stream(artifact["key"]), mimetype=content_type, download_name=name,
                     max_age=3600)


@bp.get("/<job_id>/webhook-deliveries")
def list_webhook_deliveries(job_id: str) -> Response:
    """Every delivery attempt of the job's webhook, oldest first."""
    from face3d.shared.webhooks import list_deliveries

    svc = services()
    _visible_job(svc, job_id)
    rows = list_deliveries(svc.session_factory, job_id)
    return _json(WebhookDeliveryList.model_validate({"items": rows}, from_attributes=True).model_dump_json())


def _visible_job(svc: Services, job_id: str) -> Any:
    """The job, or 404 when it does not exist or belongs to another API key."""
    return auth.ensure_visible(jobs.get_job(svc.session_factory, job_id), f"job {job_id}")


def _webhook_url(svc: Services, options: JobOptions) -> str | None:
    from face3d.shared.webhooks import check_webhook_url

    if not options.webhook_url:
        return None
    if auth.current_owner() is None and not svc.settings.webhook_secret:
        raise Face3dError("webhook_url needs a signing secret: set WEBHOOK_SECRET on the server (AUTH_MODE=off)",
                          ErrorCode.VALIDATION_FAILED)
    check_webhook_url(options.webhook_url, allow_private=svc.settings.webhook_allow_private)
    return options.webhook_url


# ---------------------------------------------------------------- request parsing


def read_job_options(form: Any) -> JobOptions:
    """Options come as one JSON field ``options`` and/or as individual form fields (these win)."""
    raw: dict[str, Any] = {}
    if isinstance(form.get("options"), dict):           # JSON body: options is already an object
        raw = dict(form["options"])
    elif form.get("options"):
        try:
            raw = json.loads(form["options"])
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


def _required_image() -> FileStorage:
    image_url = submission_fields().get("image_url")
    upload = request.files.get("image")
    if image_url and upload is not None:
        raise Face3dError("send either an 'image' file or an 'image_url', not both", ErrorCode.INVALID_REQUEST)
    if image_url:
        return _fetch_image_url(image_url)
    if upload is None:
        raise Face3dError("send the photo as a multipart/form-data file field named 'image', or its address as "
                          "'image_url'", ErrorCode.INVALID_REQUEST)
    return upload


def _fetch_image_url(url: Any) -> FileStorage:
    """Fetched here, in the request, so a refused or broken URL is answered at once (4xx/502) and the worker
    never touches the network; the bytes then go through the same checks and storage as an upload."""
    import io

    from face3d.shared.netguard import FetchPolicy, fetch

    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise Face3dError(f"image_url must be a URL string of at most {MAX_URL_LENGTH} characters",
                          ErrorCode.VALIDATION_FAILED)
    settings = services().settings
    policy = FetchPolicy(max_bytes=settings.max_upload_bytes, timeout_s=settings.image_url_timeout_s,
                         max_redirects=settings.image_url_max_redirects,
                         allow_private=settings.image_url_allow_private,
                         allowed_networks=settings.image_url_allow_networks)
    fetched = fetch(url, policy)
    return FileStorage(io.BytesIO(fetched.data), filename=fetched.filename or "image")


def _engine_name(options: JobOptions, default: str) -> str:
    engine = options.engine or default
    if engine not in engine_names():
        raise Face3dError(f"unknown engine {engine!r}; choose one of {', '.join(engine_names())}",
                          ErrorCode.VALIDATION_FAILED)
    return engine


def _require_image_bytes(data: bytes, max_bytes: int) -> str:
    if data == b"":
        raise Face3dError("the 'image' file is empty", ErrorCode.INVALID_REQUEST)
    return check_image_bytes(data, max_bytes)


def _require_pixel_limit(data: bytes, max_pixels: int) -> None:
    """413 image_too_large from the header alone (no pixel is decoded). A header Pillow cannot read is not refused
    here: the sniffer accepted the bytes, so the job decodes them and reports exactly what is wrong."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:     # Pillow's own ceiling, far above any sane max_pixels
        raise Face3dError(f"the image is over the limit of {max_pixels} pixels ({exc})",
                          ErrorCode.IMAGE_TOO_LARGE) from exc
    except Exception:  # noqa: BLE001 - any header Pillow rejects is left to the worker's decode
        return
    if width * height > max_pixels:
        raise Face3dError(f"the image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
                          ErrorCode.IMAGE_TOO_LARGE)


def _state_arg(value: str | None) -> JobState | None:
    if not value:
        return None
    try:
        return JobState(value)
    except ValueError:
        choices = ", ".join(s.value for s in JobState)
        raise Face3dError(f"state must be one of {choices}", ErrorCode.VALIDATION_FAILED) from None


def _limit_arg(value: str | None) -> int:
    if value is None or value == "":
        return 50
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise Face3dError(f"limit must be an integer from 1 to {MAX_PAGE}", ErrorCode.VALIDATION_FAILED)
    return int(value)


def _wait_preference() -> int | None:
    match = _WAIT_PREFERENCE.search(request.headers.get("Prefer", ""))
    return min(int(match.group(1)), MAX_WAIT_S) if match else None


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise Face3dError("Idempotency-Key must be 1 to 255 characters", ErrorCode.INVALID_REQUEST)
    return key


# ---------------------------------------------------------------- job creation


def _create_job(svc: Services, upload: FileStorage, data: bytes, media_type: str, engine: str,
                options: dict[str, Any], webhook_url: str | None = None) -> tuple[Any, bool]:
    """Store the input, then commit the row. A replayed Idempotency-Key reuses the first job (its input kept)."""
    digest = hashlib.sha256(data).hexdigest()
    # Capped from the left so the extension stays: input_name is a 255-character column.
    name = (secure_filename(upload.filename or "")[-MAX_INPUT_NAME:].lstrip("._")
            or "photo" + (mimetypes.guess_extension(media_type) or ""))
    job_id = uuid.uuid4().hex
    key = input_key(job_id, name)
    svc.storage.put_bytes(key, data, content_type=media_type)
    try:
        job, created = jobs.create_job(
            svc.session_factory, engine=engine, options=options, input_name=name, input_key=key,
            input_size=len(data), input_sha256=digest,
            idempotency_key=auth.scoped_idempotency_key(_idempotency_key()),
            request_fingerprint=request_fingerprint(digest, engine, _fingerprinted(options, webhook_url)),
            job_id=job_id, owner_id=auth.current_owner(), webhook_url=webhook_url,
        )
    except BaseException:
        svc.storage.delete_prefix(job_prefix(job_id))
        raise
    if not created:
        svc.storage.delete_prefix(job_prefix(job_id))
    return job, created


def _fingerprinted(options: dict[str, Any], webhook_url: str | None) -> dict[str, Any]:
    return {**options, "webhook_url": webhook_url} if webhook_url else options


def _dispatch_or_fail(svc: Services, job: Any) -> None:
    """The row is committed before the message is sent; if sending fails the job is failed, never left queued."""
    try:
        svc.queue.send_job(job.id, job.engine)
    except Exception as exc:
        message = exc.message if isinstance(exc, Face3dError) else f"could not queue the job: {exc}"
        jobs.mark_failed(svc.session_factory, job.id, ErrorCode.BROKER_UNAVAILABLE, message)
        raise Face3dError(message, ErrorCode.BROKER_UNAVAILABLE) from exc


def _cancel_queued(svc: Services, job_id: str) -> Any:
    try:
        return jobs.cancel_job(svc.session_factory, job_id)
    except Conflict:    # it finished meanwhile: terminal, fine to delete
        return jobs.get_job(svc.session_factory, job_id)


# ---------------------------------------------------------------- responses


def _job_response(svc: Services, job: Any, *, created: bool) -> Response:
    wait_s = _wait_preference()
    if wait_s is not None:
        job = _wait_for_terminal(svc, job, wait_s)
    finished = JobState(job.state).is_terminal
    response = _json(job_view(job, _base_url()).model_dump_json(), status=200 if finished else 202)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if wait_s is not None:
        response.headers["Preference-Applied"] = f"wait={wait_s}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _wait_for_terminal(svc: Services, job: Any, wait_s: int) -> Any:
    deadline = time.monotonic() + wait_s
    while not JobState(job.state).is_terminal and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_S)
        job = jobs.get_job(svc.session_factory, job.id)
    return job


def _find_artifact(job: Any, name: str) -> dict[str, Any]:
    for artifact in (job.result or {}).get("artifacts", []):
        if artifact.get("name") == name:
            return artifact
    raise NotFound(f"job {job.id} has no artifact named {name!r}")


def _base_url() -> str:
    configured = getattr(services().settings, "public_base_url", None)
    return (configured or request.host_url).rstrip("/")


def _json(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")
