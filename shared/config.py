"""Every setting of the service, declared once: its environment variable, its default and what it means. The
defaults run everything on one machine (SQLite, local files, an embedded broker under FACE3D_DATA_DIR).

``load_settings()`` reads the environment by looping over the declarations; a default that depends on another
setting (database_url on data_dir, ...) is derived in one place, ``Settings.__post_init__``, so Settings built
directly behave the same. The README's configuration table is checked against ``documented_settings()``.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from face3d.shared.errors import ErrorCode, Face3dError

EMBEDDED_BROKER = "embedded"
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()     # "take the default"
DERIVED: Any = type("Derived", (), {"__repr__": lambda self: "DERIVED"})()  # "computed from other settings"
_RATE_WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class ConfigError(Face3dError):
    """A setting has a value the service cannot use."""

    code = ErrorCode.INVALID_REQUEST


# ---------------------------------------------------------------- how a raw value is read (UNSET: the default)


def text(raw: str) -> Any:
    return raw or UNSET


def lowercase(raw: str) -> Any:
    return raw.lower() if raw else UNSET


def word(raw: str) -> Any:
    return raw.strip().lower() if raw else UNSET


def path(raw: str) -> Any:
    return Path(raw).resolve() if raw else UNSET


def names(raw: str) -> tuple[str, ...]:
    """A comma-separated list; an empty value is an empty list, not the default."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def names_or_default(raw: str) -> Any:
    return names(raw) if raw else UNSET


def number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(raw: str) -> Any:
        if not raw.strip():
            return UNSET
        return kind(raw.strip())
    read.__name__ = kind.__name__
    return read


def flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError("must be 1 or 0")


def rate(raw: str) -> Any:
    """`N/minute` (or second, hour, day) -> (N, window seconds); `off` or `0` -> None (no limit)."""
    value = raw.strip().lower()
    if not value:
        return UNSET
    if value in ("off", "0", "none"):
        return None
    count, _, unit = value.partition("/")
    if not count.strip().isdigit() or unit.strip() not in _RATE_WINDOWS or int(count) <= 0:
        raise ValueError(f"must look like 30/minute (units: {', '.join(_RATE_WINDOWS)}) or off")
    return int(count), _RATE_WINDOWS[unit.strip()]


# ---------------------------------------------------------------- the declarations


@dataclass(frozen=True)
class Setting:
    env: str                    # the environment variable
    doc: str                    # what it means (the README table's third column)
    shown: str                  # the default as the README shows it
    parse: Callable[[str], Any]
    fallback_env: str | None = None     # read when ``env`` is unset or empty


def setting(env: str, default: Any, doc: str, parse: Callable[[str], Any] = text, shown: str | None = None,
            fallback_env: str | None = None) -> Any:
    shown = shown if shown is not None else "(none)" if default is None else str(default)
    return field(default=default, metadata={"setting": Setting(env, doc, shown, parse, fallback_env)})


