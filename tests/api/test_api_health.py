"""Liveness, readiness with real dependencies (and dead ones), and the OpenAPI document."""
from __future__ import annotations

import dataclasses
import errno
import os
import threading
import time

import pytest
from openapi_spec_validator import validate

from face3d.api.app import create_app
from face3d.shared.errors import StorageUnavailable
from face3d.shared.storage import LocalStorage, S3Storage, make_s3_client
from tests.conftest import free_port
from tests.stubs import RecordingQueue


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_openapi_document_is_valid_3_1(client):
    document = client.get("/v1/openapi.json").get_json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    assert {"Job", "JobOptions", "Problem", "JobList"} <= set(schemas)
    assert schemas["JobOptions"]["properties"]["max_faces"]["anyOf"][0]["maximum"] == 50
    assert set(document["paths"]["/v1/jobs"]) == {"get", "post"}


def _queue(settings, broker_url):
    from face3d.shared.queue import JobQueue

    return JobQueue.from_settings(settings, broker_url=broker_url)


def _app(settings, session_factory, storage, queue):
    return create_app(settings, session_factory=session_factory, storage=storage, queue=queue)


def test_ready_when_database_broker_and_storage_answer(settings, session_factory, s3_storage, redis_url):
    response = _app(settings, session_factory, s3_storage, _queue(settings, redis_url)).test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "storage": "ok"}}


@pytest.mark.parametrize("dead", ["database", "broker", "storage"])
def test_not_ready_names_the_dependency_that_is_down(dead, settings, session_factory, s3_storage, redis_url):
    from face3d.shared.db import make_engine, make_session_factory

    dead_url = f"127.0.0.1:{free_port()}"
    if dead == "database":
        session_factory = make_session_factory(make_engine(f"postgresql+psycopg://postgres@{dead_url}/x"))
    broker = f"redis://{dead_url}/0" if dead == "broker" else redis_url
    if dead == "storage":
        s3_storage = S3Storage(make_s3_client(f"http://{dead_url}", "us-east-1"), "bucket", "", 60)
    response = _app(settings, session_factory, s3_storage, _queue(settings, broker)).test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks[dead].startswith("unavailable")
    assert all(value == "ok" for name, value in checks.items() if name != dead)


class FullDisk(LocalStorage):
    """A storage folder that still lists and creates files but has no free block (what `check()` used to miss)."""

    def put_bytes(self, key, data, content_type=None):
        raise StorageUnavailable(f"cannot write {key}: {os.strerror(errno.ENOSPC)}")


class Hanging(LocalStorage):
    """An S3 endpoint that accepts the connection and never answers."""

    def __init__(self, root):
        super().__init__(root)
        self.release = threading.Event()

    def get_bytes(self, key):
        self.release.wait(30)
        return b""


def _ready(tmp_path, settings, session_factory, storage):
    settings = dataclasses.replace(settings, readyz_timeout_s=0.5)
    return _app(settings, session_factory, storage, RecordingQueue()).test_client().get("/readyz")


def test_readyz_writes_and_reads_storage_so_a_full_disk_is_not_ready(tmp_path, settings, session_factory):
    response = _ready(tmp_path, settings, session_factory, FullDisk(tmp_path / "full"))
    assert response.status_code == 503
    assert "No space left" in response.get_json()["checks"]["storage"]
    fine = LocalStorage(tmp_path / "fine")
    assert _ready(tmp_path, settings, session_factory, fine).status_code == 200
    assert not [path for path in (tmp_path / "fine").rglob("*") if path.is_file()]     # the probe is removed


def test_readyz_answers_within_its_timeout_when_storage_hangs(tmp_path, settings, session_factory):
    start, hanging = time.monotonic(), Hanging(tmp_path / "hang")
    try:
        response = _ready(tmp_path, settings, session_factory, hanging)
    finally:
        hanging.release.set()
    assert time.monotonic() - start < 3
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "ok", "broker": "ok",
                                             "storage": "unavailable: no answer within 0.5 s"}
