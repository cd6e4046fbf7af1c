"""/v1/jobs: submit a photo, follow the job, fetch its files, cancel, retry or delete it (the submit itself and the
retry: api/submission.py)."""
from __future__ import annotations

import re
import time
from typing import Any

from flask import Blueprint, Response, redirect, request, send_file

from face3d.api import auth, paging, submission
from face3d.api.services import Services, services
from face3d.shared import jobs
from face3d.shared.errors import Conflict, ErrorCode, Face3dError, NotFound
from face3d.shared.models import Job
from face3d.shared.schema import JobList, WebhookDeliveryList, download_name, job_view
from face3d.shared.states import JobState
from face3d.shared.storage import content_type_for, job_prefix

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

MAX_WAIT_S = 60
WAIT_POLL_S = 0.05
WAIT_MILESTONES = ("mesh", "vis", "video")
# ASCII digits only; any run longer than MAX_WAIT_S's is capped before int() (5,000 digits raised ValueError: a 500).
_WAIT_PREFERENCE = re.compile(r"(?:^|[,;\s])wait\s*=\s*([0-9]+)", re.IGNORECASE)


@bp.post("")
def submit_job() -> Response:
    svc = services()
    job, created = submission.submit(svc)
    return _job_response(svc, job, created=created)


@bp.get("")
def list_jobs() -> Response:
    state = paging.state_arg()
    limit = paging.limit_arg(paging.MAX_JOBS_PAGE)
    svc = services()
    rows, next_cursor = jobs.list_jobs(svc.session_factory, state=state, cursor=paging.cursor_arg(), limit=limit,
                                       owner_id=auth.visible_owner())
    base = _base_url(svc)
    page = JobList(items=[job_view(row, base) for row in rows], next_cursor=next_cursor)
    return paging.page_response(page.model_dump_json(), f"{base}/v1/jobs", limit, next_cursor,
                                **({"state": state.value} if state else {}))


@bp.get("/<job_id>")
def get_job(job_id: str) -> Response:
    svc = services()
    job = _visible_job(svc, job_id)
    job, wait_s = _wait_if_preferred(svc, job, _wait_for())
    response = _json(job_view(job, _base_url(svc)).model_dump_json())
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
    return _json(job_view(job, _base_url(svc)).model_dump_json(), status=202)


@bp.post("/<job_id>/retry")
def retry_job(job_id: str) -> Response:
    """Submit a failed job's stored input again, as a new job linked to it (``retry_of``)."""
    svc = services()
    job, created = submission.retry(svc, _visible_job(svc, job_id))
    return _job_response(svc, job, created=created)


@bp.delete("/<job_id>")
def delete_job(job_id: str) -> Response:
    """Delete a job and its files. A queued job is canceled first; a running one must be canceled by the client
    (409) so a worker never writes files for a row that no longer exists."""
    svc = services()
    job = _visible_job(svc, job_id)
    if job.state is JobState.QUEUED:
        job = _cancel_queued(svc, job_id)
    if job.state is JobState.RUNNING:
        raise Conflict(f"job {job_id} is running; cancel it (POST /v1/jobs/{job_id}/cancel) and retry when it stops")
    deleted = jobs.delete_job(svc.session_factory, job_id)
    svc.storage.delete_prefix(job_prefix(deleted.id))
    return Response(status=204)


@bp.get("/<job_id>/artifacts/<name>")
def get_artifact(job_id: str, name: str) -> Response:
    svc = services()
    job = _visible_job(svc, job_id)
    artifact = _find_artifact(job, name)
    saved_as = download_name(job.input_name, name, job.id[:8])
    url = svc.storage.url_for(artifact["key"], filename=saved_as)
    if url:
        return redirect(url, code=302)
    content_type = artifact.get("content_type") or content_type_for(name)
    response = send_file(svc.storage.open_stream(artifact["key"]), mimetype=content_type, download_name=saved_as,
                         max_age=3600)
    response.cache_control.public = False       # a key's files: never kept by shared caches
    response.cache_control.private = True
    return response


