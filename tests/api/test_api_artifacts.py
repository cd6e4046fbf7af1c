"""Artifact downloads: streamed from local storage, redirected to a presigned URL on S3."""
from __future__ import annotations

import pytest
import requests

from face3d.api.app import create_app
from tests.api.fakes import assert_problem, finish_job, post_photo

GLB = b"glTF\x02\x00\x00\x00" + bytes(range(256)) * 4


def _finished_job(client, obama_bytes, session_factory, storage) -> str:
    job_id = post_photo(client, obama_bytes).get_json()["id"]
    finish_job(session_factory, storage, job_id, {"face_0.glb": GLB, "result.json": b'{"faces": [1]}'})
    return job_id


def test_local_storage_streams_the_file(client, obama_bytes, session_factory, storage):
    job_id = _finished_job(client, obama_bytes, session_factory, storage)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    urls = {a["name"]: a["url"] for a in job["artifacts"]}
    assert urls["face_0.glb"] == f"http://localhost/v1/jobs/{job_id}/artifacts/face_0.glb"
    response = client.get(f"/v1/jobs/{job_id}/artifacts/face_0.glb")
    assert response.status_code == 200
    assert response.mimetype == "model/gltf-binary"
    assert response.data == GLB
    assert client.get(f"/v1/jobs/{job_id}/artifacts/result.json").get_json() == {"faces": [1]}


def test_unknown_artifact_is_404(client, obama_bytes, session_factory, storage):
    job_id = _finished_job(client, obama_bytes, session_factory, storage)
    assert_problem(client.get(f"/v1/jobs/{job_id}/artifacts/face_9.glb"), 404, "not_found")
    queued = post_photo(client, obama_bytes).get_json()["id"]
    assert_problem(client.get(f"/v1/jobs/{queued}/artifacts/face_0.glb"), 404, "not_found")


def test_public_base_url_is_used_for_links(tmp_path, session_factory, local_storage, queue, obama_bytes):
    from face3d.shared.config import load_settings

    settings = load_settings(env={"PUBLIC_BASE_URL": "https://faces.example.org/"}, data_dir=tmp_path)
    app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=queue)
    client = app.test_client()
    job_id = _finished_job(client, obama_bytes, session_factory, local_storage)
    url = client.get(f"/v1/jobs/{job_id}").get_json()["artifacts"][0]["url"]
    assert url.startswith(f"https://faces.example.org/v1/jobs/{job_id}/artifacts/")


@pytest.fixture
def s3_client(settings, session_factory, s3_storage, queue):
    app = create_app(settings, session_factory=session_factory, storage=s3_storage, queue=queue)
    return app.test_client()


def test_s3_storage_redirects_to_a_presigned_url(s3_client, obama_bytes, session_factory, s3_storage):
    job_id = _finished_job(s3_client, obama_bytes, session_factory, s3_storage)
    response = s3_client.get(f"/v1/jobs/{job_id}/artifacts/face_0.glb")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "Signature" in location or "X-Amz-Signature" in location
    download = requests.get(location, timeout=10)
    assert download.status_code == 200 and download.content == GLB


def test_local_artifacts_are_private_to_caches(client, obama_bytes, session_factory, storage):
    """A key's files must not be kept by a shared cache (it was `public, max-age=3600`)."""
    job_id = _finished_job(client, obama_bytes, session_factory, storage)
    for path in ("artifacts/face_0.glb", "input", "input?max_side=64"):
        cache_control = client.get(f"/v1/jobs/{job_id}/{path}").headers["Cache-Control"]
        assert "private" in cache_control and "public" not in cache_control, (path, cache_control)