INT, FLOAT = number(int), number(float)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = setting("FACE3D_DATA_DIR", DERIVED,
            "Root for the embedded defaults (SQLite file, local storage, embedded broker).",
            path, "./data (made absolute)")
    database_url: str = setting("DATABASE_URL", DERIVED,
            "SQLAlchemy URL; `postgresql+psycopg://user@host/db` in production.",
            shown="sqlite:///<data_dir>/face3d.db")
    broker_url: str = setting("BROKER_URL", EMBEDDED_BROKER,
            "Celery broker URL (`redis://host:6379/0`); `embedded` starts/attaches a local Valkey server under "
            "data_dir/broker.")
    storage_backend: str = setting("STORAGE_BACKEND", "local",
            "`local` (files under storage_dir) or `s3` (any S3-compatible service).", lowercase)
    storage_dir: Path = setting("STORAGE_DIR", DERIVED,
            "Root folder of the local storage backend.", path, "<data_dir>/storage")
    s3_bucket: str = setting("S3_BUCKET", "face3d", "Bucket for inputs and artifacts (must exist).")
    s3_prefix: str = setting("S3_PREFIX", "", "Key prefix inside the bucket, e.g. `prod/`.", shown="(empty)")
    s3_endpoint_url: str | None = setting("S3_ENDPOINT_URL", None,
            "Endpoint of an S3-compatible service (MinIO, moto, ...).", shown="(AWS)")
    s3_public_endpoint_url: str | None = setting("S3_PUBLIC_ENDPOINT_URL", None,
            "Endpoint put in presigned download URLs, when clients reach storage at another address than the "
            "workers (e.g. `http://localhost:9000` for compose's `minio:9000`).", shown="S3_ENDPOINT_URL")
    s3_region: str = setting("S3_REGION", "us-east-1",
            "Region used for signing. Credentials come from the usual AWS variables.",
            shown="AWS_DEFAULT_REGION or us-east-1", fallback_env="AWS_DEFAULT_REGION")
    presign_expiry_s: int = setting("PRESIGN_EXPIRY_S", 3600, "Lifetime of presigned download URLs.", INT)
    max_upload_bytes: int = setting("MAX_UPLOAD_BYTES", 20 * 1024 * 1024,
            "Largest accepted upload.", INT, "20971520 (20 MiB)")
    max_pixels: int = setting("MAX_PIXELS", 50_000_000, "Largest decoded image (decompression-bomb guard).", INT)
    default_engine: str = setting("DEFAULT_ENGINE", "cpu", "Engine used when a request names none (`cpu` or `hrn`).")
    gpu_engines: tuple[str, ...] = setting("GPU_ENGINES", ("hrn",),
            "Comma-separated engines whose jobs go to the `gpu` queue; others go to `cpu`.", names, "hrn")
    job_time_limit_s: int = setting("JOB_TIME_LIMIT_S", 600,
            "Hard time limit of one job; the job fails with `timeout` shortly before it.", INT)
    visibility_timeout_s: int = setting("VISIBILITY_TIMEOUT_S", DERIVED,
            "Broker redelivers an unacknowledged job after this; must exceed the time limit.",
            INT, "max(3600, 2 * JOB_TIME_LIMIT_S)")
    job_max_attempts: int = setting("JOB_MAX_ATTEMPTS", 3,
            "Deliveries of a job (worker crashes included) before it fails with `worker_lost`.", INT)
    broker_connect_timeout_s: float = setting("BROKER_CONNECT_TIMEOUT_S", 3.0,
            "How long a submit waits for the broker before answering `broker_unavailable`.", FLOAT, "3")
    worker_concurrency: int = setting("WORKER_CONCURRENCY", 1,
            "Worker processes per `face3d worker` (one engine copy each).", INT)
    render_threads: int = setting("RENDER_THREADS", 0,
            "Threads each worker process gives one job (detection's model lanes, turntable frames); 0: the CPUs "
            "divided by the worker processes (WORKER_CONCURRENCY), so threads never oversubscribe the machine.", INT,
            "0 (CPUs / processes)")
    api_bind: str = setting("API_BIND", "0.0.0.0:8000",
            "Address the shipped gunicorn (`-c python:face3d.api.gunicorn_conf`) listens on.")
    api_workers: int = setting("API_WORKERS", 2, "gunicorn worker processes of the shipped API.", INT)
    api_threads: int = setting("API_THREADS", 32,
            "Threads per API worker process (gthread): requests served at once by each, slow clients and "
            "`Prefer: wait` included.", INT)
    api_header_timeout_s: float = setting("API_HEADER_TIMEOUT_S", 10.0,
            "Total time a client has to send a request's line and headers; then the connection is closed "
            "(slowloris).", FLOAT, "10")
    api_body_timeout_s: float = setting("API_BODY_TIMEOUT_S", 30.0,
            "Longest pause between two reads of a request body (or two writes of a response); then the request "
            "ends with a 400 or 408 problem.", FLOAT, "30")
    max_concurrent_waits: int = setting("MAX_CONCURRENT_WAITS", 8,
            "`Prefer: wait` requests one API process lets wait at once; more are answered at once, without "
            "waiting and without `Preference-Applied`.", INT)
    public_base_url: str | None = setting("PUBLIC_BASE_URL", None,
            "Absolute URL of the API as clients see it, for links in responses.")
    batch_chunk_size: int = setting("BATCH_CHUNK_SIZE", 500,
            "Batch items inserted (one executemany) and queued per chunk.", INT)
    batch_s3_buckets: tuple[str, ...] = setting("BATCH_S3_BUCKETS", DERIVED,
            "Comma-separated buckets `s3://` batch sources may read (`*`: any the credentials reach).",
            names_or_default, "S3_BUCKET")
    max_archive_bytes: int = setting("MAX_ARCHIVE_BYTES", 2 * 1024 ** 3,
            "Largest zip accepted by POST /v1/batches (spooled to disk, read entry by entry).",
            INT, "2147483648 (2 GiB)")
    max_archive_entries: int = setting("MAX_ARCHIVE_ENTRIES", 100_000,
            "Most entries (files and folders) a batch zip may list; more is refused with 413.", INT)
    max_archive_uncompressed_bytes: int = setting("MAX_ARCHIVE_UNCOMPRESSED_BYTES", 4 * 1024 ** 3,
            "Most bytes a batch zip may unpack to, all entries together: checked on the sizes it declares before it "
            "is stored (413), and on the bytes really unpacked while a worker expands it.", INT, "4294967296 (4 GiB)")
    max_archive_entry_ratio: int = setting("MAX_ARCHIVE_ENTRY_RATIO", 100,
            "Largest uncompressed/compressed size ratio of one zip entry; a higher one fails its item "
            "(`archive_entry_refused`), a zip-bomb guard.", INT)
    max_batch_items_in_flight_per_key: int = setting("MAX_BATCH_ITEMS_IN_FLIGHT_PER_KEY", 100_000,
            "Queued + running batch items one key may have; expansion pauses at the cap and resumes as items "
            "finish, single item uploads get 429 `too_many_active_jobs`. 0: no cap.", INT)
    orphan_grace_s: float = setting("ORPHAN_GRACE_S", 3600.0,
            "The sweeper deletes stored objects no job or batch references, and stale `.tmp-*` files, once they "
            "are older than this.", FLOAT, "3600")
    orphan_sweep_interval_s: float = setting("ORPHAN_SWEEP_INTERVAL_S", 3600.0,
            "Seconds between two storage sweeps for orphans (a storage listing: rarer than job sweeps).",
            FLOAT, "3600")
    heartbeat_interval_s: float = setting("HEARTBEAT_INTERVAL_S", 2.0,
            "How often a worker stamps heartbeat_at on the job it runs.", FLOAT, "2")
    heartbeat_timeout_s: float = setting("HEARTBEAT_TIMEOUT_S", 10.0,
            "A running job whose heartbeat is older is taken as lost (requeued to the front of its queue, or failed "
            "`worker_lost`).", FLOAT, "10")
    queued_resend_after_s: float = setting("QUEUED_RESEND_AFTER_S", 10.0,
            "The sweeper resends the message of a job queued longer than this, as far as its queue lacks messages "
            "(lost broker messages).", FLOAT, "10")
    sweeper_interval_s: float = setting("SWEEPER_INTERVAL_S", 2.0,
            "Seconds between two sweeps of `face3d sweeper` (also run by `face3d serve`).", FLOAT, "2")
    outage_retry_s: float = setting("OUTAGE_RETRY_S", DERIVED,
            "How long a worker retries a job through a database, storage or broker outage (backoff up to 2 s) "
            "before handing it back to the queue; an outage never fails a job.", FLOAT,
            "min(300, JOB_TIME_LIMIT_S / 2)")
    image_url_allow_private: bool = setting("IMAGE_URL_ALLOW_PRIVATE", False,
            "1: `image_url` may point at private/loopback addresses (tests, labs only).", flag, "0")
    image_url_allow_networks: tuple[str, ...] = setting("IMAGE_URL_ALLOW_NETWORKS", (),
            "Comma-separated CIDRs `image_url` may reach even though private, e.g. `10.1.0.0/16`.", names, "(none)")
    image_url_timeout_s: float = setting("IMAGE_URL_TIMEOUT_S", 10.0,
            "Total time allowed to fetch an `image_url` (all redirects included).", FLOAT, "10")
    image_url_max_redirects: int = setting("IMAGE_URL_MAX_REDIRECTS", 3,
            "Redirects followed for an `image_url`; each hop is checked again.", INT)
    auth_mode: str = setting("AUTH_MODE", "off",
            "`on`: every /v1 request needs `Authorization: Bearer <key>` (keys from `face3d keys create`); `off`: "
            "open, logged loudly.", word)
    environment: str = setting("FACE3D_ENV", "development",
            "`production` refuses to start unless AUTH_MODE=on and at least one active key exists.", word)
    rate_limit_submit: tuple[int, int] | None = setting("RATE_LIMIT_SUBMIT", (30, 60),
            "Per key: POST/DELETE requests (submits, cancels, deletes) per window, `N/second|minute|hour`; `off` "
            "disables.", rate, "30/minute")
    rate_limit_read: tuple[int, int] | None = setting("RATE_LIMIT_READ", (600, 60),
            "Per key: GET requests per window, same format.", rate, "600/minute")
    rate_limit_batch_items: tuple[int, int] | None = setting("RATE_LIMIT_BATCH_ITEMS", (600, 60),
            "Per key: item uploads to a batch (POST /v1/batches/{id}/items), their own bucket instead of "
            "RATE_LIMIT_SUBMIT's; same format.", rate, "600/minute")
    max_active_jobs_per_key: int = setting("MAX_ACTIVE_JOBS_PER_KEY", 100,
            "Queued + running jobs one key may have (batch items not counted); more submits get 429 "
            "`too_many_active_jobs`. 0: no cap.", INT)
    rate_limit_redis_url: str | None = setting("RATE_LIMIT_REDIS_URL", None,
            "Redis for the rate-limit counters; without one, counters live in the API process.",
            shown="the broker's Redis")
    webhook_secret: str | None = setting("WEBHOOK_SECRET", None,
            "`whsec_<base64>` signing secret for webhooks while AUTH_MODE=off (with auth on, each key has its own).")
    webhook_allow_private: bool = setting("WEBHOOK_ALLOW_PRIVATE", False,
            "1: webhook URLs may point at private/loopback addresses (tests, labs).", flag, "0")
    webhook_max_attempts: int = setting("WEBHOOK_MAX_ATTEMPTS", 6,
            "Delivery attempts of one webhook before giving up.", INT)
    webhook_backoff_s: float = setting("WEBHOOK_BACKOFF_S", 5.0,
            "Delay before the 2nd attempt; doubles for each further attempt.", FLOAT, "5")
    webhook_timeout_s: float = setting("WEBHOOK_TIMEOUT_S", 5.0, "Time limit of one delivery POST.", FLOAT, "5")
    readyz_timeout_s: float = setting("READYZ_TIMEOUT_S", 2.0,
            "Time limit of each /readyz check (database, broker, storage write + read); slower counts as down.",
            FLOAT, "2")
    decode_memory_bytes: int = setting("DECODE_MEMORY_BYTES", 320 * 1024 ** 2,
            "Pixel memory one photo may take while decoded (estimated from its header: mode x pixels); larger "
            "photos are decoded reduced (JPEG draft, PIL reduce) to fit.", INT, "335544320 (320 MiB)")
    trusted_proxies: int = setting("TRUSTED_PROXIES", 0,
            "Proxies in front of the API whose X-Forwarded-For/-Proto/-Host are believed (compose: 1, its nginx); "
            "the client address (failed-auth limit, logs) is then the one the nearest proxy saw. 0: none.", INT)
    rate_limit_auth_failures: tuple[int, int] | None = setting("RATE_LIMIT_AUTH_FAILURES", (20, 60),
            "Per client address: failed authentications (missing or unknown key) per window before 429; `off` "
            "disables.", rate, "20/minute")
    gpu_worker_fresh_s: float = setting("GPU_WORKER_FRESH_S", 60.0,
            "A GPU engine (`hrn`) is refused at submit (503 `engine_unavailable`) unless a worker serving it "
            "announced itself within this many seconds.", FLOAT, "60")

    def __post_init__(self) -> None:
        """The defaults that depend on other settings, the one place they are computed."""
        for name, derive in _DERIVED_DEFAULTS.items():
            if getattr(self, name) is DERIVED:
                object.__setattr__(self, name, derive(self))

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url == EMBEDDED_BROKER


