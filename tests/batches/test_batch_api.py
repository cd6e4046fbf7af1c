"""Batch API edges over HTTP: bad input gets a typed problem, never a stack trace; items are idempotent per name."""
from __future__ import annotations

import io

import pytest
import requests

from tests.batches.conftest import SOURCE_BUCKET


def problem(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and "Traceback" not in response.text
    return body


@pytest.mark.parametrize("body, status, code", [
    ({"items": [{"key": "uploads/a.jpg", "url": "s3://b/k"}]}, 422, "validation_failed"),
    ({"items": [{"key": "uploads/a.jpg"}, {"key": "uploads/b.jpg", "other": 1}]}, 422, "validation_failed"),
    ({"s3_prefix": "http://example.com/x"}, 422, "validation_failed"),
    ({"s3_prefix": "s3://not-allowed-bucket/x"}, 422, "validation_failed"),
    ({"s3_prefix": f"s3://{SOURCE_BUCKET}/nothing-here/"}, 422, "validation_failed"),
    ({"s3_prefix": "s3://face3d-test/batches/jobs/"}, 422, "validation_failed"),
    ({"options": {"texture_size": 300}}, 422, "validation_failed"),
    ({"items": [], "s3_prefix": "s3://x/y"}, 422, "validation_failed"),
])
def test_bad_batch_requests_are_problems(api_url, body, status, code):
    problem(requests.post(f"{api_url}/v1/batches", json=body, timeout=10), status, code)


def test_not_a_zip_and_unknown_batch(api_url):
    files = {"archive": ("x.zip", io.BytesIO(b"plain text"))}
    problem(requests.post(f"{api_url}/v1/batches", files=files, timeout=10), 415, "unsupported_media_type")
    problem(requests.get(f"{api_url}/v1/batches/nope", timeout=10), 404, "not_found")
    problem(requests.get(f"{api_url}/v1/batches/nope/results", timeout=10), 404, "not_found")
    problem(requests.post(f"{api_url}/v1/batches", data="{", headers={"Content-Type": "application/json"},
                          timeout=10), 400, "invalid_request")


def test_item_upload_is_idempotent_per_name_and_canceled_batch_refuses_items(api_url, faces_dir):
    from face3d.client.http import ApiError, Face3dClient

    client = Face3dClient(api_url)
    batch = client.create_batch({"video": False}, name="open")
    assert batch["source"] == "client" and batch["total"] == 0
    data = (faces_dir / "f_noface_grass.jpg").read_bytes()
    first = client.add_batch_item(batch["id"], "grass.jpg", data)
    again = client.add_batch_item(batch["id"], "grass.jpg", data)
    assert first["created"] is True and again["created"] is False and again["job_id"] == first["job_id"]
    assert client.get_batch(batch["id"])["total"] == 1
    client.cancel_batch(batch["id"])
    with pytest.raises(ApiError) as error:
        client.add_batch_item(batch["id"], "other.jpg", data)
    assert error.value.status == 409
    with pytest.raises(ApiError):
        client.batch_results(batch["id"], state="bogus")
