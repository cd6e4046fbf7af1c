"""Liveness (/healthz: the process answers) and readiness (/readyz: database, broker and storage answer)."""
from __future__ import annotations

import logging
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


@bp.get("/healthz")
def healthz() -> Response:
    return Response(Health(status="ok").model_dump_json(), mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    checks = {name: _run(name, check) for name, check in _checks(svc).items()}
    ready = all(result == "ok" for result in checks.values())
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return Response(body.model_dump_json(), status=200 if ready else 503, mimetype="application/json")


def _checks(svc: Services) -> dict[str, Callable[[], None]]:
    return {
        "database": lambda: _check_database(svc),
        "broker": svc.queue.check,
        "storage": svc.storage.check,
    }


def _check_database(svc: Services) -> None:
    with svc.session_factory() as session:
        session.execute(text("SELECT 1"))


def _run(name: str, check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as exc:   # readiness reports any failure instead of raising it
        log.warning("readiness check %s failed: %s", name, exc)
        return f"unavailable: {type(exc).__name__}: {str(exc)[:200]}"
    return "ok"
