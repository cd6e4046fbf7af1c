"""A small typed HTTP client for the face3d API (used by the CLI, the tests and the benchmarks)."""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import requests

from api.schemas import Job, JobList, JobOptions
from shared.errors import ErrorCode, Face3dError

DEFAULT_SERVER = "http://127.0.0.1:8000"
MAX_SERVER_WAIT_S = 30          # per request; the server caps Prefer: wait at 60


class ApiError(Face3dError):
    """The server answered with a problem+json error (or something that is not JSON at all)."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        code = _error_code(problem.get("code"))
        super().__init__(str(problem.get("detail") or problem.get("title") or f"HTTP {status}"), code)
        self.status = status
        self.problem = dict(problem)


class ServerUnreachable(Face3dError):
    code = ErrorCode.INTERNAL


def _error_code(value: Any) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL


def default_server() -> str:
    return os.environ.get("FACE3D_SERVER") or DEFAULT_SERVER


class Face3dClient:
    def __init__(self, server_url: str | None = None, timeout: float = 30.0) -> None:
        self.server_url = (server_url or default_server()).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    # ------------------------------------------------------------ jobs

    def submit(self, path: str | Path, options: JobOptions | Mapping[str, Any] | None = None,
               wait: bool | int = False, idempotency_key: str | None = None) -> Job:
        """Upload a photo. ``wait=True`` blocks until the job finishes; an int waits at most that many seconds."""
        path = Path(path)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        form = {"options": json.dumps(_options_dict(options))}
        with path.open("rb") as image:
            job = Job.model_validate(self._request(
                "POST", "/v1/jobs", files={"image": (path.name, image)}, data=form, headers=headers))
        if wait is False or job.state.is_terminal:
            return job
        return self.wait(job.id, timeout=None if wait is True else float(wait))

    def get(self, job_id: str, wait_s: int | None = None) -> Job:
        headers = {"Prefer": f"wait={wait_s}"} if wait_s else {}
        return Job.model_validate(self._request("GET", f"/v1/jobs/{job_id}", headers=headers,
                                                extra_timeout=wait_s or 0))

    def wait(self, job_id: str, timeout: float | None = 600.0) -> Job:
        """Follow a job until it is terminal (long-polling with Prefer: wait); raises Face3dError(TIMEOUT)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = MAX_SERVER_WAIT_S if deadline is None else deadline - time.monotonic()
            job = self.get(job_id, wait_s=max(1, min(MAX_SERVER_WAIT_S, int(remaining))))
            if job.state.is_terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise Face3dError(f"job {job_id} still {job.state.value} after {timeout:.0f} s", ErrorCode.TIMEOUT)

    def list(self, state: str | None = None, limit: int = 50, cursor: str | None = None) -> JobList:
        params = {k: v for k, v in {"state": state, "limit": limit, "cursor": cursor}.items() if v is not None}
        return JobList.model_validate(self._request("GET", "/v1/jobs", params=params))

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(self._request("POST", f"/v1/jobs/{job_id}/cancel"))

    def delete(self, job_id: str) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def download(self, job_id: str, outdir: str | Path) -> list[Path]:
        """Save every artifact of a finished job into ``outdir``; returns the written paths."""
        job = self.get(job_id)
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        written = []
        for artifact in job.artifacts:
            target = outdir / Path(artifact.name).name
            self._download_file(artifact.url, target)
            written.append(target)
        return written

    # ------------------------------------------------------------ transport

    def _download_file(self, url: str, target: Path) -> None:
        try:
            with self.session.get(url, stream=True, timeout=self.timeout) as response:
                if response.status_code >= 400:
                    raise _api_error(response)
                with target.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        out.write(chunk)
        except requests.RequestException as exc:
            raise ServerUnreachable(f"download of {url} failed: {exc}") from exc

    def _request(self, method: str, path: str, extra_timeout: float = 0, **kwargs: Any) -> Any:
        url = self.server_url + path
        try:
            response = self.session.request(method, url, timeout=(self.timeout, self.timeout + extra_timeout),
                                            **kwargs)
        except requests.RequestException as exc:
            raise ServerUnreachable(f"cannot reach the face3d server at {self.server_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _api_error(response)
        return response.json() if response.content else None


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
    return ApiError(response.status_code, problem)
