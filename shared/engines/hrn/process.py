"""HRN's life in one process: one pipeline, built once; a failed load remembered; a poisoned CUDA context noticed.

A gpu worker's pool child builds the pipeline once (a warm-up thread may start it before the first job: see
``gpu_worker.py``) and shares it between every ``HrnEngine`` the process creates. A load that failed is not
tried again: each later job fails fast with the same reason until the worker restarts. An engine error after a
success means the CUDA context may be unusable (an illegal access or device assert poisons every later call), so
the process refuses further work and its pool child is replaced.

What this process knows is also written to a small JSON status file when a gpu worker attached one, so the
container's health check (``worker/healthcheck.py``) can say whether HRN loaded.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

from face3d.shared.engines.hrn.failures import describe, is_time_limit
from face3d.shared.errors import EngineUnavailable

STATUS_FILE_ENV = "HRN_STATUS_FILE"
STARTING, LOADING, READY, FAILED, POISONED = "starting", "loading", "ready", "failed", "poisoned"
T = TypeVar("T")


def default_status_file() -> Path:
    return Path(os.environ.get(STATUS_FILE_ENV) or Path(tempfile.gettempdir()) / "face3d-hrn-status.json")


class HrnProcess:
    """The process-wide HRN state; tests make their own instead of using ``PROCESS``."""

    def __init__(self) -> None:
        self.state = "not_loaded"
        self.reason = ""
        self._lock = threading.Lock()
        self._pipeline: object | None = None
        self._failure: EngineUnavailable | None = None
        self._succeeded = False
        self._status_file: Path | None = None

    def attach_status_file(self, path: Path | None = None) -> Path:
        """Write this process's HRN state to ``path`` from now on (pool children inherit it across the fork)."""
        self._status_file = Path(path) if path else default_status_file()
        self._set(STARTING, "")
        return self._status_file

    def load(self, build: Callable[[], T]) -> T:
        """The pipeline, built by ``build`` on first use only; EngineUnavailable, cached, if that ever failed."""
        self.refuse_if_poisoned()
        with self._lock:
            if self._pipeline is not None:
                return self._pipeline  # type: ignore[return-value]
            if self._failure is not None:
                raise EngineUnavailable(f"{self._failure.message} (this worker process tried once at start; "
                                        "restart the worker after fixing it)")
            self._set(LOADING, "")
            self._pipeline = self._build(build)
            self._set(READY, "")
            return self._pipeline  # type: ignore[return-value]

    def _build(self, build: Callable[[], T]) -> T:
        try:
            return build()
        except EngineUnavailable as exc:
            self._remember(exc)
            raise
        except BaseException as exc:
            if is_time_limit(exc) or not isinstance(exc, Exception):
                self._set("not_loaded", "")       # interrupted, not failed: the next job may try again
                raise
            failure = EngineUnavailable(f"HRN could not be loaded: {describe(exc)}")
            self._remember(failure)
            raise failure from exc

    def _remember(self, failure: EngineUnavailable) -> None:
        self._failure = failure
        self._set(FAILED, failure.message)

    def face_done(self) -> None:
        self._succeeded = True

    def engine_failed(self, cause: str) -> bool:
        """Record an engine error; after an earlier success it poisons this process. Returns whether it did."""
        if not self._succeeded:
            return False
        self._set(POISONED, cause)
        return True

    @property
    def poisoned(self) -> bool:
        return self.state == POISONED

    def refuse_if_poisoned(self) -> None:
        if self.poisoned:
            raise EngineUnavailable(f"HRN's CUDA context in this worker process is unusable after: {self.reason} "
                                    "(a prefork pool replaces the process; restart a solo worker)")

    def _set(self, state: str, reason: str) -> None:
        self.state, self.reason = state, reason
        if self._status_file is not None:
            write_status(self._status_file, {"state": state, "reason": reason, "pid": os.getpid(),
                                             "at": round(time.time(), 1)})


def write_status(path: Path, status: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(status))
    os.replace(partial, path)          # the health check never reads half a file


def read_status(path: Path | None = None) -> dict | None:
    try:
        return json.loads((path or default_status_file()).read_text())
    except (OSError, ValueError):
        return None


PROCESS = HrnProcess()
