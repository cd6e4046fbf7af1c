"""Liveness, readiness with real dependencies (and dead ones), and the OpenAPI document."""
from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from face3d.api.app import create_app
from face3d.shared.storage import S3Storage, make_s3_client
from tests.conftest import free_port


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
