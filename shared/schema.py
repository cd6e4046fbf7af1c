"""The public JSON contract: what HTTP responses, webhook events, batch result lines and the client all read.

The OpenAPI document is generated from these classes (api/openapi.py), so their names are the component names.
It imports no web framework and no database library: the client imports this module alone (with shared.errors).
Rows are only read through their attributes; their type is named for readers, never imported at run time.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.states import JobState

if TYPE_CHECKING:
    from face3d.shared.batches import BatchProgress
    from face3d.shared.models import Batch
    from face3d.shared.models import Job as JobRow

MAX_ITEM_NAME = 255             # a batch item's name (the jobs.input_name column)
WEBHOOK_SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class Bounds:
    """The accepted range of a numeric option (pydantic's names); the API schema and `face3d reconstruct` read it."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def limits(self) -> dict[str, float]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


# What a reconstruction can write (result.json always): `face3d reconstruct --outputs` and JobOptions.outputs.
OUTPUTS = ("json", "obj", "glb", "vis", "video", "stl", "3mf", "ply", "usdz")
DEFAULT_OUTPUTS = ("json", "obj", "glb", "vis", "video")
UNITS = ("m", "mm")                 # of OBJ, PLY and STL files (glTF and USD are always in metres)

# The engine options' ranges, declared once. Their defaults are the engine's (shared/engines/base.py Options).
OPTION_BOUNDS: dict[str, Bounds] = {
    "max_faces": Bounds(ge=1, le=50),
    "frames": Bounds(ge=1, le=360),
    "sweep_degrees": Bounds(gt=0, le=360),
    "render_size": Bounds(ge=64, le=2048),
    "print_height_mm": Bounds(ge=10, le=1000),
}
TEXTURE_SIZES = (256, 512, 1024, 2048, 4096)


class JobOptions(BaseModel):
    """Reconstruction options; every field is optional and falls back to the engine default."""

    model_config = ConfigDict(extra="forbid")

    engine: str | None = Field(None, description="Engine name (cpu | hrn); default: the server's default engine.")
    max_faces: int | None = Field(None, **OPTION_BOUNDS["max_faces"].limits(),
                                  description="Reconstruct at most this many faces.")
    video: bool | None = Field(None, description="Render turntable.mp4 / turntable.gif.")
    frames: int | None = Field(None, **OPTION_BOUNDS["frames"].limits(), description="Turntable frame count.")
    sweep_degrees: float | None = Field(None, **OPTION_BOUNDS["sweep_degrees"].limits(),
                                        description="Total yaw sweep of the turntable.")
    texture_size: int | None = Field(None, description="UV atlas side: 256, 512, 1024, 2048 or 4096.")
    render_size: int | None = Field(None, **OPTION_BOUNDS["render_size"].limits(),
                                    description="Turntable frame side in pixels.")
    outputs: list[str] | None = Field(None, description=f"What to write: any of {', '.join(OUTPUTS)} (a list or "
                                      f"comma-separated); result.json always. Default: {','.join(DEFAULT_OUTPUTS)}.")
    units: str | None = Field(None, description="Length unit of OBJ, PLY and STL files: m or mm (default: mm for "
                              "closed solids, m for the open shell; 3MF is always mm, GLB and USDZ always m).")
    solid: bool | None = Field(None, description="Close the OBJ and PLY meshes into a solid too (STL and 3MF are "
                               "always closed).")
    print_height_mm: float | None = Field(None, **OPTION_BOUNDS["print_height_mm"].limits(),
                                          description="Height of the closed solids in mm (default: life size).")
    webhook_url: str | None = Field(None, max_length=2000, description="POSTed a signed event when the job "
                                    "finishes (Standard Webhooks); public http(s) hosts only.")

    @field_validator("texture_size")
    @classmethod
    def _power_of_two(cls, value: int | None) -> int | None:
        if value is not None and value not in TEXTURE_SIZES:
            raise ValueError(f"must be one of {', '.join(map(str, TEXTURE_SIZES))}")
        return value

    @field_validator("outputs", mode="before")
    @classmethod
    def _output_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        if isinstance(value, list):
            unknown = sorted({str(name) for name in value} - set(OUTPUTS))
            if unknown or not value:
                raise ValueError(f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(OUTPUTS)}")
            return sorted(set(value) | {"json"}, key=OUTPUTS.index)
        return value

    @field_validator("units")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and value not in UNITS:
            raise ValueError(f"must be one of {', '.join(UNITS)}")
        return value

    def engine_options(self) -> dict[str, Any]:
        """The options the engine receives (engine name excluded; unset fields left to the engine's defaults)."""
        return self.model_dump(exclude={"engine", "webhook_url"}, exclude_none=True)


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


class WebhookEvent(BaseModel):
    """Body POSTed to a job's webhook_url when it finishes (signed with the Standard Webhooks headers)."""

    type: str = Field(description="job.<state>, e.g. job.succeeded")
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


class BatchView(BaseModel):
    id: str
    name: str | None
    state: str = Field(description="queued | running | completed | canceled")
    engine: str
    options: dict[str, Any]
    source: str
    total: int
    counts: dict[str, int] = Field(description="Items per job state.")
    done: int
    progress: float = Field(description="Finished items / total, 0..1.")
    throughput_items_per_s: float | None
    eta_s: float | None
    created_at: datetime
    last_finished_at: datetime | None
    results_url: str


class BatchList(BaseModel):
    items: list[BatchView]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last page.")


# ---------------------------------------------------------------- rows -> views


def artifact_url(base_url: str, job_id: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/v1/jobs/{job_id}/artifacts/{quote(name)}"


def error_of(job: "JobRow") -> dict[str, str] | None:
    return {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None


def job_view(job: "JobRow", base_url: str) -> Job:
    """A job as GET /v1/jobs/{id} and the webhooks show it; ``base_url``: the API's address as clients see it."""
    result = job.result or {}
    return Job(
        id=job.id, state=job.state, engine=job.engine, options=job.options or {},
        input_name=job.input_name, stage=job.stage, progress=job.progress or 0.0, attempts=job.attempts or 0,
        cancel_requested=bool(job.cancel_requested), created_at=job.created_at, updated_at=job.updated_at,
        started_at=job.started_at, finished_at=job.finished_at, error=error_of(job),
        faces=result.get("faces", []), warnings=result.get("warnings", []),
        artifacts=[{**a, "url": artifact_url(base_url, job.id, a["name"])} for a in result.get("artifacts", [])],
        timings_ms=result.get("timings_ms", {}), webhook_url=job.webhook_url,
    )


def webhook_event(job: "JobRow", base_url: str, timestamp: datetime) -> dict[str, Any]:
    """The body of a finished job's webhook, as JSON-ready data (see WebhookEvent)."""
    return {"type": f"job.{job.state.value}", "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
            "data": job_view(job, base_url).model_dump(mode="json")}


def result_line(job: "JobRow", base_url: str) -> dict[str, Any]:
    """One line of a batch's results: what a client needs per photo, nothing it has to look up again."""
    result = job.result or {}
    artifacts = [{"name": a["name"], "url": artifact_url(base_url, job.id, a["name"])}
                 for a in result.get("artifacts", [])]
    return {"name": job.input_name, "job_id": job.id, "state": job.state.value,
            "faces": len(result.get("faces", [])), "artifacts": artifacts, "error": error_of(job),
            "reused_from": result.get("reused_from")}


def failed_line(name: str, code: str, message: str) -> dict[str, Any]:
    """The result line of an item that never reached the server (unreadable, refused before upload)."""
    return {"name": name, "job_id": None, "state": JobState.FAILED.value, "faces": 0, "artifacts": [],
            "error": {"code": code, "message": message}, "reused_from": None}


def batch_view(batch: "Batch", progress: "BatchProgress", base_url: str) -> BatchView:
    return BatchView(
        id=batch.id, name=batch.name, state=progress.state, engine=batch.engine, options=batch.options,
        source=batch.source, total=progress.total, counts=progress.counts, done=progress.done,
        progress=round(progress.done / progress.total, 4) if progress.total else 0.0,
        throughput_items_per_s=None if progress.throughput is None else round(progress.throughput, 3),
        eta_s=None if progress.eta_s is None else round(progress.eta_s, 1), created_at=batch.created_at,
        last_finished_at=progress.last_finished_at, results_url=f"{base_url}/v1/batches/{batch.id}/results",
    )


# ---------------------------------------------------------------- batch item names


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
