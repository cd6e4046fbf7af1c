"""A small typed HTTP client for the face3d API (used by the CLI, the tests and the benchmarks), and verify() for
webhook receivers. It runs on users' machines: it needs only the public schema and the error codes."""
from __future__ import annotations

import hmac
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import requests

from face3d.shared.errors import Backoff, ErrorCode, Face3dError
from face3d.shared.schema import Job, JobList, JobOptions, sign

DEFAULT_SERVER = "http://127.0.0.1:8000"
MAX_SERVER_WAIT_S = 30          # per request; the server caps Prefer: wait at 60
UPDATE_POLL_S = 1.0             # between two polls while a caller shows progress (wait(on_update=...))
RECONNECT_GIVE_UP_S = 120       # wait() without a timeout stops retrying an unreachable server after this
RECONNECT_BACKOFF = Backoff(first_s=0.25, max_s=5.0)
SUBMIT_RECONNECT_S = 5          # a submit retries a refused connection this long (an API restart), then says so


class ApiError(Face3dError):
    """The server answered with a problem+json error (or something that is not JSON at all)."""

    def __init__(self, status: int, problem: Mapping[str, Any], retry_after_s: float | None = None) -> None:
        code = _error_code(problem.get("code"))
        super().__init__(str(problem.get("detail") or problem.get("title") or f"HTTP {status}"), code)
        self.status = status
        self.problem = dict(problem)
        self.retry_after_s = retry_after_s          # the server's Retry-After, in seconds, when it sent one


class ServerUnreachable(Face3dError):
    """No answer at all: nothing listens at the address, or the connection broke."""

    code = ErrorCode.SERVER_UNREACHABLE

    @classmethod
    def at(cls, server_url: str) -> "ServerUnreachable":
        return cls(f"cannot reach the face3d server at {server_url}: is it running? (start it with `make run`, "
                   "or set --server / FACE3D_SERVER)")


def _error_code(value: Any) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL


def default_server() -> str:
    return os.environ.get("FACE3D_SERVER") or DEFAULT_SERVER


