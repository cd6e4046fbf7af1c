"""The ``paths`` of the OpenAPI document: one entry per route and method the Flask app serves.

Protected operations (everything but health and the document itself) get the 401 / 429 / 503 problems and the
RateLimit-* headers on success, from one place (`_operation`), so the document says what the auth layer does.
"""
from __future__ import annotations

from typing import Any

from face3d.api.paging import DEFAULT_LIMIT, MAX_BATCHES_PAGE, MAX_JOBS_PAGE

MIN_THUMB, MAX_THUMB = 16, 512      # GET /v1/jobs/{id}/input?max_side=
from face3d.shared.states import JobState

REF = "#/components/schemas/{model}"
PROBLEM = "application/problem+json"
NDJSON = "application/x-ndjson"
BEARER = "bearerAuth"

_INT = {"type": "integer"}
_STR = {"type": "string"}
HEADERS: dict[str, Any] = {
    "Location": {"description": "Path of the created or named resource.", "schema": _STR},
    "Idempotent-Replayed": {"description": "`true` when this answer replays an earlier request with the same "
                                           "Idempotency-Key (no new job was made).", "schema": _STR},
    "Preference-Applied": {"description": "`wait=N` when a `Prefer: wait=N` was honoured.", "schema": _STR},
    "Link": {"description": '`<url>; rel="next"`: the next page.', "schema": _STR},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": _INT},
    "RateLimit-Limit": {"description": "Requests allowed per window for this key and kind (read, submit, or "
                                       "batch item upload).", "schema": _INT},
    "RateLimit-Remaining": {"description": "Requests left in the current window.", "schema": _INT},
    "RateLimit-Reset": {"description": "Seconds until the window resets.", "schema": _INT},
    "WWW-Authenticate": {"description": '`Bearer realm="face3d"` (with `error="invalid_token"` for a bad key).',
                         "schema": _STR},
}
_RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
_PROBLEMS: dict[int, tuple[str, tuple[str, ...]]] = {
    400: ("Malformed request (code invalid_request)", ()),
    401: ("Missing, invalid or revoked API key (code unauthorized)", ("WWW-Authenticate",)),
    404: ("No such resource, or one of another API key (code not_found)", ()),
    409: ("Conflict with the resource's state or an Idempotency-Key (code conflict)", ()),
    413: ("Too large: the upload (payload_too_large) or the image's pixel count (image_too_large)", ()),
    415: ("Not a supported image or archive, or an empty file (code unsupported_media_type)", ()),
    422: ("Well-formed but invalid fields (validation_failed, with `errors`: also a control character such as NUL "
          "in any path parameter, query argument, form field or JSON string) or URL refused (url_not_allowed)", ()),
    429: ("Rate limit (rate_limited) or active-job cap (too_many_active_jobs) reached",
          ("Retry-After", *_RATE_HEADERS)),
    502: ("image_url could not be fetched (code fetch_failed)", ()),
    503: ("Database, broker or storage unavailable; retry later", ("Retry-After",)),
}
_PROTECTED_PROBLEMS = (401, 422, 429, 503)
# Not from the app: gunicorn (and a proxy in front) refuse a request line over 4,094 bytes before it runs.
_URI_TOO_LONG = {"description": "Request line too long (answered by the HTTP server in front of the app)"}
_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_ARTIFACT_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,120}$"}
_CURSOR = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "maxLength": 1024}
_STATE_NAMES = "|".join(state.value for state in JobState)
_STATE_LIST = {"type": "string", "pattern": f"^(terminal|( *({_STATE_NAMES})? *,?)*)$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _json(model: str, description: str, *headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(model)}}}
    if headers:
        response["headers"] = _header_refs(*headers)
    return response


def _problem(status: int) -> dict[str, Any]:
    description, headers = _PROBLEMS[status]
    response: dict[str, Any] = {"description": description, "content": {PROBLEM: {"schema": _ref("Problem")}}}
    if headers:
        response["headers"] = _header_refs(*headers)
    return response


def _operation(op_id: str, summary: str, tag: str, responses: dict[str, Any], *, problems: tuple[int, ...] = (),
               parameters: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
               public: bool = False, description: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    if public:
        operation["security"] = []
    else:
        problems = (*problems, *_PROTECTED_PROBLEMS)
        for status, response in responses.items():
            if int(status) < 400:
                response.setdefault("headers", {}).update(_header_refs(*_RATE_HEADERS))
    operation["responses"] = {**responses, **{str(status): _problem(status) for status in sorted(set(problems))},
                              "414": _URI_TOO_LONG}
    return operation


def _path_param(name: str, description: str, schema: dict[str, Any] = _ID) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _body(content: dict[str, str]) -> dict[str, Any]:
    """A required request body from {media type: component schema name}."""
    return {"required": True, "content": {media: {"schema": _ref(model)} for media, model in content.items()}}


_PREFER = {"name": "Prefer", "in": "header", "required": False, "schema": _STR,
           "description": "`wait=N` (N <= 60): hold the answer until the job finishes or N seconds pass. Each API "
                          "process lets MAX_CONCURRENT_WAITS requests wait at once; over that, the answer comes at "
                          "once without Preference-Applied."}
_WAIT_FOR = {"name": "wait_for", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["mesh", "vis", "video"]},
             "description": "With `Prefer: wait=N`: answer as soon as this milestone's files are stored (mesh: the "
                            "OBJ/MTL/PNG/GLB files and result.json) instead of when the job finishes; the job's "
                            "`milestones` then names it. `succeeded` still means every file is stored."}
_IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                               "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
                    "description": "Replaying a key with the same request returns the same job (200/202 with "
                                   "Idempotent-Replayed: true); with a different request: 409."}
