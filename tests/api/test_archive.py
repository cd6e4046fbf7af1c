"""GET /v1/jobs/{id}/archive: every stored file in one zip, named with the photo's stem, streamed entry by entry (a
50-face job's zip is never held in memory), with the same 404 for another key's job. Also the names single
downloads are saved as, the source photo route and the public limits the page reads."""
from __future__ import annotations

import io
import os
import tracemalloc
import zipfile
from typing import Any

import pytest

from tests.api.fakes import assert_problem, finish_job, post_photo
from tests.security.conftest import new_caller

FACES = 50
GLB_BYTES = 1024 * 1024


class CountingStorage:
    """The local storage, counting the objects opened for reading (to see how far the zip has got)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.opened = inner, 0

    def open_stream(self, key: str):
        self.opened += 1
        return self.inner.open_stream(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def storage(local_storage):
    return CountingStorage(local_storage)


@pytest.fixture
def keyed_app(session_factory, storage, tmp_path):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from tests.stubs import RecordingQueue

    settings = load_settings(env={"AUTH_MODE": "on"}, data_dir=tmp_path / "data")
    app = create_app(settings, session_factory=session_factory, storage=storage, queue=RecordingQueue())
    app.testing = True
    return app


def done_job(client, session_factory, storage, photo: bytes, files: dict[str, bytes], headers=None,
             name: str = "Obama at home.jpg") -> str:
    job_id = post_photo(client, photo, headers=headers, name=name).get_json()["id"]
    finish_job(session_factory, storage.inner, job_id, files)
    return job_id


def test_the_zip_holds_every_file_named_with_the_photo_stem(client, session_factory, storage, obama_bytes):
    files = {"result.json": b'{"faces": [{}]}', "vis.png": b"png", "face_0.glb": b"glTF0", "face_0_texture.png": b"t",
             "face_1.glb": b"glTF1", "turntable.mp4": b"mp4"}
    job_id = done_job(client, session_factory, storage, obama_bytes, files)
    response = client.get(f"/v1/jobs/{job_id}/archive")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="Obama_at_home_3d.zip"')
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted([
            "Obama_at_home_result.json", "Obama_at_home_vis.png", "Obama_at_home_face0.glb",
            "Obama_at_home_face0_texture.png", "Obama_at_home_face1.glb", "Obama_at_home_turntable.mp4"])
        assert archive.read("Obama_at_home_face1.glb") == b"glTF1"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert {a["name"]: a["download_name"] for a in job["artifacts"]}["face_0_texture.png"] == \
        "Obama_at_home_face0_texture.png"


def test_single_downloads_carry_the_stem_too(client, session_factory, storage, obama_bytes):
    job_id = done_job(client, session_factory, storage, obama_bytes, {"face_0.glb": b"glTF"}, name="kid.png")
    response = client.get(f"/v1/jobs/{job_id}/artifacts/face_0.glb")
    assert response.data == b"glTF" and "kid_face0.glb" in response.headers["Content-Disposition"]


def test_files_not_stored_yet_are_left_out_and_a_job_without_files_is_409(client, session_factory, storage,
                                                                           obama_bytes):
    job_id = done_job(client, session_factory, storage, obama_bytes, {"face_0.glb": b"glTF"})
    with session_factory.begin() as session:          # a run in progress lists planned files (ready: false)
        from face3d.shared.models import Job

        row = session.get(Job, job_id)
        row.result = {**row.result, "artifacts": [*row.result["artifacts"],
                                                  {"name": "turntable.mp4", "key": "nowhere", "ready": False}]}
    with zipfile.ZipFile(io.BytesIO(client.get(f"/v1/jobs/{job_id}/archive").data)) as archive:
        assert archive.namelist() == ["Obama_at_home_face0.glb"]
    queued = post_photo(client, obama_bytes).get_json()["id"]
    assert_problem(client.get(f"/v1/jobs/{queued}/archive"), 409, "conflict")


def test_another_key_gets_404_for_the_archive_and_the_photo(keyed_app, session_factory, storage, obama_bytes):
    client = keyed_app.test_client()
    a, b = (new_caller(session_factory, name=n).headers for n in "AB")
    job_id = done_job(client, session_factory, storage, obama_bytes, {"face_0.glb": b"glTF"}, headers=a)
    for route in ("archive", "input"):
        assert client.get(f"/v1/jobs/{job_id}/{route}", headers=a).status_code == 200
        assert_problem(client.get(f"/v1/jobs/{job_id}/{route}", headers=b), 404, "not_found")
        assert_problem(client.get(f"/v1/jobs/{job_id}/{route}"), 401, "unauthorized")


def test_a_50_face_zip_streams_without_being_built_in_memory(client, session_factory, storage, obama_bytes):
    files = {f"face_{i}.glb": os.urandom(GLB_BYTES) for i in range(FACES)}
    job_id = done_job(client, session_factory, storage, obama_bytes, files)
    del files
    response = client.get(f"/v1/jobs/{job_id}/archive", buffered=False)
    assert "Content-Length" not in response.headers
    chunks = iter(response.response)
    tracemalloc.start()
    try:
        first = next(chunks)
        assert first.startswith(b"PK\x03\x04") and storage.opened <= 1     # the first bytes come before file 2 opens
        total = len(first) + sum(len(chunk) for chunk in chunks)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        response.close()
    assert storage.opened == FACES and total > FACES * GLB_BYTES
    assert peak < 8 * GLB_BYTES, f"peak {peak / 1e6:.1f} MB while streaming {total / 1e6:.0f} MB"


def test_the_source_photo_is_served(client, session_factory, storage, obama_bytes):
    job_id = done_job(client, session_factory, storage, obama_bytes, {"face_0.glb": b"glTF"})
    response = client.get(f"/v1/jobs/{job_id}/input")
    assert response.status_code == 200 and response.data == obama_bytes and response.mimetype == "image/jpeg"


def test_limits_are_public(keyed_app):
    body = keyed_app.test_client().get("/v1/limits").get_json()
    assert body["max_upload_bytes"] == 20 * 1024 * 1024 and body["auth_required"] is True


def test_the_photo_comes_as_a_small_thumbnail_too(client, session_factory, storage, obama_bytes):
    from PIL import Image

    job_id = done_job(client, session_factory, storage, obama_bytes, {"face_0.glb": b"glTF"})
    response = client.get(f"/v1/jobs/{job_id}/input?max_side=96")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.data)).size) == 96 and len(response.data) < 10_000
    for bad in ("5000", "", "\u0663\u0663", "96.0", "9" * 5000):
        assert_problem(client.get(f"/v1/jobs/{job_id}/input", query_string={"max_side": bad}), 422,
                       "validation_failed")
