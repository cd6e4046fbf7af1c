"""Request authentication (``Authorization: Bearer f3d_...``), ownership scoping and per-key limits.

With AUTH_MODE=on every request outside the public endpoints needs an active key. Each row a key creates carries its
id as ``owner_id``; another key gets 404 for it (not 403: it must not learn the id exists); an admin key sees all.
Handlers use `current_owner()` for new rows, and `visible_owner()` / `ensure_visible(row)` for reads, so any resource
with an ``owner_id`` column (jobs, batches) is scoped the same way.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, request

from face3d.api.problems import http_status, problem_response
from face3d.shared import jobs, keys
from face3d.shared.config import ConfigError, Settings
from face3d.shared.errors import ErrorCode, Face3dError, NotFound
from face3d.shared.models import ApiKey
from face3d.api.ratelimit import Decision, Limit, Limiter, make_limiter

log = logging.getLogger(__name__)
PUBLIC_BLUEPRINTS = frozenset({"health", "web"})
PUBLIC_ENDPOINTS = frozenset({"openapi", "index", "static"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BATCH_ITEM_ENDPOINT = "batches.add_item"
EXTENSION = "face3d_auth"
AUTH_OFF_WARNING = ("*** AUTH_MODE=off: the face3d API is open to anyone who can reach it (no API keys, no "
                    "per-key rate limits). Set AUTH_MODE=on and create keys with `face3d keys create` before "
                    "exposing it. ***")


class HeaderedError(Face3dError):
    """An error whose problem response carries extra headers (WWW-Authenticate, RateLimit-*, Retry-After)."""

    def __init__(self, message: str, code: ErrorCode, headers: dict[str, str]) -> None:
        super().__init__(message, code)
        self.headers = headers


def unauthorized(message: str, invalid_token: bool) -> HeaderedError:
    challenge = 'Bearer realm="face3d"' + (', error="invalid_token"' if invalid_token else "")
    return HeaderedError(message, ErrorCode.UNAUTHORIZED, {"WWW-Authenticate": challenge})


@dataclass
class AuthState:
    enabled: bool
    limiter: Limiter
    submit_limit: Limit | None
    read_limit: Limit | None
    batch_item_limit: Limit | None = None
    auth_failure_limit: Limit | None = None


# ---------------------------------------------------------------- setup


def init_app(app: Flask) -> None:
    """Check the deployment rules, then authenticate and rate-limit every non-public request."""
    services = app.extensions["face3d"]
    settings: Settings = services.settings
    check_startup(settings, services.session_factory)
    app.extensions[EXTENSION] = AuthState(
        enabled=settings.auth_mode == "on", limiter=make_limiter(settings),
        submit_limit=_limit(settings.rate_limit_submit), read_limit=_limit(settings.rate_limit_read),
        batch_item_limit=_limit(settings.rate_limit_batch_items),
        auth_failure_limit=_limit(settings.rate_limit_auth_failures))
    app.before_request(_authenticate_and_limit)
    app.after_request(_rate_limit_headers)
    app.register_error_handler(HeaderedError, _headered_problem)


def check_startup(settings: Settings, session_factory: Any) -> None:
    """FACE3D_ENV=production refuses to run open or with no key to get in; elsewhere an open API is logged loudly."""
    production = settings.environment == "production"
    if settings.auth_mode != "on":
        if production:
            raise ConfigError("FACE3D_ENV=production needs AUTH_MODE=on (an open API would accept anybody's jobs)")
        log.warning(AUTH_OFF_WARNING)
        return
    if production and _active_keys(session_factory) == 0:
        raise ConfigError("FACE3D_ENV=production with AUTH_MODE=on needs at least one API key: "
                          "run `face3d keys create --admin` first")


def _active_keys(session_factory: Any) -> int:
    import sqlalchemy as sa

    try:
        return keys.count_active_keys(session_factory)
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(f"cannot count API keys (run `face3d db upgrade`?): {exc.__class__.__name__}") from exc


def _limit(value: tuple[int, int] | None) -> Limit | None:
    return Limit(*value) if value else None


# ---------------------------------------------------------------- per request


def _state() -> AuthState:
    return current_app.extensions[EXTENSION]


def _is_public() -> bool:
    return request.blueprint in PUBLIC_BLUEPRINTS or request.endpoint in PUBLIC_ENDPOINTS


def _authenticate_and_limit() -> None:
    if _is_public():
        return
    state = _state()
    if not state.enabled:
        return
    key = _authenticate_limited(state)
    g.face3d_key = key
    _check_rate(state, key)


def _authenticate_limited(state: AuthState) -> ApiKey:
    """_authenticate, with failures counted per client address: past the limit, 429 before any key lookup."""
    limit, address = state.auth_failure_limit, request.remote_addr or "unknown"
    if limit is None:
        return _authenticate()
    blocked = state.limiter.peek("auth_failure", address, limit)
    if not blocked.allowed:
        raise HeaderedError(f"too many failed authentications from this address ({limit.count} per "
                            f"{limit.window_s} s); retry in {blocked.reset_s} s", ErrorCode.RATE_LIMITED,
                            blocked.headers())
    try:
        return _authenticate()
    except HeaderedError:
        state.limiter.hit("auth_failure", address, limit)
        raise


def _authenticate() -> ApiKey:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing API key: send the header 'Authorization: Bearer <key>'", invalid_token=False)
    key = keys.authenticate(current_app.extensions["face3d"].session_factory, token.strip())
    if key is None:
        raise unauthorized("the API key is not valid or has been revoked", invalid_token=True)
    return key


def _check_rate(state: AuthState, key: ApiKey) -> None:
    kind, limit = _rate_bucket(state)
    if limit is None:
        return
    decision = state.limiter.hit(kind, key.id, limit)
    g.face3d_rate = decision
    if not decision.allowed:
        what = kind.replace("_", " ")
        raise HeaderedError(f"{what} rate limit of {limit.count} requests per {limit.window_s} s reached; retry in "
                            f"{decision.reset_s} s", ErrorCode.RATE_LIMITED, decision.headers())


def _rate_bucket(state: AuthState) -> tuple[str, Limit | None]:
    """Reads, submits, and batch item uploads (one request per photo of a batch: their own, larger bucket)."""
    if request.method in READ_METHODS:
        return "read", state.read_limit
    if request.endpoint == BATCH_ITEM_ENDPOINT:
        return "batch_item", state.batch_item_limit
    return "submit", state.submit_limit


def _rate_limit_headers(response: Response) -> Response:
    decision: Decision | None = g.get("face3d_rate")
    if decision is not None:
        for name, value in decision.headers().items():
            response.headers.setdefault(name, value)
    return response


def _headered_problem(error: HeaderedError) -> Response:
    return problem_response(http_status(error.code), error.code, error.message, headers=error.headers)


# ---------------------------------------------------------------- ownership (for every owned resource)


def current_key() -> ApiKey | None:
    """The authenticated key of this request; None with AUTH_MODE=off."""
    return g.get("face3d_key")


def current_owner() -> str | None:
    """The owner_id to stamp on rows this request creates (None with AUTH_MODE=off)."""
    key = current_key()
    return key.id if key else None


def visible_owner() -> str | None:
    """The owner_id reads are limited to; None means everything (admin key, or AUTH_MODE=off)."""
    key = current_key()
    return None if key is None or key.is_admin else key.id


def can_see(row: Any) -> bool:
    owner = visible_owner()
    return owner is None or getattr(row, "owner_id", None) == owner


def ensure_visible(row: Any, what: str) -> Any:
    """Return the row, or raise the same 404 a missing one gets (``what``: e.g. 'job 123')."""
    if not can_see(row):
        raise NotFound(f"{what} not found")
    return row


def scoped_idempotency_key(client_key: str | None) -> str | None:
    """Idempotency keys are per API key, so one client's key can neither clash with nor reveal another's job."""
    owner = current_owner()
    if client_key is None or owner is None:
        return client_key
    return f"{owner}:{hashlib.sha256(client_key.encode()).hexdigest()}"


def enforce_active_job_cap(settings: Settings, session_factory: Any, new_jobs: int = 1) -> None:
    """429 too_many_active_jobs when the key already has MAX_ACTIVE_JOBS_PER_KEY queued or running jobs."""
    owner, cap = current_owner(), settings.max_active_jobs_per_key
    if owner is None or cap <= 0:
        return
    active = jobs.count_active_jobs(session_factory, owner)
    if active + new_jobs > cap:
        raise too_many_active_jobs(f"this API key already has {active} queued or running jobs (limit {cap}); wait "
                                   "for some to finish")


def too_many_active_jobs(message: str) -> HeaderedError:
    """The cheap early check above refuses most; jobs.create_job's locked count settles the races."""
    return HeaderedError(message, ErrorCode.TOO_MANY_ACTIVE_JOBS, {"Retry-After": "10"})
