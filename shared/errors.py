"""Error codes (stable strings seen by API clients and in result.json) and the exception types that carry them.

HTTP status mapping lives here too so the API edge maps every error exactly once.
"""
from __future__ import annotations

import enum


class ErrorCode(str, enum.Enum):
    INVALID_REQUEST = "invalid_request"
    VALIDATION_FAILED = "validation_failed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_IMAGE = "invalid_image"
    IMAGE_TOO_LARGE = "image_too_large"
    NO_FACE_DETECTED = "no_face_detected"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    BROKER_UNAVAILABLE = "broker_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    URL_NOT_ALLOWED = "url_not_allowed"
    FETCH_FAILED = "fetch_failed"
    WORKER_LOST = "worker_lost"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_ACTIVE_JOBS = "too_many_active_jobs"
    UNAUTHORIZED = "unauthorized"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.INVALID_IMAGE: 422,
    ErrorCode.IMAGE_TOO_LARGE: 413,
    ErrorCode.NO_FACE_DETECTED: 422,
    ErrorCode.ENGINE_UNAVAILABLE: 503,
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


class Face3dError(Exception):
    """Base error: a stable code plus a human message. Raised anywhere, mapped to HTTP/job errors at the edges."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | None = None, **details: object) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


class InputError(Face3dError):
    """The photo itself is unusable (decode failure, too many pixels, ...). Never retried."""

    code = ErrorCode.INVALID_IMAGE


class NoFaceError(InputError):
    code = ErrorCode.NO_FACE_DETECTED


class EngineUnavailable(Face3dError):
    code = ErrorCode.ENGINE_UNAVAILABLE


class StorageUnavailable(Face3dError):
    code = ErrorCode.STORAGE_UNAVAILABLE


class NotFound(Face3dError):
    code = ErrorCode.NOT_FOUND


class Conflict(Face3dError):
    code = ErrorCode.CONFLICT


class JobCanceled(Face3dError):
    """Raised at a stage boundary when the job was canceled while running."""

    code = ErrorCode.CANCELED