_JOB_ID = _path_param("job_id", "Job id")
_BATCH_ID = _path_param("batch_id", "Batch id")


def _or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter the API reads as absent when it is sent empty (``?limit=``)."""
    return {"anyOf": [schema, {"const": ""}]}


def _page_parameters(max_limit: int) -> list[dict[str, Any]]:
    return [
        {"name": "limit", "in": "query", "description": "Page size (empty: 50).",
         "schema": _or_empty({"type": "integer", "minimum": 1, "maximum": max_limit, "default": DEFAULT_LIMIT})},
        {"name": "cursor", "in": "query", "schema": _CURSOR, "description": "next_cursor of the previous page"}]


def paths() -> dict[str, Any]:
    return {**_job_paths(), **_download_paths(), **_batch_paths(), **_public_paths()}


def _job_paths() -> dict[str, Any]:
    return {
        "/v1/jobs": {"post": _submit_job(), "get": _list_jobs()},
        "/v1/jobs/{job_id}": {
            "get": _operation("getJob", "Get a job", "jobs", {
                "200": _json("Job", "The job", "Preference-Applied")}, problems=(400, 404),
                parameters=[_JOB_ID, _PREFER, _WAIT_FOR]),
            "delete": _operation("deleteJob", "Delete a job and its files", "jobs",
                                 {"204": {"description": "Deleted"}}, problems=(404, 409), parameters=[_JOB_ID],
                                 description="A queued job is canceled first; a running one answers 409 (cancel it, "
                                             "then retry)."),
        },
        "/v1/jobs/{job_id}/cancel": {"post": _operation(
            "cancelJob", "Cancel a job", "jobs", {"202": _json("Job", "Canceled, or cancel requested while it runs")},
            problems=(404, 409), parameters=[_JOB_ID])},
        "/v1/jobs/{job_id}/retry": {"post": _operation(
            "retryJob", "Retry a failed job", "jobs", {
                "202": _json("Job", "The new job (queued), with retry_of = the failed one", "Location",
                             "Idempotent-Replayed", "Preference-Applied"),
                "200": _json("Job", "Finished within the Prefer wait, or an idempotent replay", "Location",
                             "Idempotent-Replayed", "Preference-Applied")},
            problems=(404, 409), parameters=[_JOB_ID, _PREFER, _IDEMPOTENCY_KEY],
            description="Submits the failed job's stored input again as a new job with the same engine, options "
                        "and webhook; the failed job stays as it is. 409: the job is not failed, or its input is "
                        "no longer stored.")},
        "/v1/jobs/{job_id}/artifacts/{name}": {"get": _operation(
            "getArtifact", "Download a result file", "jobs", {
                "200": {"description": "The file (local storage), with its own media type, e.g. "
                                       "model/gltf-binary", "content": {"*/*": {}}},
                "302": {"description": "Redirect to a presigned object-storage URL",
                        "headers": _header_refs("Location")}},
            problems=(404,), parameters=[_JOB_ID, _path_param("name", "Artifact name, e.g. face_0.glb",
                                                              _ARTIFACT_NAME)])},
        "/v1/jobs/{job_id}/webhook-deliveries": {"get": _operation(
            "listWebhookDeliveries", "Every delivery attempt of the job's webhook, oldest first", "jobs",
            {"200": _json("WebhookDeliveryList", "Delivery attempts")}, problems=(404,), parameters=[_JOB_ID])},
    }


def _download_paths() -> dict[str, Any]:
    zip_file = {"description": "A zip streamed as it is written (no Content-Length); each entry is named with the "
                               "photo's stem, e.g. `obama_face0.glb`",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}
    return {
        "/v1/jobs/{job_id}/archive": {"get": _operation(
            "getJobArchive", "Download every file of a job as one zip", "jobs", {"200": zip_file},
            problems=(404, 409), parameters=[_JOB_ID],
            description="409: the job has no stored files (yet); while it runs, only the files already stored.")},
        "/v1/jobs/{job_id}/input": {"get": _operation(
            "getJobInput", "Download the job's source photo", "jobs", {
                "200": {"description": "The uploaded photo, with its media type (with max_side: a JPEG)",
                        "content": {"image/*": {}}}},
            problems=(404, 422), parameters=[_JOB_ID, {
                "name": "max_side", "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": MIN_THUMB, "maximum": MAX_THUMB},
                "description": "A small upright JPEG thumbnail at most this many pixels on its longer side."}])},
    }


def _submit_job() -> dict[str, Any]:
    return _operation(
        "submitJob", "Submit a photo (upload or URL)", "jobs", {
            "202": _json("Job", "Accepted (queued or still running)", "Location", "Idempotent-Replayed",
                         "Preference-Applied"),
            "200": _json("Job", "Finished within the Prefer wait, or an idempotent replay of a finished job",
                         "Location", "Idempotent-Replayed", "Preference-Applied")},
        problems=(400, 409, 413, 415, 422, 502),
        parameters=[_PREFER, _IDEMPOTENCY_KEY],
        body=_body({"multipart/form-data": "SubmitForm", "application/json": "UrlSubmission"}),
        description="The image is recognised by its bytes; its header is read at once, so a photo over MAX_PIXELS "
                    "is refused here (413 image_too_large) before anything is stored or queued.")


def _list_jobs() -> dict[str, Any]:
    return _operation(
        "listJobs", "List jobs, newest first", "jobs", {"200": _json("JobList", "A page of jobs", "Link")},
        problems=(400, 422), parameters=[
            {"name": "state", "in": "query", "description": "Only jobs in this state (empty: any state).",
             "schema": _or_empty({"type": "string", "enum": [s.value for s in JobState]})},
            *_page_parameters(max_limit=MAX_JOBS_PAGE)])


def _batch_paths() -> dict[str, Any]:
    batch = _json("BatchView", "The batch and its progress", "Location")
    return {
        "/v1/batches": {"get": _list_batches(), "post": _operation(
            "createBatch", "Create a batch", "batches", {"201": _json("BatchView", "Created", "Location")},
            problems=(400, 413, 415, 422),
            body=_body({"application/json": "BatchCreate", "multipart/form-data": "BatchArchiveForm"}),
            description="JSON: `items` (storage keys under uploads/ or s3:// URLs), or `s3_prefix` (every object "
                        "under it), or neither (an empty batch filled with POST .../items). multipart: a zip "
                        "`archive`, each file one item. Answers at once with the batch `expanding`: a worker turns "
                        "the source into items (`total` grows); an invalid reference fails its own item. A zip over "
                        "MAX_ARCHIVE_ENTRIES or MAX_ARCHIVE_UNCOMPRESSED_BYTES: 413 `archive_too_large`; overlapping "
                        "entries: 422 `archive_invalid`.")},
        "/v1/batches/{batch_id}": {"get": _operation(
            "getBatch", "Get a batch", "batches", {"200": batch}, problems=(404,), parameters=[_BATCH_ID])},
        "/v1/batches/{batch_id}/cancel": {"post": _operation(
            "cancelBatch", "Cancel every unfinished item", "batches",
            {"202": _json("BatchView", "Canceled", "Location")}, problems=(404,), parameters=[_BATCH_ID])},
        "/v1/batches/{batch_id}/results": {"get": _batch_results()},
        "/v1/batches/{batch_id}/items": {"post": _operation(
            "addBatchItem", "Add one item to a batch", "batches", {
                "201": _json("BatchItemAdded", "Added"),
                "200": _json("BatchItemAdded", "An item of that name was already there (safe retry)")},
            problems=(400, 404, 409, 413, 415, 422, 429), parameters=[_BATCH_ID],
            body=_body({"multipart/form-data": "BatchItemForm", "application/json": "BatchItemIn"}))},
    }


def _list_batches() -> dict[str, Any]:
    return _operation(
        "listBatches", "List batches, newest first", "batches",
        {"200": _json("BatchList", "A page of batches", "Link")},
        problems=(400, 422), parameters=_page_parameters(max_limit=MAX_BATCHES_PAGE))


def _batch_results() -> dict[str, Any]:
    state = {"name": "state", "in": "query", "required": False, "schema": _STATE_LIST,
             "description": "`terminal`, or a comma list of job states: only those items."}
    lines = {"description": "JSON Lines, one BatchResultLine per item in submission order, streamed",
             "content": {NDJSON: {"schema": {"type": "string", "description": "Lines of BatchResultLine"},
                                  "x-itemSchema": _ref("BatchResultLine")}}}
    return _operation("getBatchResults", "Stream the per-item results", "batches", {"200": lines},
                      problems=(404, 422), parameters=[_BATCH_ID, state])


def _public_paths() -> dict[str, Any]:
    return {
        "/healthz": {"get": _operation("healthz", "Liveness", "health", {"200": _json("Health", "Alive")},
                                       public=True)},
        "/readyz": {"get": _operation("readyz", "Readiness of database, broker and storage", "health", {
            "200": _json("Readiness", "Ready"), "503": _json("Readiness", "A dependency is down")}, public=True)},
        "/v1/limits": {"get": _operation("getLimits", "What the server refuses (upload size, pixels)", "health",
                                         {"200": _json("Limits", "The limits")}, public=True)},
        "/v1/openapi.json": {"get": _operation("openapi", "This document", "health", {
            "200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {
                "schema": {"type": "object"}}}}}, public=True)},
    }
