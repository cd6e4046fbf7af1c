"""Liveness (/healthz: the process answers) and readiness (/readyz: database, broker and storage answer)."""
from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Callable

from flask import Blueprint, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from face3d.api.services import Services, services


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ok | unavailable")
    checks: dict[str, str] = Field(description="database / broker / storage -> 'ok' or the failure reason.")


bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)
PROBE_PREFIX = "readyz/"
PROBE_BYTES = 4096          # enough to need a data block: a full disk refuses it


@bp.get("/healthz")
def healthz() -> Response:
    return Response(Health(status="ok").model_dump_json(), mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    checks = _run_all(_checks(svc), svc.settings.readyz_timeout_s)
    ready = all(result == "ok" for result in checks.values())
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return Response(body.model_dump_json(), status=200 if ready else 503, mimetype="application/json")


def _checks(svc: Services) -> dict[str, Callable[[], None]]:
    return {
        "database": lambda: _check_database(svc),
        "broker": svc.queue.check,
        "storage": lambda: _check_storage(svc),
    }


def _check_database(svc: Services) -> None:
    with svc.session_factory() as session:
        session.execute(text("SELECT 1"))


def _check_storage(svc: Services) -> None:
    """A real write and read back (a full disk or a read-only bucket fails here), then the probe goes again."""
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes * (PROBE_BYTES // 16)
    try:
        svc.storage.put_bytes(key, payload, content_type="application/octet-stream")
        if svc.storage.get_bytes(key) != payload:
            raise RuntimeError("the probe object read back differs from what was written")
    finally:
        svc.storage.delete_prefix(key)


def _run_all(checks: dict[str, Callable[[], None]], timeout_s: float) -> dict[str, str]:
    """Every check at once, each given ``timeout_s``; one that hangs (an S3 that never answers) is reported down
    and left to finish on its thread."""
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    futures = {name: pool.submit(_run, name, check) for name, check in checks.items()}
    pool.shutdown(wait=False)
    deadline = time.monotonic() + timeout_s
    results = {}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            log.warning("readiness check %s took longer than %g s", name, timeout_s)
            results[name] = f"unavailable: no answer within {timeout_s:g} s"
    return results


def _run(name: str, check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as exc:   # readiness reports any failure instead of raising it
        log.warning("readiness check %s failed: %s", name, exc)
        return f"unavailable: {type(exc).__name__}: {str(exc)[:200]}"
    return "ok"
