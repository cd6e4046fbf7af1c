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
| BATCH_CHUNK_SIZE      | batch_chunk_size      | 500                                       | Batch items inserted (one executemany) and queued per chunk. |
| BATCH_S3_BUCKETS      | batch_s3_buckets      | S3_BUCKET                                 | Comma-separated buckets `s3://` batch sources may read (`*`: any the credentials reach). |
| MAX_ARCHIVE_BYTES     | max_archive_bytes     | 2147483648 (2 GiB)                        | Largest zip accepted by POST /v1/batches (spooled to disk, read entry by entry). |
| HEARTBEAT_INTERVAL_S  | heartbeat_interval_s  | 5                                         | How often a worker stamps heartbeat_at on the job it runs. |
| HEARTBEAT_TIMEOUT_S   | heartbeat_timeout_s   | 30                                        | A running job whose heartbeat is older is taken as lost (requeued, or failed `worker_lost`). |
| QUEUED_RESEND_AFTER_S | queued_resend_after_s | 300                                       | The sweeper resends the message of a job queued longer than this (lost broker messages). |
| SWEEPER_INTERVAL_S    | sweeper_interval_s    | 10                                        | Seconds between two sweeps of `face3d sweeper` (also run by `face3d serve`). |
| IMAGE_URL_ALLOW_PRIVATE | image_url_allow_private | 0                                     | 1: `image_url` may point at private/loopback addresses (tests, labs only). |
| IMAGE_URL_ALLOW_NETWORKS | image_url_allow_networks | (none)                              | Comma-separated CIDRs `image_url` may reach even though private, e.g. `10.1.0.0/16`. |
| IMAGE_URL_TIMEOUT_S   | image_url_timeout_s   | 10                                        | Total time allowed to fetch an `image_url` (all redirects included). |
| IMAGE_URL_MAX_REDIRECTS | image_url_max_redirects | 3                                     | Redirects followed for an `image_url`; each hop is checked again. |
| AUTH_MODE             | auth_mode             | off                                       | `on`: every /v1 request needs `Authorization: Bearer <key>` (keys from `face3d keys create`); `off`: open, logged loudly. |
| FACE3D_ENV            | environment           | development                               | `production` refuses to start unless AUTH_MODE=on and at least one active key exists. |
| RATE_LIMIT_SUBMIT     | rate_limit_submit     | 30/minute                                 | Per key: POST/DELETE requests (submits, cancels, deletes) per window, `N/second|minute|hour`; `off` disables. |
| RATE_LIMIT_READ       | rate_limit_read       | 600/minute                                | Per key: GET requests per window, same format. |
| RATE_LIMIT_BATCH_ITEMS | rate_limit_batch_items | 600/minute                              | Per key: item uploads to a batch (POST /v1/batches/{id}/items), their own bucket instead of RATE_LIMIT_SUBMIT's; same format. |
| MAX_ACTIVE_JOBS_PER_KEY | max_active_jobs_per_key | 100                                     | Queued + running jobs one key may have (batch items not counted); more submits get 429 `too_many_active_jobs`. 0: no cap. |
| RATE_LIMIT_REDIS_URL  | rate_limit_redis_url  | the broker's Redis                        | Redis for the rate-limit counters; without one, counters live in the API process. |
| WEBHOOK_SECRET        | webhook_secret        | (none)                                    | `whsec_<base64>` signing secret for webhooks while AUTH_MODE=off (with auth on, each key has its own). |
| WEBHOOK_ALLOW_PRIVATE | webhook_allow_private | 0                                         | 1: webhook URLs may point at private/loopback addresses (tests, labs). |
| WEBHOOK_MAX_ATTEMPTS  | webhook_max_attempts  | 6                                         | Delivery attempts of one webhook before giving up. |
| WEBHOOK_BACKOFF_S     | webhook_backoff_s     | 5                                         | Delay before the 2nd attempt; doubles for each further attempt. |
| WEBHOOK_TIMEOUT_S     | webhook_timeout_s     | 5                                         | Time limit of one delivery POST. |
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from face3d.shared.errors import ErrorCode, Face3dError

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
    batch_chunk_size: int = 500
    batch_s3_buckets: tuple[str, ...] = ()
    max_archive_bytes: int = 2 * 1024 ** 3
    heartbeat_interval_s: float = 5.0
    heartbeat_timeout_s: float = 30.0
    queued_resend_after_s: float = 300.0
    sweeper_interval_s: float = 10.0
    image_url_allow_private: bool = False
    image_url_allow_networks: tuple[str, ...] = ()
    image_url_timeout_s: float = 10.0
    image_url_max_redirects: int = 3
    auth_mode: str = "off"
    environment: str = "development"
    rate_limit_submit: tuple[int, int] | None = (30, 60)
    rate_limit_read: tuple[int, int] | None = (600, 60)
    rate_limit_batch_items: tuple[int, int] | None = (600, 60)
    max_active_jobs_per_key: int = 100
    rate_limit_redis_url: str | None = None
    webhook_secret: str | None = None
    webhook_allow_private: bool = False
    webhook_max_attempts: int = 6
    webhook_backoff_s: float = 5.0
    webhook_timeout_s: float = 5.0

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url == EMBEDDED_BROKER


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
        "batch_chunk_size": _read(env, "BATCH_CHUNK_SIZE", int, 500),
        "batch_s3_buckets": _split(env.get("BATCH_S3_BUCKETS") or env.get("S3_BUCKET") or "face3d"),
        "max_archive_bytes": _read(env, "MAX_ARCHIVE_BYTES", int, 2 * 1024 ** 3),
        "heartbeat_interval_s": _read(env, "HEARTBEAT_INTERVAL_S", float, 5.0),
        "heartbeat_timeout_s": _read(env, "HEARTBEAT_TIMEOUT_S", float, 30.0),
        "queued_resend_after_s": _read(env, "QUEUED_RESEND_AFTER_S", float, 300.0),
        "sweeper_interval_s": _read(env, "SWEEPER_INTERVAL_S", float, 10.0),
        "image_url_allow_private": _flag(env, "IMAGE_URL_ALLOW_PRIVATE"),
        "image_url_allow_networks": _split(env.get("IMAGE_URL_ALLOW_NETWORKS", "")),
        "image_url_timeout_s": _read(env, "IMAGE_URL_TIMEOUT_S", float, 10.0),
        "image_url_max_redirects": _read(env, "IMAGE_URL_MAX_REDIRECTS", int, 3),
        "auth_mode": (env.get("AUTH_MODE") or "off").strip().lower(),
        "environment": (env.get("FACE3D_ENV") or "development").strip().lower(),
        "rate_limit_submit": _rate(env, "RATE_LIMIT_SUBMIT", (30, 60)),
        "rate_limit_read": _rate(env, "RATE_LIMIT_READ", (600, 60)),
        "rate_limit_batch_items": _rate(env, "RATE_LIMIT_BATCH_ITEMS", (600, 60)),
        "max_active_jobs_per_key": _read(env, "MAX_ACTIVE_JOBS_PER_KEY", int, 100),
        "rate_limit_redis_url": env.get("RATE_LIMIT_REDIS_URL") or None,
        "webhook_secret": env.get("WEBHOOK_SECRET") or None,
        "webhook_allow_private": _flag(env, "WEBHOOK_ALLOW_PRIVATE"),
        "webhook_max_attempts": _read(env, "WEBHOOK_MAX_ATTEMPTS", int, 6),
        "webhook_backoff_s": _read(env, "WEBHOOK_BACKOFF_S", float, 5.0),
        "webhook_timeout_s": _read(env, "WEBHOOK_TIMEOUT_S", float, 5.0),
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