class Face3dClient:
    def __init__(self, server_url: str | None = None, timeout: float = 30.0, api_key: str | None = None) -> None:
        """``api_key`` (default: $FACE3D_API_KEY) is sent as ``Authorization: Bearer``."""
        self.server_url = (server_url or default_server()).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        api_key = api_key or os.environ.get("FACE3D_API_KEY")
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    # ------------------------------------------------------------ jobs

    def submit(self, path: str | Path, options: JobOptions | Mapping[str, Any] | None = None,
               wait: bool | int = False, idempotency_key: str | None = None) -> Job:
        """Upload a photo. ``wait=True`` blocks until the job finishes; an int waits at most that many seconds."""
        path = Path(path)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        form = {"options": json.dumps(_options_dict(options))}

        def post() -> Any:
            with path.open("rb") as image:
                return self._request("POST", "/v1/jobs", files={"image": (path.name, image)}, data=form,
                                     headers=headers)

        job = Job.model_validate(self._retrying(post))
        if wait is False or job.state.is_terminal:
            return job
        return self.wait(job.id, timeout=None if wait is True else float(wait))

    def get(self, job_id: str, wait_s: int | None = None) -> Job:
        headers = {"Prefer": f"wait={wait_s}"} if wait_s else {}
        return Job.model_validate(self._request("GET", f"/v1/jobs/{job_id}", headers=headers,
                                                extra_timeout=wait_s or 0))

    def wait(self, job_id: str, timeout: float | None = 600.0,
             on_update: Callable[[Job], None] | None = None) -> Job:
        """Follow a job until it is terminal (long-polling with Prefer: wait); raises Face3dError(TIMEOUT).
        ``on_update`` is called with the job whenever its state, stage or progress changed; it then polls every
        UPDATE_POLL_S instead of holding one long request, which would answer only at the end.

        A server that restarts or is briefly unavailable (connection errors, 502/503/504) or rate-limits the polls
        (429) is retried with backoff, at least its Retry-After, until ``timeout``, or for RECONNECT_GIVE_UP_S
        without a timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        retry, seen = _Reconnect(), None
        while True:
            remaining = MAX_SERVER_WAIT_S if deadline is None else deadline - time.monotonic()
            try:
                job = self.get(job_id, wait_s=None if on_update else max(1, min(MAX_SERVER_WAIT_S, int(remaining))))
            except Face3dError as error:
                if not _transient(error) or not retry.sleep(deadline, _retry_after(error)):
                    raise
                continue
            retry.reset()
            if on_update and (job.state, job.stage, job.progress) != seen:
                seen = (job.state, job.stage, job.progress)
                on_update(job)
            if job.state.is_terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise Face3dError(f"job {job_id} still {job.state.value} after {timeout:.0f} s", ErrorCode.TIMEOUT)
            if on_update:
                time.sleep(UPDATE_POLL_S)

    def list(self, state: str | None = None, limit: int = 50, cursor: str | None = None) -> JobList:
        params = {k: v for k, v in {"state": state, "limit": limit, "cursor": cursor}.items() if v is not None}
        return JobList.model_validate(self._request("GET", "/v1/jobs", params=params))

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(self._request("POST", f"/v1/jobs/{job_id}/cancel"))

    def delete(self, job_id: str) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def retry(self, job_id: str) -> Job:
        """Submit a failed job's stored input again, as a new job (its ``retry_of`` is ``job_id``)."""
        return Job.model_validate(self._request("POST", f"/v1/jobs/{job_id}/retry",
                                                headers={"Idempotency-Key": uuid.uuid4().hex}))

    def download(self, job_id: str, outdir: str | Path, folder: str | None = None) -> list[Path]:
        """Save every stored artifact of a job into ``outdir/<folder>/`` (default folder: the job id, so jobs
        never overwrite each other's files); returns the written paths. A running job's files not stored yet
        (``ready`` false) are left out."""
        job = self.get(job_id)
        target_dir = Path(outdir) / (folder or job.id)
        written = []
        for artifact in (artifact for artifact in job.artifacts if artifact.ready):
            target = target_dir / Path(artifact.name).name
            self._download_file(artifact.url, target)
            written.append(target)
        return written

    # ------------------------------------------------------------ batches (plain dicts: see shared/schema.py)

    def create_batch(self, options: JobOptions | Mapping[str, Any] | None = None, *, items: list[dict] | None = None,
                     s3_prefix: str | None = None, name: str | None = None) -> dict[str, Any]:
        """A batch of ``items`` ({"url"|"key", "name"}), of every object under ``s3_prefix``, or an empty one that
        `add_batch_item` fills."""
        body: dict[str, Any] = {"options": _options_dict(options), "name": name}
        if s3_prefix is not None:
            body["s3_prefix"] = s3_prefix
        elif items is not None:
            body["items"] = items
        return self._request("POST", "/v1/batches", json=body)

    def upload_archive(self, path: str | Path, options: JobOptions | Mapping[str, Any] | None = None,
                       name: str | None = None) -> dict[str, Any]:
        path = Path(path)
        form = {"options": json.dumps(_options_dict(options)), **({"name": name} if name else {})}
        with path.open("rb") as archive:
            return self._request("POST", "/v1/batches", files={"archive": (path.name, archive)}, data=form)

    def add_batch_item(self, batch_id: str, name: str, data: bytes) -> dict[str, Any]:
        """Upload one photo into the batch; a name already there returns the existing item (safe to retry)."""
        return self._request("POST", f"/v1/batches/{batch_id}/items", files={"image": (Path(name).name, data)},
                             data={"name": name})

    def add_batch_reference(self, batch_id: str, name: str, *, url: str | None = None,
                            key: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in {"name": name, "url": url, "key": key}.items() if v is not None}
        return self._request("POST", f"/v1/batches/{batch_id}/items", json=body)

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/batches/{batch_id}")

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/batches/{batch_id}/cancel")

    def batch_results(self, batch_id: str, state: str | None = None) -> list[dict[str, Any]]:
        """The results lines (JSON Lines, streamed by the server); ``state="terminal"``: finished items only."""
        url = f"{self.server_url}/v1/batches/{batch_id}/results"
        try:
            with self.session.get(url, params={"state": state} if state else None, stream=True,
                                  timeout=self.timeout) as response:
                if response.status_code >= 400:
                    raise _api_error(response)
                return [json.loads(line) for line in response.iter_lines() if line.strip()]
        except requests.RequestException as exc:
            raise ServerUnreachable.at(self.server_url) from exc

    # ------------------------------------------------------------ transport

    def _download_file(self, url: str, target: Path) -> None:
        """Written beside the target and renamed when complete: a failed download leaves no partial file."""
        partial = target.with_name(f".{target.name}.part")
        try:
            with self.session.get(url, stream=True, timeout=self.timeout) as response:
                if response.status_code >= 400:
                    raise _api_error(response)
                target.parent.mkdir(parents=True, exist_ok=True)
                with partial.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        out.write(chunk)
            partial.replace(target)
        except requests.RequestException as exc:
            raise ServerUnreachable(f"download of {url} broke off: {exc.__class__.__name__}") from exc
        finally:
            partial.unlink(missing_ok=True)

    def _retrying(self, call: Callable[[], Any]) -> Any:
        """``call()`` again while the server is unreachable, answers 429 or 502/503/504: after its Retry-After when
        it sends one, else with backoff, for at most RECONNECT_GIVE_UP_S (SUBMIT_RECONNECT_S while nothing answers). For requests that are safe to repeat:
        a submit sends the same Idempotency-Key every time, so a retried one never makes a second job."""
        refused, busy = _Reconnect(SUBMIT_RECONNECT_S), _Reconnect()
        while True:
            try:
                return call()
            except Face3dError as error:
                retry = refused if isinstance(error, ServerUnreachable) else busy
                if not _transient(error) or not retry.sleep(None, _retry_after(error)):
                    raise

    def _request(self, method: str, path: str, extra_timeout: float = 0, **kwargs: Any) -> Any:
        url = self.server_url + path
        try:
            response = self.session.request(method, url, timeout=(self.timeout, self.timeout + extra_timeout),
                                            **kwargs)
        except requests.RequestException as exc:
            raise ServerUnreachable.at(self.server_url) from exc
        if response.status_code >= 400:
            raise _api_error(response)
        return response.json() if response.content else None


