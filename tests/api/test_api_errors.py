"""Every client error comes back as problem+json with a stable code."""
from __future__ import annotations

import io
import json

import pytest

from face3d.api.app import create_app
from face3d.shared.config import load_settings
from tests.api.fakes import assert_problem, post_photo


def test_unknown_job_is_404(client):
    body = assert_problem(client.get("/v1/jobs/doesnotexist"), 404, "not_found")
    assert body["instance"] == "/v1/jobs/doesnotexist"


def test_unknown_route_and_wrong_method(client):
    assert_problem(client.get("/v1/nothing-here"), 404, "not_found")
    response = client.put("/v1/jobs")
    assert_problem(response, 405, "invalid_request")
    assert "POST" in response.headers["Allow"]


def test_missing_image_part_is_400(client):
    response = client.post("/v1/jobs", data={"max_faces": "2"}, content_type="multipart/form-data")
    assert_problem(response, 400, "invalid_request")


def test_empty_image_is_415_as_documented(client):
    """An empty file is no image: 415, like any other non-image (it was 400 while the docs said 415)."""
    assert_problem(post_photo(client, b""), 415, "unsupported_media_type")


def test_non_image_bytes_are_415_whatever_the_name(client, queue):
    response = post_photo(client, b"%PDF-1.7 definitely not a photo", name="photo.jpg")
    assert_problem(response, 415, "unsupported_media_type")
    assert queue.sent == []


def test_bad_options_are_422_with_details(client, obama_bytes, queue):
    body = assert_problem(post_photo(client, obama_bytes, options={"max_faces": 0, "texture_size": 300}),
                          422, "validation_failed")
    locations = {tuple(issue["loc"]) for issue in body["errors"]}
    assert locations == {("options", "max_faces"), ("options", "texture_size")}
    assert queue.sent == []


def test_bad_individual_fields_are_422(client, obama_bytes):
    assert_problem(post_photo(client, obama_bytes, frames="9999"), 422, "validation_failed")
    assert_problem(post_photo(client, obama_bytes, video="maybe"), 422, "validation_failed")
    assert_problem(post_photo(client, obama_bytes, max_face="3"), 422, "validation_failed")   # typo'd name


def test_options_must_be_a_json_object(client, obama_bytes):
    response = client.post("/v1/jobs", data={"image": (io.BytesIO(obama_bytes), "a.jpg"),
                                             "options": "{not json"}, content_type="multipart/form-data")
    assert_problem(response, 422, "validation_failed")
    response = post_photo(client, obama_bytes, options=[1, 2])
    assert_problem(response, 422, "validation_failed")


def test_unknown_engine_is_422(client, obama_bytes):
    assert_problem(post_photo(client, obama_bytes, options={"engine": "magic"}), 422, "validation_failed")


@pytest.mark.parametrize("limit", [100_000, 250_000], ids=["whole-body", "image-part"])
def test_upload_over_the_limit_is_413(limit, tmp_path, session_factory, local_storage, queue, obama_bytes):
    settings = load_settings(env={}, data_dir=tmp_path, max_upload_bytes=limit)
    app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=queue)
    assert len(obama_bytes) > limit
    assert_problem(post_photo(app.test_client(), obama_bytes), 413, "payload_too_large")
    assert queue.sent == []


def test_unexpected_failure_is_a_bare_500(settings, session_factory, queue, obama_bytes):
    class BrokenStorage:
        def put_bytes(self, *args, **kwargs):
            raise RuntimeError("disk on fire: /secret/path")

    app = create_app(settings, session_factory=session_factory, storage=BrokenStorage(), queue=queue)
    body = assert_problem(post_photo(app.test_client(), obama_bytes), 500, "internal")
    assert "secret" not in json.dumps(body)


def _multipart(parts: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(b'--b\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n' + value + b"\r\n"
                    for name, value in parts)
    return body + b"--b--\r\n"


def test_too_many_form_parts_and_a_too_large_form_field_are_named_as_such(client):
    """Both were reported as 'the upload is larger than the limit of 20971520 bytes' (a 10,000-part form too)."""
    many = client.post("/v1/jobs", data=_multipart([(f"f{i}", b"x") for i in range(10_000)]),
                       content_type="multipart/form-data; boundary=b")
    assert "more than 1000 parts" in assert_problem(many, 413, "payload_too_large")["detail"]
    field = client.post("/v1/jobs", data=_multipart([("options", b"x" * 600_000)]),
                        content_type="multipart/form-data; boundary=b")
    assert "larger than 500000 bytes" in assert_problem(field, 413, "payload_too_large")["detail"]
    assert "20971520" not in field.get_json()["detail"]
