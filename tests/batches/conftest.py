"""The real stack for batch tests, once per module: PostgreSQL, a Celery worker process on Redis (own db number),
an S3 server (moto) for storage and as an ingestion source, and the API over HTTP."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import redis

from tests.api.fakes import LiveServer
from tests.conftest import S3_BUCKET, real_stack_env, redis_url_with_offset

ROOT = Path(__file__).resolve().parents[2]
SOURCE_BUCKET = "face3d-ingest"
FAST = {"video": False, "texture_size": 256}


@pytest.fixture(scope="module")
def stack_env(postgres_url: str, redis_url: str, s3_server: str, tmp_path_factory) -> Iterator[dict[str, str]]:
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade
    from face3d.shared.storage import make_s3_client
    from tests.conftest import empty_tables

    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    empty_tables(make_session_factory(engine))   # earlier tests' succeeded jobs would be reused by content
    engine.dispose()
    broker_url = redis_url_with_offset(1)       # no other test's worker may take these jobs
    redis.Redis.from_url(broker_url).flushdb()
    client = make_s3_client(s3_server, "us-east-1")
    if SOURCE_BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=SOURCE_BUCKET)
    env = real_stack_env(database_url=postgres_url, broker_url=broker_url, s3_endpoint=s3_server, s3_prefix="batches/",
                         data_dir=tmp_path_factory.mktemp("batch-data"),
                         BATCH_S3_BUCKETS=f"{SOURCE_BUCKET},{S3_BUCKET}", BATCH_CHUNK_SIZE="200")
    yield env
    redis.Redis.from_url(broker_url).flushdb()


@pytest.fixture(scope="module")
def worker(stack_env: dict[str, str], tmp_path_factory) -> Iterator[subprocess.Popen]:
    """`face3d worker -Q cpu,batch`: interactive queue first, as `face3d serve` runs it."""
    from tests.service.workers import worker_process

    log = tmp_path_factory.mktemp("batch-worker") / "worker.log"
    with worker_process(stack_env, log, pool="prefork", queues="cpu,batch", concurrency=2, loglevel="warning") as process:
        yield process


@pytest.fixture(scope="module")
def api_url(stack_env: dict[str, str], worker) -> Iterator[str]:
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    with LiveServer(create_app(load_settings(env=stack_env))) as url:
        yield url


@pytest.fixture(scope="module")
def sf(stack_env: dict[str, str]):
    from face3d.shared.db import make_engine, make_session_factory

    factory = make_session_factory(make_engine(stack_env["DATABASE_URL"]))
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture(scope="module")
def source_s3(s3_server: str):
    from face3d.shared.storage import make_s3_client

    return make_s3_client(s3_server, "us-east-1")