_DERIVED_DEFAULTS: dict[str, Callable[[Settings], Any]] = {
    "data_dir": lambda s: Path("data").resolve(),
    "database_url": lambda s: f"sqlite:///{s.data_dir / 'face3d.db'}",
    "storage_dir": lambda s: (s.data_dir / "storage").resolve(),
    "visibility_timeout_s": lambda s: max(3600, 2 * s.job_time_limit_s),
    "outage_retry_s": lambda s: min(300.0, s.job_time_limit_s / 2),
    "batch_s3_buckets": lambda s: names(s.s3_bucket),
}


def documented_settings() -> list[Setting]:
    """Every setting's declaration, in the order of the README's configuration table."""
    return [f.metadata["setting"] for f in dataclasses.fields(Settings)]


# ---------------------------------------------------------------- reading them


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from ``env`` (default: os.environ); keyword overrides win over the environment."""
    env = os.environ if env is None else env
    known = {f.name for f in dataclasses.fields(Settings)}
    if set(overrides) - known:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(set(overrides) - known))}")
    if "data_dir" in overrides:         # a given folder is made absolute; None leaves it to FACE3D_DATA_DIR
        data_dir = overrides.pop("data_dir")
        overrides.update({"data_dir": Path(data_dir).resolve()} if data_dir else {})
    values = {f.name: _read(env, f.metadata["setting"]) for f in dataclasses.fields(Settings)}
    values = {name: value for name, value in values.items() if value is not UNSET}
    settings = Settings(**{**values, **overrides})
    _validate(settings)
    return settings


def _read(env: Mapping[str, str], declared: Setting) -> Any:
    raw = env.get(declared.env)
    if declared.fallback_env and not raw:
        raw = env.get(declared.fallback_env)
    if raw is None:
        return UNSET
    try:
        return declared.parse(raw)
    except ValueError as exc:
        kind = declared.parse.__name__
        reason = f"is not a valid {kind}" if kind in ("int", "float") else str(exc)
        raise ConfigError(f"{declared.env}={raw!r} {reason}") from None


def _validate(settings: Settings) -> None:
    if settings.storage_backend not in ("local", "s3"):
        raise ConfigError(f"STORAGE_BACKEND must be 'local' or 's3', not {settings.storage_backend!r}")
    positive = ("presign_expiry_s", "max_upload_bytes", "max_pixels", "job_time_limit_s", "job_max_attempts",
                "worker_concurrency", "broker_connect_timeout_s", "heartbeat_interval_s", "queued_resend_after_s",
                "batch_chunk_size", "max_archive_bytes", "sweeper_interval_s", "image_url_timeout_s",
                "max_archive_entries", "max_archive_uncompressed_bytes", "max_archive_entry_ratio", "orphan_grace_s",
                "orphan_sweep_interval_s", "api_workers", "api_threads", "api_header_timeout_s", "api_body_timeout_s")
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name.upper()} must be positive")
    if settings.max_concurrent_waits < 0:
        raise ConfigError("MAX_CONCURRENT_WAITS must not be negative")
    if settings.auth_mode not in ("off", "on"):
        raise ConfigError(f"AUTH_MODE must be 'off' or 'on', not {settings.auth_mode!r}")
    if settings.webhook_max_attempts <= 0 or settings.webhook_timeout_s <= 0 or settings.webhook_backoff_s < 0:
        raise ConfigError("WEBHOOK_MAX_ATTEMPTS and WEBHOOK_TIMEOUT_S must be positive, WEBHOOK_BACKOFF_S >= 0")
    _validate_liveness(settings)
    for network in settings.image_url_allow_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"IMAGE_URL_ALLOW_NETWORKS: {network!r} is not a CIDR like 10.1.0.0/16") from None


def _validate_liveness(settings: Settings) -> None:
    if settings.visibility_timeout_s <= settings.job_time_limit_s:
        # Otherwise the broker hands a still-running job to a second worker.
        raise ConfigError("VISIBILITY_TIMEOUT_S must be larger than JOB_TIME_LIMIT_S")
    if not 0 < settings.outage_retry_s < settings.job_time_limit_s:
        # The job's own time limit would end the waiting with a `timeout` failure instead.
        raise ConfigError("OUTAGE_RETRY_S must be positive and smaller than JOB_TIME_LIMIT_S")
    if settings.heartbeat_timeout_s < 2 * settings.heartbeat_interval_s:
        # One late beat must not make a live worker look lost.
        raise ConfigError("HEARTBEAT_TIMEOUT_S must be at least twice HEARTBEAT_INTERVAL_S")
    if settings.image_url_max_redirects < 0:
        raise ConfigError("IMAGE_URL_MAX_REDIRECTS must not be negative")
