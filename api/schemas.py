"""Request and response models of the HTTP API. The OpenAPI document is generated from these same classes."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.states import JobState

TEXTURE_SIZES = (256, 512, 1024, 2048, 4096)


class JobOptions(BaseModel):
    """Reconstruction options; every field is optional and falls back to the engine default."""

    model_config = ConfigDict(extra="forbid")

    engine: str | None = Field(None, description="Engine name (cpu | hrn); default: the server's default engine.")
    max_faces: int | None = Field(None, ge=1, le=50, description="Reconstruct at most this many faces.")
    video: bool | None = Field(None, description="Render turntable.mp4 / turntable.gif.")
    frames: int | None = Field(None, ge=1, le=360, description="Turntable frame count.")
    sweep_degrees: float | None = Field(None, gt=0, le=360, description="Total yaw sweep of the turntable.")
    texture_size: int | None = Field(None, description="UV atlas side: 256, 512, 1024, 2048 or 4096.")
    render_size: int | None = Field(None, ge=64, le=2048, description="Turntable frame side in pixels.")
    webhook_url: str | None = Field(None, max_length=2000, description="POSTed a signed event when the job "
                                    "finishes (Standard Webhooks); public http(s) hosts only.")

    @field_validator("texture_size")
    @classmethod
    def _power_of_two(cls, value: int | None) -> int | None:
        if value is not None and value not in TEXTURE_SIZES:
            raise ValueError(f"must be one of {', '.join(map(str, TEXTURE_SIZES))}")
        return value

    def engine_options(self) -> dict[str, Any]:
        """The options the engine receives (engine name excluded; unset fields left to the engine's defaults)."""
        return self.model_dump(exclude={"engine", "webhook_url"}, exclude_none=True)


def request_fingerprint(image_sha256: str, engine: str, options: dict[str, Any]) -> str:
    """Same image + same engine + same options => same fingerprint (idempotent retries are recognised)."""
    canonical = json.dumps({"engine": engine, "options": options}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{image_sha256}\n{canonical}".encode()).hexdigest()


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable error code (see the ErrorCode list).")
    message: str


class FaceSummary(BaseModel):
    index: int
    bbox: list[float] = Field(description="x0, y0, x1, y1 in photo pixels.")
    score: float
    yaw: float
    pitch: float
    roll: float
    warnings: list[str] = Field(default_factory=list)


class Artifact(BaseModel):
    name: str
    url: str = Field(description="Absolute URL of the file on this API (it may redirect to object storage).")
    size: int | None = None
    content_type: str | None = None


class Job(BaseModel):
    id: str
    state: JobState
    engine: str
    options: dict[str, Any]
    input_name: str | None = None
    stage: str | None = None
    progress: float = 0.0
    attempts: int = 0
    cancel_requested: bool = False
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorInfo | None = None
    faces: list[FaceSummary] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    artifacts: list[Artifact] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    webhook_url: str | None = None


class JobList(BaseModel):
    items: list[Job]
    next_cursor: str | None = None


class WebhookDelivery(BaseModel):
    attempt: int
    msg_id: str = Field(description="The webhook-id header; the same for every attempt of one event.")
    url: str
    status_code: int | None = Field(None, description="The receiver's HTTP status; null when no answer came.")
    error: str | None = None
    started_at: datetime
    finished_at: datetime
    next_attempt_at: datetime | None = Field(None, description="When the next attempt is due, if one is.")


class WebhookDeliveryList(BaseModel):
    items: list[WebhookDelivery]


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


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ok | unavailable")
    checks: dict[str, str] = Field(description="database / broker / storage -> 'ok' or the failure reason.")


def _form_field(extra: dict[str, Any] | None = None) -> Callable[[dict[str, Any]], None]:
    """JSON-schema fixer for an optional multipart field: a form part is either sent (as text or a file) or left
    out; there is no null in multipart/form-data, so the schema is the non-null branch, without a default."""

    def fix(schema: dict[str, Any]) -> None:
        branches = [branch for branch in schema.pop("anyOf", []) if branch.get("type") != "null"]
        schema.update(branches[0] if branches else {})
        schema.pop("default", None)
        schema.update(extra or {})

    return fix


_IMAGE_PART = {"type": "string", "format": "binary", "contentMediaType": "image/*"}


class SubmitForm(BaseModel):
    """multipart/form-data body of POST /v1/jobs (documentation only: the API reads the form directly). Send exactly
    one of ``image`` and ``image_url``; JobOptions fields may also be sent as form fields of their own."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["image"]}, {"required": ["image_url"]}]})

    image: bytes | None = Field(None, json_schema_extra=_form_field(_IMAGE_PART),
                                description="The photo (JPEG, PNG, GIF, WebP, BMP, TIFF).")
    image_url: str | None = Field(None, max_length=2048, json_schema_extra=_form_field(),
                                  description="http(s) URL of the photo, instead of image.")
    options: str | None = Field(None, json_schema_extra=_form_field(),
                                description="JSON object of JobOptions; the fields may also be sent one by one.")


class UrlSubmission(BaseModel):
    """application/json body of POST /v1/jobs that names the photo by URL instead of uploading it (the form field
    ``image_url`` does the same in multipart/form-data). The API fetches it: http(s) only, public addresses only
    (checked after DNS resolution, on every redirect), at most MAX_UPLOAD_BYTES within IMAGE_URL_TIMEOUT_S."""

    model_config = ConfigDict(extra="forbid")

    image_url: str = Field(max_length=2048, description="http(s) URL of the photo.")
    options: JobOptions | None = None


class WebhookEvent(BaseModel):
    """Body POSTed to a job's webhook_url when it finishes (signed with the Standard Webhooks headers)."""

    type: str = Field(description="job.<state>, e.g. job.succeeded")
    timestamp: datetime
    data: Job


class BatchArchiveForm(BaseModel):
    """multipart/form-data body of POST /v1/batches: a zip whose every file is one item (documentation only)."""

    archive: bytes = Field(json_schema_extra={"format": "binary", "contentMediaType": "application/zip"},
                           description="Zip archive of photos, at most MAX_ARCHIVE_BYTES.")
    options: str | None = Field(None, json_schema_extra=_form_field(),
                                description="JSON object of JobOptions, shared by every item.")
    name: str | None = Field(None, max_length=255, json_schema_extra=_form_field())


class BatchItemForm(BaseModel):
    """multipart/form-data body of POST /v1/batches/{batch_id}/items (documentation only)."""

    image: bytes = Field(json_schema_extra=_IMAGE_PART)
    name: str | None = Field(None, json_schema_extra=_form_field(),
                             description="Item name, unique in the batch (default: the file name).")


class BatchItemAdded(BaseModel):
    job_id: str
    name: str | None
    state: JobState
    created: bool = Field(description="False: an item of that name was already in the batch (returned as is).")


class ArtifactLink(BaseModel):
    name: str
    url: str


class BatchResultLine(BaseModel):
    """One line of GET /v1/batches/{batch_id}/results (JSON Lines), one per item in submission order."""

    name: str | None
    job_id: str
    state: JobState
    faces: int = Field(description="Number of faces reconstructed.")
    artifacts: list[ArtifactLink]
    error: ErrorInfo | None
    reused_from: str | None = Field(description="Id of an earlier job with the same input whose result was reused.")