@bp.get("/<job_id>/webhook-deliveries")
def list_webhook_deliveries(job_id: str) -> Response:
    """Every delivery attempt of the job's webhook, oldest first."""
    from face3d.shared.webhooks import list_deliveries

    svc = services()
    _visible_job(svc, job_id)
    rows = list_deliveries(svc.session_factory, job_id)
    return _json(WebhookDeliveryList.model_validate({"items": rows}, from_attributes=True).model_dump_json())


def _visible_job(svc: Services, job_id: str) -> Job:
    """The job, or 404 when it does not exist or belongs to another API key."""
    return auth.ensure_visible(jobs.get_job(svc.session_factory, job_id), f"job {job_id}")


def _cancel_queued(svc: Services, job_id: str) -> Job:
    try:
        return jobs.cancel_job(svc.session_factory, job_id)
    except Conflict:    # it finished meanwhile: terminal, fine to delete
        return jobs.get_job(svc.session_factory, job_id)


def _job_response(svc: Services, job: Job, *, created: bool) -> Response:
    job, wait_s = _wait_if_preferred(svc, job, None)
    response = _json(job_view(job, _base_url(svc)).model_dump_json(), status=200 if job.is_terminal else 202)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if wait_s is not None:
        response.headers["Preference-Applied"] = f"wait={wait_s}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _wait_preference() -> int | None:
    match = _WAIT_PREFERENCE.search(request.headers.get("Prefer", ""))
    if not match:
        return None
    digits = match.group(1).lstrip("0") or "0"
    return MAX_WAIT_S if len(digits) > len(str(MAX_WAIT_S)) else min(int(digits), MAX_WAIT_S)


def _wait_for() -> str | None:
    """``?wait_for=mesh``: a Prefer wait ends once the mesh files and result.json are stored (or the job ends)."""
    wanted = request.args.get("wait_for")
    if wanted not in (None, *WAIT_MILESTONES):
        raise Face3dError(f"wait_for must be one of {', '.join(WAIT_MILESTONES)}", ErrorCode.INVALID_REQUEST)
    return wanted


def _reached(job: Job, milestone: str | None) -> bool:
    return job.is_terminal or (milestone is not None and milestone in (job.result or {}).get("milestones", []))


def _wait_if_preferred(svc: Services, job: Job, milestone: str | None) -> tuple[Job, int | None]:
    """Honour `Prefer: wait=N` while fewer than MAX_CONCURRENT_WAITS requests of this process wait: each wait holds
    a server thread, so over the bound the job is answered at once (the wait not applied, as RFC 7240 allows).
    Returns the job and the wait applied (None: none)."""
    wait_s = _wait_preference()
    if wait_s is None or _reached(job, milestone):
        return job, wait_s
    if svc.settings.max_concurrent_waits == 0 or not svc.waits.acquire(blocking=False):
        return job, None
    try:
        return _wait_for_terminal(svc, job, wait_s, milestone), wait_s
    finally:
        svc.waits.release()


def _wait_for_terminal(svc: Services, job: Job, wait_s: int, milestone: str | None = None) -> Job:
    deadline = time.monotonic() + wait_s
    while not _reached(job, milestone) and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_S)
        job = jobs.get_job(svc.session_factory, job.id)
    return job


def _find_artifact(job: Job, name: str) -> dict[str, Any]:
    for artifact in (job.result or {}).get("artifacts", []):
        if artifact.get("name") == name and artifact.get("ready", True):
            return artifact
        if artifact.get("name") == name:
            raise NotFound(f"artifact {name!r} of job {job.id} is not stored yet (ready: false); try again later")
    raise NotFound(f"job {job.id} has no artifact named {name!r}")


def _base_url(svc: Services) -> str:
    return paging.base_url(svc.settings.public_base_url)


def _json(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")
