"""The collection routes' arguments and links, in one place for GET /v1/jobs and GET /v1/batches (and the state
filter of a batch's results): ``limit``, ``cursor``, ``state``, the Link header of the next page, and the base URL
links are made from."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, request

from face3d.shared.db import MAX_PAGE
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.states import TERMINAL_STATES, JobState, parse_state

DEFAULT_LIMIT = 50
MAX_JOBS_PAGE = 100             # GET /v1/jobs
MAX_BATCHES_PAGE = MAX_PAGE     # GET /v1/batches: as many as one keyset page holds


def limit_arg(max_limit: int) -> int:
    value = request.args.get("limit")
    if not value:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or not 1 <= int(value) <= max_limit:
        raise Face3dError(f"limit must be an integer from 1 to {max_limit}", ErrorCode.VALIDATION_FAILED)
    return int(value)


def cursor_arg() -> str | None:
    return request.args.get("cursor") or None


def state_arg() -> JobState | None:
    """``?state=`` naming one job state."""
    value = request.args.get("state")
    if not value:
        return None
    try:
        return parse_state(value)
    except ValueError as exc:
        raise Face3dError(f"state must be one of {exc}", ErrorCode.VALIDATION_FAILED) from None


def states_arg() -> list[JobState] | None:
    """``?state=terminal``, or a comma list of job states."""
    value = request.args.get("state")
    if not value:
        return None
    if value == "terminal":
        return list(TERMINAL_STATES)
    try:
        return [parse_state(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise Face3dError(f"state must be a comma list of terminal, {exc}", ErrorCode.VALIDATION_FAILED) from None


def page_response(body: str, link: str, limit: int, next_cursor: str | None, **query: Any) -> Response:
    """A page as JSON, with ``Link: <link?limit&cursor&query>; rel="next"`` unless it is the last page."""
    response = Response(body, mimetype="application/json")
    if next_cursor:
        arguments = urlencode({"limit": limit, "cursor": next_cursor, **query})
        response.headers["Link"] = f'<{link}?{arguments}>; rel="next"'
    return response


def base_url(public_base_url: str | None) -> str:
    """The API's address as clients see it: PUBLIC_BASE_URL, else the request's."""
    return (public_base_url or request.host_url).rstrip("/")
