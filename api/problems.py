"""One error shape for every failure: RFC 9457 problem+json, mapped once here from typed errors."""
from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, current_app, request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from face3d.shared.errors import ErrorCode, Face3dError

PROBLEM_MEDIA_TYPE = "application/problem+json"
DATABASE_RETRY_AFTER_S = 5
log = logging.getLogger(__name__)

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.ARCHIVE_TOO_LARGE: 413,
    ErrorCode.ARCHIVE_INVALID: 422,
    ErrorCode.ARCHIVE_ENTRY_REFUSED: 422,
    ErrorCode.INVALID_IMAGE: 422,
    ErrorCode.IMAGE_TOO_LARGE: 413,
    ErrorCode.NO_FACE_DETECTED: 422,
    ErrorCode.ENGINE_UNAVAILABLE: 503,
    ErrorCode.ENGINE_ERROR: 500,
    ErrorCode.STORAGE_UNAVAILABLE: 503,
    ErrorCode.BROKER_UNAVAILABLE: 503,
    ErrorCode.DATABASE_UNAVAILABLE: 503,
    ErrorCode.URL_NOT_ALLOWED: 422,
    ErrorCode.FETCH_FAILED: 502,
    ErrorCode.WORKER_LOST: 500,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.CANCELED: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_ACTIVE_JOBS: 429,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.INTERNAL: 500,
}


def http_status(code: ErrorCode) -> int:
    return HTTP_STATUS.get(code, 500)

# Werkzeug's own errors (bad route, bad method, body too large, ...) mapped to our codes.
_HTTP_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID_REQUEST,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMITED,
}


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is, e.g. ['options', 'max_faces'].")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, the one error shape of this API."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None
    errors: list[ValidationIssue] | None = None


class RequestValidationError(Face3dError):
    """Well-formed request whose fields break the schema (422, with the list of issues)."""

    code = ErrorCode.VALIDATION_FAILED

    def __init__(self, error: ValidationError, prefix: str = "options") -> None:
        issues = [
            ValidationIssue(loc=[prefix, *e["loc"]], msg=e["msg"], type=e["type"]) for e in error.errors()
        ]
        super().__init__("; ".join(f"{'.'.join(map(str, i.loc))}: {i.msg}" for i in issues))
        self.issues = issues


def problem_response(
    status: int, code: ErrorCode, detail: str | None, *, errors: list[ValidationIssue] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    problem = Problem(
        type=f"urn:face3d:error:{code.value}",
        title=_title(status),
        status=status,
        detail=detail,
        code=code.value,
        instance=request.path if request else None,
        errors=errors,
    )
    body = problem.model_dump_json(exclude_none=True)
    return Response(body, status=status, mimetype=PROBLEM_MEDIA_TYPE, headers=headers)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _face3d_error(error: Face3dError) -> Response:
    issues = getattr(error, "issues", None)
    status = http_status(error.code)
    if status >= 500:
        log.warning("request failed: %s (%s)", error.message, error.code.value)
    return problem_response(status, error.code, error.message, errors=issues)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = _HTTP_CODES.get(status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID_REQUEST)
    headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else None
    detail = _too_large_detail(error) if status == 413 else error.description
    return problem_response(status, code, detail, headers=headers)


def _too_large_detail(error: HTTPException) -> str:
    """Werkzeug raises the same bare 413 for three limits; the function that raised it says which one it was."""
    raised_in = _innermost_function(error)
    if raised_in == "next_event":          # MultipartDecoder counting parts
        return f"the form has more than {request.max_form_parts} parts"
    if raised_in in ("receive_data", "parse"):     # a text field over the in-memory limit
        return f"a form field other than a file is larger than {request.max_form_memory_size} bytes"
    services = current_app.extensions.get("face3d")
    limit = services.settings.max_upload_bytes if services else current_app.config.get("MAX_CONTENT_LENGTH")
    return f"the upload is larger than the limit of {limit} bytes"


def _innermost_function(error: BaseException) -> str | None:
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    return trace.tb_frame.f_code.co_name if trace is not None else None


def _database_error(error: Exception) -> Response:
    """An unreachable or overloaded database is an outage (503 + Retry-After), not a bug (500); a value the database
    refuses (DataError: out of range, bad encoding) is the client's (422), and a clash with a unique row a 409."""
    outage = isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)) or (
        isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated)
    if isinstance(error, sa_exc.DataError) and not outage:
        log.info("database refused a value: %s", str(error).splitlines()[0][:300])
        return problem_response(422, ErrorCode.VALIDATION_FAILED, "a value of the request is not valid for storage")
    if isinstance(error, sa_exc.IntegrityError):
        log.info("database constraint: %s", str(error).splitlines()[0][:300])
        return problem_response(409, ErrorCode.CONFLICT, "the request conflicts with an existing resource")
    if not outage:
        log.error("database error", exc_info=error)
        return problem_response(500, ErrorCode.INTERNAL, "internal server error")
    log.warning("database unavailable: %s", str(error).splitlines()[0][:300])
    return problem_response(503, ErrorCode.DATABASE_UNAVAILABLE, "the database is unavailable; retry shortly",
                            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})


def _stalled(error: TimeoutError) -> Response:
    """The client stopped sending its body (API_BODY_TIMEOUT_S passed between two reads): its fault, not ours."""
    return problem_response(408, ErrorCode.INVALID_REQUEST, "the request body stopped arriving; send it again")


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(500, ErrorCode.INTERNAL, "internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Face3dError, _face3d_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(sa_exc.SQLAlchemyError, _database_error)
    app.register_error_handler(TimeoutError, _stalled)
    app.register_error_handler(Exception, _unexpected)
