"""Flask application factory. Every dependency can be injected (tests); otherwise it is built from Settings."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify
from sqlalchemy import exc as sa_exc

from api import batches, health, jobs, web
from api.auth import init_app as init_auth
from api.openapi import openapi_document
from api.problems import register_error_handlers
from api.services import BrokerCheck, Dispatcher, Services

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from shared.config import Settings
    from shared.storage import Storage

# Room for the multipart envelope and option fields around an image of max_upload_bytes.
FORM_OVERHEAD_BYTES = 64 * 1024
DATABASE_RETRY_AFTER_S = 5
log = logging.getLogger(__name__)


def create_app(
    settings: "Settings | None" = None,
    *,
    session_factory: "sessionmaker[Session] | None" = None,
    storage: "Storage | None" = None,
    celery_app: Any = None,
    dispatcher: Dispatcher | None = None,
    broker_check: BrokerCheck | None = None,
) -> Flask:
    """Build the API. ``dispatcher`` (job_id, engine) replaces Celery sending in pure-API tests."""
    from shared.config import load_settings

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.json.sort_keys = False
    app.extensions["face3d"] = _services(settings, session_factory, storage, celery_app, dispatcher, broker_check)
    register_error_handlers(app)
    app.register_error_handler(sa_exc.SQLAlchemyError, _database_error)
    init_auth(app)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(health.bp)
    app.add_url_rule("/v1/openapi.json", "openapi", lambda: jsonify(openapi_document()))
    app.register_blueprint(web.bp)
    return app


def _database_error(error: Exception) -> Response:
    """An unreachable or overloaded database is an outage (503 + Retry-After), not a bug (500)."""
    from api.problems import problem_response
    from shared.errors import ErrorCode

    outage = isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)) or (
        isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated)
    if not outage:
        log.error("database error", exc_info=error)
        return problem_response(500, ErrorCode.INTERNAL, "internal server error")
    log.warning("database unavailable: %s", str(error).splitlines()[0][:300])
    return problem_response(503, ErrorCode.DATABASE_UNAVAILABLE, "the database is unavailable; retry shortly",
                            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})


def _services(settings: "Settings", session_factory: Any, storage: Any, celery_app: Any,
              dispatcher: Dispatcher | None, broker_check: BrokerCheck | None) -> Services:
    if session_factory is None:
        from shared.db import make_engine, make_session_factory

        session_factory = make_session_factory(make_engine(settings.database_url))
    if storage is None:
        from shared.storage import make_storage

        storage = make_storage(settings)
    if celery_app is None and (dispatcher is None or broker_check is None):
        from worker.celery_app import make_celery

        celery_app = make_celery(settings)
    return Services(
        settings=settings,
        session_factory=session_factory,
        storage=storage,
        dispatch=dispatcher or _celery_dispatcher(celery_app),
        check_broker=broker_check or _celery_broker_check(celery_app, settings.broker_connect_timeout_s),
        celery_app=celery_app,
    )


def _celery_dispatcher(celery_app: Any) -> Dispatcher:
    from worker.dispatch import send_job

    return lambda job_id, engine: send_job(celery_app, job_id, engine)


def _celery_broker_check(celery_app: Any, timeout_s: float) -> BrokerCheck:
    def check() -> None:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2,
                                         timeout=timeout_s)

    return check
