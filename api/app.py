"""Flask application factory. Every dependency can be injected (tests); otherwise it is built from Settings."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Flask, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from face3d.api import batches, downloads, edge, health, jobs, web
from face3d.api.auth import init_app as init_auth
from face3d.api.openapi import openapi_document
from face3d.api.problems import register_error_handlers
from face3d.api.services import Services
from face3d.shared.db import session_factory_for
from face3d.shared.queue import JobQueue
from face3d.shared.storage import make_storage

if TYPE_CHECKING:
    from face3d.shared.config import Settings
    from face3d.shared.db import SessionFactory
    from face3d.shared.storage import Storage

# Room for the multipart envelope and option fields around an image of max_upload_bytes.
FORM_OVERHEAD_BYTES = 64 * 1024
log = logging.getLogger(__name__)


def create_app(
    settings: "Settings | None" = None,
    *,
    session_factory: "SessionFactory | None" = None,
    storage: "Storage | None" = None,
    queue: "JobQueue | None" = None,
) -> Flask:
    """Build the API; each dependency left out is built from ``settings`` (default: the environment)."""
    from face3d.shared.config import load_settings

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    app.json.sort_keys = False
    app.extensions["face3d"] = _services(settings, session_factory, storage, queue)
    register_error_handlers(app)
    init_auth(app)
    edge.init_app(app)          # after authentication: a request without a key is a 401 whatever its path holds
    app.register_blueprint(jobs.bp)
    app.register_blueprint(downloads.bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(health.bp)
    app.add_url_rule("/v1/openapi.json", "openapi", lambda: jsonify(openapi_document()))
    app.register_blueprint(web.bp)
    if settings.trusted_proxies:    # behind nginx every client would otherwise share the proxy's address
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app


def _services(settings: "Settings", session_factory: "SessionFactory | None", storage: "Storage | None",
              queue: "JobQueue | None") -> Services:
    return Services(
        settings=settings,
        session_factory=session_factory_for(settings.database_url) if session_factory is None else session_factory,
        storage=make_storage(settings) if storage is None else storage,
        queue=JobQueue.from_settings(settings) if queue is None else queue,
    )
