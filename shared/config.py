"""Every setting of the service, read from the environment, with defaults that run everything on one machine.

| Variable              | Setting               | Default                                   | Meaning |
|-----------------------|-----------------------|-------------------------------------------|---------|
| FACE3D_DATA_DIR       | data_dir              | ./data (made absolute)                    | Root for the embedded defaults (SQLite file, local storage, embedded broker). |
| DATABASE_URL          | database_url          | sqlite:///<data_dir>/face3d.db            | SQLAlchemy URL; `postgresql+psycopg://user@host/db` in production. |
| BROKER_URL            | broker_url            | embedded                                  | Celery broker URL (`redis://host:6379/0`); `embedded` starts/attaches a local Valkey server under data_dir/broker. |
| STORAGE_BACKEND       | storage_backend       | local                                     | `local` (files under storage_dir) or `s3` (any S3-compatible service). |
| STORAGE_DIR           | storage_dir           | <data_dir>/storage                        | Root folder of the local storage backend. |
| S3_BUCKET             | s3_bucket             | face3d                                    | Bucket for inputs and artifacts (must exist). |
| S3_PREFIX             | s3_prefix             | (empty)                                   | Key prefix inside the bucket, e.g. `prod/`. |
| S3_ENDPOINT_URL       | s3_endpoint_url       | (AWS)                                     | Endpoint of an S3-compatible service (MinIO, moto, ...). |
| S3_PUBLIC_ENDPOINT_URL | s3_public_endpoint_url | S3_ENDPOINT_URL                         | Endpoint put in presigned download URLs, when clients reach storage at another address than the workers (e.g. `http://localhost:9000` for compose's `minio:9000`). |
| S3_REGION             | s3_region             | AWS_DEFAULT_REGION or us-east-1           | Region used for signing. Credentials come from the usual AWS variables. |
| PRESIGN_EXPIRY_S      | presign_expiry_s      | 3600                                      | Lifetime of presigned download URLs. |
| MAX_UPLOAD_BYTES      | max_upload_bytes      | 20971520 (20 MiB)                         | Largest accepted upload. |
| MAX_PIXELS            | max_pixels            | 50000000                                  | Largest decoded image (decompression-bomb guard). |
| DEFAULT_ENGINE        | default_engine        | cpu                                       | Engine used when a request names none (`cpu` or `hrn`). |
| GPU_ENGINES           | gpu_engines           | hrn                                       | Comma-separated engines whose jobs go to the `gpu` queue; others go to `cpu`. |
| JOB_TIME_LIMIT_S      | job_time_limit_s      | 600                                       | Hard time limit of one job; the job fails with `timeout` shortly before it. |
| VISIBILITY_TIMEOUT_S  | visibility_timeout_s  | max(3600, 2 * JOB_TIME_LIMIT_S)           | Broker redelivers an unacknowledged job after this; must exceed the time limit. |
| JOB_MAX_ATTEMPTS      | job_max_attempts      | 3                                         | Deliveries of a job (worker crashes included) before it fails with `worker_lost`. |
| BROKER_CONNECT_TIMEOUT_S | broker_connect_timeout_s | 3                                   | How long a submit waits for the broker before answering `broker_unavailable`. |
| WORKER_CONCURRENCY    | worker_concurrency    | 1                                         | Worker processes per `face3d worker` (one engine copy each). |
| PUBLIC_BASE_URL       | public_base_url       | (none)                                    | Absolute URL of the API as clients see it, for links in responses. |
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from shared.errors import ErrorCode, Face3dError

EMBEDDED_BROKER = "embedded"


class ConfigError(Face3dError):
    """A setting has a value the service cannot use."""

    code = ErrorCode.INVALID_REQUEST


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str = EMBEDDED_BROKER
    storage_backend: str = "local"
    storage_dir: Path = Path("data/storage")
    s3_bucket: str = "face3d"
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    presign_expiry_s: int = 3600
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    default_engine: str = "cpu"
    gpu_engines: tuple[str, ...] = ("hrn",)
    job_time_limit_s: int = 600
    visibility_timeout_s: int = 3600
    job_max_attempts: int = 3
    broker_connect_timeout_s: float = 3.0
    worker_concurrency: int = 1
    public_base_url: str | None = None

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url == EMBEDDED_BROKER

    def celery_queue_for(self, engine: str) -> str:
        return "gpu" if engine in self.gpu_engines else "cpu"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from ``env`` (default: os.environ); keyword overrides win over the environment."""
    env = os.environ if env is None else env
    data_dir = Path(overrides.pop("data_dir", None) or env.get("FACE3D_DATA_DIR") or "data").resolve()
    time_limit = _read(env, "JOB_TIME_LIMIT_S", int, 600)
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'face3d.db'}",
        "broker_url": env.get("BROKER_URL") or EMBEDDED_BROKER,
        "storage_backend": (env.get("STORAGE_BACKEND") or "local").lower(),
        "storage_dir": Path(env.get("STORAGE_DIR") or data_dir / "storage").resolve(),
        "s3_bucket": env.get("S3_BUCKET") or "face3d",
        "s3_prefix": env.get("S3_PREFIX", ""),
        "s3_endpoint_url": env.get("S3_ENDPOINT_URL") or None,
        "s3_public_endpoint_url": env.get("S3_PUBLIC_ENDPOINT_URL") or None,
        "s3_region": env.get("S3_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "presign_expiry_s": _read(env, "PRESIGN_EXPIRY_S", int, 3600),
        "max_upload_bytes": _read(env, "MAX_UPLOAD_BYTES", int, 20 * 1024 * 1024),
        "max_pixels": _read(env, "MAX_PIXELS", int, 50_000_000),
        "default_engine": env.get("DEFAULT_ENGINE") or "cpu",
        "gpu_engines": _split(env.get("GPU_ENGINES", "hrn")),
        "job_time_limit_s": time_limit,
        "visibility_timeout_s": _read(env, "VISIBILITY_TIMEOUT_S", int, max(3600, 2 * time_limit)),
        "job_max_attempts": _read(env, "JOB_MAX_ATTEMPTS", int, 3),
        "broker_connect_timeout_s": _read(env, "BROKER_CONNECT_TIMEOUT_S", float, 3.0),
        "worker_concurrency": _read(env, "WORKER_CONCURRENCY", int, 1),
        "public_base_url": env.get("PUBLIC_BASE_URL") or None,
    }
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values.update(overrides)
    settings = Settings(**values)
    _validate(settings)
    return settings


def _read(env: Mapping[str, str], name: str, kind: Callable[[str], Any], default: Any) -> Any:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return kind(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _validate(settings: Settings) -> None:
    if settings.storage_backend not in ("local", "s3"):
        raise ConfigError(f"STORAGE_BACKEND must be 'local' or 's3', not {settings.storage_backend!r}")
    positive = ("presign_expiry_s", "max_upload_bytes", "max_pixels", "job_time_limit_s", "job_max_attempts",
                "worker_concurrency", "broker_connect_timeout_s")
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name.upper()} must be positive")
    if settings.visibility_timeout_s <= settings.job_time_limit_s:
        # Otherwise the broker hands a still-running job to a second worker.
        raise ConfigError("VISIBILITY_TIMEOUT_S must be larger than JOB_TIME_LIMIT_S")