def _transient(error: Face3dError) -> bool:
    return isinstance(error, ServerUnreachable) or (isinstance(error, ApiError) and error.status in (429, 502, 503,
                                                                                                      504))


def _retry_after(error: Face3dError) -> float:
    return (error.retry_after_s or 0.0) if isinstance(error, ApiError) else 0.0


class _Reconnect:
    """Waits between attempts to reach a server that went away (RECONNECT_BACKOFF), and gives up at the deadline
    or after RECONNECT_GIVE_UP_S of failures in a row."""

    def __init__(self, give_up_s: float = RECONNECT_GIVE_UP_S) -> None:
        self.give_up_s = give_up_s
        self.reset()

    def reset(self) -> None:
        self.failures, self.failing_since = 0, None

    def sleep(self, deadline: float | None, at_least_s: float = 0.0) -> bool:
        """Wait before the next attempt (the backoff, or ``at_least_s``: a Retry-After); False: give up instead."""
        now = time.monotonic()
        self.failing_since = self.failing_since or now
        self.failures += 1
        delay = max(RECONNECT_BACKOFF.delay(self.failures), at_least_s)
        give_up = deadline if deadline is not None else self.failing_since + self.give_up_s
        if now + delay >= give_up:
            return False
        time.sleep(delay)
        return True


def _options_dict(options: JobOptions | Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if isinstance(options, JobOptions):
        return options.model_dump(exclude_none=True)
    return {k: v for k, v in options.items() if v is not None}


def _api_error(response: requests.Response) -> ApiError:
    try:
        problem = response.json()
    except ValueError:
        problem = {"title": response.reason, "detail": response.text[:300]}
    if not isinstance(problem, dict):
        problem = {"detail": str(problem)[:300]}
    retry_after = response.headers.get("Retry-After", "").strip()
    seconds = float(retry_after) if retry_after.isascii() and retry_after.isdigit() else None
    return ApiError(response.status_code, problem, retry_after_s=seconds)


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: int = 300,
           now: float | None = None) -> bool:
    """For a webhook receiver: the signature matches ``secret`` and the timestamp is recent (no replay)."""
    try:
        timestamp = int(headers["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, headers.get("webhook-id", ""), timestamp, body).split(",", 1)[1]
    offered = [part.split(",", 1)[1] for part in headers.get("webhook-signature", "").split() if part.startswith("v1,")]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