_RATE_WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def _rate(env: Mapping[str, str], name: str, default: tuple[int, int]) -> tuple[int, int] | None:
    """`N/minute` (or second, hour, day) -> (N, window seconds); `off` or `0` -> None (no limit)."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("off", "0", "none"):
        return None
    count, _, unit = raw.partition("/")
    if not count.strip().isdigit() or unit.strip() not in _RATE_WINDOWS or int(count) <= 0:
        raise ConfigError(f"{name}={raw!r} must look like 30/minute (units: {', '.join(_RATE_WINDOWS)}) or off")
    return int(count), _RATE_WINDOWS[unit.strip()]


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} must be 1 or 0")


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _validate(settings: Settings) -> None:
    if settings.storage_backend not in ("local", "s3"):
        raise ConfigError(f"STORAGE_BACKEND must be 'local' or 's3', not {settings.storage_backend!r}")
    positive = ("presign_expiry_s", "max_upload_bytes", "max_pixels", "job_time_limit_s", "job_max_attempts",
                "worker_concurrency", "broker_connect_timeout_s", "heartbeat_interval_s", "queued_resend_after_s",
                "batch_chunk_size", "max_archive_bytes",
                "sweeper_interval_s", "image_url_timeout_s")
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name.upper()} must be positive")
    if settings.auth_mode not in ("off", "on"):
        raise ConfigError(f"AUTH_MODE must be 'off' or 'on', not {settings.auth_mode!r}")
    if settings.webhook_max_attempts <= 0 or settings.webhook_timeout_s <= 0 or settings.webhook_backoff_s < 0:
        raise ConfigError("WEBHOOK_MAX_ATTEMPTS and WEBHOOK_TIMEOUT_S must be positive, WEBHOOK_BACKOFF_S >= 0")
    if settings.visibility_timeout_s <= settings.job_time_limit_s:
        # Otherwise the broker hands a still-running job to a second worker.
        raise ConfigError("VISIBILITY_TIMEOUT_S must be larger than JOB_TIME_LIMIT_S")
    if settings.heartbeat_timeout_s < 2 * settings.heartbeat_interval_s:
        # One late beat must not make a live worker look lost.
        raise ConfigError("HEARTBEAT_TIMEOUT_S must be at least twice HEARTBEAT_INTERVAL_S")
    if settings.image_url_max_redirects < 0:
        raise ConfigError("IMAGE_URL_MAX_REDIRECTS must not be negative")
    for network in settings.image_url_allow_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"IMAGE_URL_ALLOW_NETWORKS: {network!r} is not a CIDR like 10.1.0.0/16") from None
