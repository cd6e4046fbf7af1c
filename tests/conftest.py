"""Fixtures for the real services the tests use: PostgreSQL, Redis, an S3 server (moto), and storages.

A service that cannot be reached fails its tests when CI is set, and skips them (with the reason) otherwise.
Addresses can be moved with FACE3D_TEST_PG_ADMIN_URL and FACE3D_TEST_REDIS_URL.
"""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
FACES_DIR = ROOT / ".." / "shared" / "faces"
PG_ADMIN_URLS = [os.environ["FACE3D_TEST_PG_ADMIN_URL"]] if os.environ.get("FACE3D_TEST_PG_ADMIN_URL") else [
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
]
REDIS_URL = os.environ.get("FACE3D_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def redis_url_with_offset(offset: int) -> str:
    """A neighbouring database number of REDIS_URL's, for a test whose queue no other worker may drain."""
    base, db = REDIS_URL.rsplit("/", 1)
    return f"{base}/{(int(db) + offset) % 16}"
S3_BUCKET = "face3d-test"


def real_stack_env(*, database_url: str, broker_url: str, s3_endpoint: str, s3_prefix: str, data_dir: Path,
                   **extra: str) -> dict[str, str]:
    """The environment of workers and the API on the real stack: PostgreSQL, a Redis broker, S3 storage (moto)."""
    return {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": broker_url, "STORAGE_BACKEND": "s3",
            "S3_BUCKET": S3_BUCKET, "S3_PREFIX": s3_prefix, "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": "us-east-1",
            "FACE3D_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **extra}


def service_missing(what: str, why: object) -> None:
    message = f"*** {what} is not reachable: {why} ***"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return FACES_DIR


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A new, empty database on the local PostgreSQL server, dropped at the end of the session."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin, error = None, None
    for url in PG_ADMIN_URLS:
        candidate = sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        try:
            with candidate.connect():
                admin = candidate
                break
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            error = exc
            candidate.dispose()
    if admin is None:
        service_missing("PostgreSQL", error)
    name = f"face3d_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(str(admin.url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database URL, once per backend."""
    from face3d.shared.migrations import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'face3d.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def _session_factories() -> Iterator[dict]:
    factories: dict = {}
    yield factories
    for factory in factories.values():
        factory.kw["bind"].dispose()


@pytest.fixture
def session_factory(db_url: str, _session_factories: dict):
    """A session factory on emptied tables (the schema is migrated once per session): no test sees another's rows."""
    from face3d.shared.db import make_engine, make_session_factory

    if db_url not in _session_factories:
        _session_factories[db_url] = make_session_factory(make_engine(db_url))
    factory = _session_factories[db_url]
    empty_tables(factory)
    return factory


def empty_tables(factory) -> None:
    """Delete every row of every table, children before parents (foreign keys); the schema stays."""
    import face3d.shared.models  # noqa: F401  (every table on Base.metadata)
    from face3d.shared.db import Base
    with factory.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


# ---------------------------------------------------------------- redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The test Redis database (its own db number), flushed before and after the session."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        service_missing(f"Redis at {REDIS_URL}", exc)
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


# ---------------------------------------------------------------- S3 and storage


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on a free local port, with the test bucket created. Yields the endpoint URL."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        service_missing("moto S3 server", exc)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        from face3d.shared.storage import make_s3_client

        make_s3_client(endpoint, "us-east-1").create_bucket(Bucket=S3_BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_storage(s3_server: str):
    from face3d.shared.storage import S3Storage, make_s3_client

    client = make_s3_client(s3_server, "us-east-1")
    return S3Storage(client, S3_BUCKET, prefix=f"t-{uuid.uuid4().hex[:8]}/", presign_expiry_s=300)


@pytest.fixture
def local_storage(tmp_path: Path):
    from face3d.shared.storage import LocalStorage

    return LocalStorage(tmp_path / "storage")
