"""Error codes (stable strings seen by API clients and in result.json) and the exception types that carry them.

The HTTP status of each code is the API's business: api/problems.py maps every error exactly once, at the edge.
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


class Face3dError(Exception):
    """Base error: a stable code plus a human message. Raised anywhere, mapped to HTTP/job errors at the edges."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | None = None, **details: object) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details


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
