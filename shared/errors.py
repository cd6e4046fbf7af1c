"""Error codes (stable strings seen by API clients and in result.json), the exception types that carry them, and
the one way to wait between attempts after a transient error (``Backoff``, ``retrying``).

The HTTP status of each code is the API's business: api/problems.py maps every error exactly once, at the edge.
This module is one of the two the client may import (with shared/schema.py), so the client's retries use the same
backoff as the workers' storage retries and the webhook deliveries.
"""
from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")


class ErrorCode(str, enum.Enum):
    INVALID_REQUEST = "invalid_request"
    VALIDATION_FAILED = "validation_failed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    ARCHIVE_TOO_LARGE = "archive_too_large"            # a zip over its entry count or uncompressed total
    ARCHIVE_INVALID = "archive_invalid"                # overlapping or duplicate entries
    ARCHIVE_ENTRY_REFUSED = "archive_entry_refused"    # one entry: ratio, size or lying header
    INVALID_IMAGE = "invalid_image"
    IMAGE_TOO_LARGE = "image_too_large"
    NO_FACE_DETECTED = "no_face_detected"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    ENGINE_ERROR = "engine_error"
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
    SERVER_UNREACHABLE = "server_unreachable"      # the client only: no answer from the server at all
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


class EngineError(Face3dError):
    """The engine loaded but failed on this photo (CUDA out of memory, a renderer error, ...); the message carries
    the cause. Not "no face": that is NoFaceError."""

    code = ErrorCode.ENGINE_ERROR


class StorageUnavailable(Face3dError):
    code = ErrorCode.STORAGE_UNAVAILABLE


class UrlNotAllowed(Face3dError):
    """A URL the service is asked to fetch or call is not an http(s) URL of a public host (SSRF rules)."""

    code = ErrorCode.URL_NOT_ALLOWED


class FetchFailed(Face3dError):
    code = ErrorCode.FETCH_FAILED


class NotFound(Face3dError):
    code = ErrorCode.NOT_FOUND


class Conflict(Face3dError):
    code = ErrorCode.CONFLICT


class JobCanceled(Face3dError):
    """Raised at a stage boundary when the job was canceled while running."""

    code = ErrorCode.CANCELED


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``first_s`` after the first failure, doubling after each further one, at most ``max_s``."""

    first_s: float
    max_s: float = math.inf

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row (1-based)."""
        return min(self.max_s, self.first_s * 2 ** (failures - 1))


def retrying(call: Callable[[], T], *, attempts: int, backoff: Backoff, transient: Callable[[Exception], bool],
             sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, tried up to ``attempts`` times while it fails with an error ``transient`` accepts."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts or not transient(exc):
                raise
            sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")
