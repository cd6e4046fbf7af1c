"""The public JSON contract: what HTTP responses, webhook events, batch result lines and the client all read.

The OpenAPI document is generated from these classes (api/openapi.py), so their names are the component names.
It imports no web framework and no database library: the client imports this module alone (with shared.errors).
Rows are only read through their attributes; their type is named for readers, never imported at run time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Any
from pathlib import PurePath
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.mediatypes import SNIFF_BYTES, images_in, sniff_image_type  # noqa: F401 - for the client
from face3d.shared.options import (  # noqa: F401 - re-exported for the client
    DEFAULT_OUTPUTS, OPTIONS, OUTPUTS, TEXTURE_SIZES, UNITS, Bounds, OptionSpec, api_options, chosen, click_options,
    pydantic_field,
)
from face3d.shared.states import BatchState, JobState

if TYPE_CHECKING:
    from face3d.shared.batches import BatchProgress
    from face3d.shared.models import Batch
    from face3d.shared.models import Job as JobRow

MAX_ITEM_NAME = 255             # a batch item's name (the jobs.input_name column)
WEBHOOK_SECRET_PREFIX = "whsec_"
MAX_STEM = 80                   # the photo's stem in saved file names
_UNSAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")
_FACE_PREFIX = re.compile(r"^face_(\d+)")


# The options are declared once, in shared/options.py; re-exported here because the client reads them through the
# public schema (it imports no other shared module).
OPTION_BOUNDS: dict[str, Bounds] = {spec.name: spec.bounds for spec in OPTIONS if spec.bounds is not None}


class _JobOptionsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def engine_options(self) -> dict[str, Any]:
        """The options the engine receives (engine name excluded; unset fields left to the engine's defaults)."""
        return self.model_dump(exclude={"engine", "webhook_url"}, exclude_none=True)


JobOptions = create_model(
    "JobOptions", __base__=_JobOptionsBase, __module__=__name__,
    __doc__="Reconstruction options; every field is optional and falls back to the engine default.",
    **{spec.name: pydantic_field(spec) for spec in api_options()},
)


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
    url: str = Field(description="Absolute URL of the file on this API (it may redirect to object storage). "
                     "While ``ready`` is false it answers 404 (not stored yet).")
    size: int | None = Field(None, description="Bytes; null while not ready.")
    content_type: str | None = None
    download_name: str | None = Field(None, description="The file's name when saved (also in the zip and the "
                                                        "Content-Disposition): the photo's stem first, e.g. "
                                                        "`obama_face0.glb`.")
    ready: bool = Field(True, description="True once the file is stored and downloadable. While the job runs, "
                        "``artifacts`` lists the files stored so far (ready) and the ones still planned (not "
                        "ready); files appear in this order: the mesh files (face_<i>.obj/.mtl/_texture.png/.glb, "
                        "other formats) and result.json, then vis.png, then turntable.mp4, turntable_face<i>.mp4, "
                        "turntable.gif. A succeeded job's artifacts are all ready.")


class Job(BaseModel):
    id: str
    state: JobState
    engine: str
    options: dict[str, Any]
    input_name: str | None = None
    stage: str | None = Field(None, description="The stage running now: load_engine, decode, detect, landmarks, mesh, "
                              "texture, export, store_mesh, vis, render, encode, face_videos, gif, upload; done once succeeded.")
    progress: float = Field(0.0, description="0..1, never decreasing, weighted by each stage's cost (render "
                            "advances with frames done / total); 1.0 only when succeeded.")
    milestones: list[str] = Field(default_factory=list, description="The artifact groups completely stored so "
                                  "far, in order: mesh (the mesh files + result.json), vis, video, done. Wait for "
                                  "the mesh only with GET /v1/jobs/{id}?wait_for=mesh and Prefer: wait=N.")
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
    retry_of: str | None = Field(None, description="The failed job this one retries (POST /v1/jobs/{id}/retry).")


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


class WebhookEvent(BaseModel):
    """Body POSTed to a job's webhook_url when it finishes (signed with the Standard Webhooks headers)."""

    type: str = Field(description="job.<state> once the job finishes, e.g. job.succeeded (the only event sent)")
    timestamp: datetime
    data: Job


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


# Exactly one of key and url (a null one counts as absent), as BatchItemIn._one_source checks.
_KEY_OR_URL = {"oneOf": [{"required": ["key"], "properties": {"key": {"type": "string"}, "url": {"type": "null"}}},
                         {"required": ["url"], "properties": {"url": {"type": "string"}, "key": {"type": "null"}}}]}


class BatchItemIn(BaseModel):
    """One item reference: JSON body of POST /v1/batches/{batch_id}/items, and each of POST /v1/batches' items."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_KEY_OR_URL)

    key: str | None = Field(None, description="A key in the service's storage under uploads/.")
    url: str | None = Field(None, description="s3://bucket/key, read from the configured S3 endpoint.")
    name: str | None = Field(None, max_length=1024, description="Name in the results (default: the key's file name).")

    @model_validator(mode="after")
    def _one_source(self) -> "BatchItemIn":
        if (self.key is None) == (self.url is None):
            raise ValueError("give exactly one of 'key' or 'url'")
        return self


class BatchView(BaseModel):
    id: str
    name: str | None
    state: BatchState = Field(description="expanding (a worker is still turning its source into items: total "
                                          "grows) | queued | running | completed | canceled | failed (its source "
                                          "could not be expanded)")
    engine: str
    options: dict[str, Any]
    source: str
    total: int
    counts: dict[str, int] = Field(description="Items per job state.")
    done: int
    progress: float = Field(description="Finished items / total, 0..1.")
    throughput_items_per_s: float | None
    eta_s: float | None
    expand_error: str | None = Field(None, description="Why expanding the source stopped, if it did.")
    created_at: datetime
    last_finished_at: datetime | None
    results_url: str


class BatchList(BaseModel):
    items: list[BatchView]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last page.")


# ---------------------------------------------------------------- rows -> views


def artifact_url(base_url: str, job_id: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/v1/jobs/{job_id}/artifacts/{quote(name)}"


def download_name(input_name: str | None, name: str, fallback: str = "face3d") -> str:
    """``obama.jpg`` + ``face_0.glb`` -> ``obama_face0.glb``: files of several photos saved side by side never collide.
    Faces keep the 0-based index of vis.png, the JSON and the CLI."""
    stem = _UNSAFE_STEM.sub("_", PurePath(input_name or "").stem).strip("._")[:MAX_STEM] or fallback
    return stem + "_" + _FACE_PREFIX.sub(r"face\1", name, count=1)


def error_of(job: "JobRow") -> dict[str, str] | None:
    return {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None


def job_view(job: "JobRow", base_url: str) -> Job:
    """A job as GET /v1/jobs/{id} and the webhooks show it; ``base_url``: the API's address as clients see it."""
    result = job.result or {}
    return Job(
        id=job.id, state=job.state, engine=job.engine, options=job.options or {},
        input_name=display_name(job.input_name), stage=job.stage, progress=job.progress or 0.0, attempts=job.attempts or 0,
        cancel_requested=bool(job.cancel_requested), created_at=job.created_at, updated_at=job.updated_at,
        started_at=job.started_at, finished_at=job.finished_at, error=error_of(job),
        faces=result.get("faces", []), warnings=result.get("warnings", []), milestones=result.get("milestones", []),
        artifacts=[{**a, "url": artifact_url(base_url, job.id, a["name"]),
                    "download_name": download_name(job.input_name, a["name"], job.id[:8])}
                   for a in result.get("artifacts", [])],
        timings_ms=result.get("timings_ms", {}), webhook_url=job.webhook_url, retry_of=job.retry_of,
    )


def webhook_event(job: "JobRow", base_url: str, timestamp: datetime) -> dict[str, Any]:
    """The body of a finished job's webhook, as JSON-ready data (see WebhookEvent)."""
    return {"type": f"job.{job.state.value}", "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
            "data": job_view(job, base_url).model_dump(mode="json")}


def result_line(job: "JobRow", base_url: str) -> dict[str, Any]:
    """One line of a batch's results: what a client needs per photo, nothing it has to look up again."""
    result = job.result or {}
    artifacts = [{"name": a["name"], "url": artifact_url(base_url, job.id, a["name"])}
                 for a in result.get("artifacts", []) if a.get("ready", True)]
    return {"name": display_name(job.input_name), "job_id": job.id, "state": job.state.value,
            "faces": len(result.get("faces", [])), "artifacts": artifacts, "error": error_of(job),
            "reused_from": result.get("reused_from")}


def failed_line(name: str, code: str, message: str) -> dict[str, Any]:
    """The result line of an item that never reached the server (unreadable, refused before upload)."""
    return {"name": name, "job_id": None, "state": JobState.FAILED.value, "faces": 0, "artifacts": [],
            "error": {"code": code, "message": message}, "reused_from": None}


def batch_view(batch: "Batch", progress: "BatchProgress", base_url: str) -> BatchView:
    return BatchView(
        id=batch.id, name=display_name(batch.name), state=progress.state, engine=batch.engine, options=batch.options,
        source=batch.source, total=progress.total, counts=progress.counts, done=progress.done,
        progress=round(progress.done / progress.total, 4) if progress.total else 0.0,
        throughput_items_per_s=None if progress.throughput is None else round(progress.throughput, 3),
        eta_s=None if progress.eta_s is None else round(progress.eta_s, 1), created_at=batch.created_at,
        last_finished_at=progress.last_finished_at, results_url=f"{base_url}/v1/batches/{batch.id}/results",
        expand_error=batch.expand_error,
    )


# ---------------------------------------------------------------- batch item names


_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def display_name(name: str | None) -> str | None:
    """An item name as responses show it: control, format (bidi overrides, zero-width) and separator characters
    replaced by U+FFFD, so a name can't forge lines or reorder text where it is echoed. The stored name (raw, as
    sent) stays the item's data."""
    if name is None or name.isprintable():
        return name
    return "".join(c if c == " " or unicodedata.category(c) not in _UNPRINTABLE else "\ufffd" for c in name)


def storable_name(name: str) -> str:
    """A name the database can keep as sent, clipped: only NUL (no PostgreSQL text holds it) and unpaired
    surrogates (not UTF-8) are replaced by U+FFFD."""
    if "\x00" in name or any("\ud800" <= c <= "\udfff" for c in name):
        name = "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in name)
    return clip_name(name)


def clip_name(name: str) -> str:
    """An item name that fits the column, cut from the left so the extension stays."""
    return name if len(name) <= MAX_ITEM_NAME else name[-MAX_ITEM_NAME:]


class UniqueNames:
    """Item names unique within one request (the server) or one ingestion (the client): a repeated name gets
    ``~2``, ``~3``... before its extension."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, name: str) -> str:
        candidate, number = clip_name(name), 1
        stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
        while candidate in self.seen:
            number += 1
            candidate = clip_name(f"{stem}~{number}{dot}{suffix}")
        self.seen.add(candidate)
        return candidate


# ---------------------------------------------------------------- webhook signatures (Standard Webhooks)


def secret_key_bytes(secret: str) -> bytes:
    raw = secret[len(WEBHOOK_SECRET_PREFIX):] if secret.startswith(WEBHOOK_SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise Face3dError("a webhook secret must be whsec_ followed by base64", ErrorCode.INVALID_REQUEST) from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
