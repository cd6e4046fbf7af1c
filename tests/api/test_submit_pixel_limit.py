"""MAX_PIXELS is enforced at submit from the image header alone (413 image_too_large, nothing stored or queued);
a header Pillow cannot read is still accepted when the sniffer recognised the bytes: the job reports it."""
from __future__ import annotations

from pathlib import Path

import pytest

from face3d.api.submission import require_pixel_limit
from face3d.shared import jobs
from face3d.shared.errors import ErrorCode, Face3dError
from tests.api.fakes import assert_problem, post_photo
from tests.stubs import RecordingQueue

OBAMA_PIXELS = 910 * 1137


@pytest.fixture
def small_limit_client(session_factory, local_storage, tmp_path):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    queue = RecordingQueue()
    settings = load_settings(env={"MAX_PIXELS": str(OBAMA_PIXELS - 1)}, data_dir=tmp_path / "data")
    app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=queue)
    app.testing = True
    return app.test_client(), queue


def test_photo_over_max_pixels_is_refused_at_submit(small_limit_client, obama_bytes, session_factory, local_storage):
    client, queue = small_limit_client
    body = assert_problem(post_photo(client, obama_bytes), 413, "image_too_large")
    assert f"910x1137 = {OBAMA_PIXELS} pixels" in body["detail"] and str(OBAMA_PIXELS - 1) in body["detail"]
    assert queue.sent == []
    assert jobs.list_jobs(session_factory, limit=10)[0] == []
    assert not [path for path in local_storage.root.rglob("*") if path.is_file()], "nothing may be stored"


def test_photo_at_the_limit_is_accepted(session_factory, local_storage, tmp_path, obama_bytes):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    settings = load_settings(env={"MAX_PIXELS": str(OBAMA_PIXELS)}, data_dir=tmp_path / "data")
    app = create_app(settings, session_factory=session_factory, storage=local_storage,
                     queue=RecordingQueue())
    assert post_photo(app.test_client(), obama_bytes).status_code == 202


def test_unreadable_header_is_left_to_the_job(small_limit_client, obama_bytes):
    """JPEG magic, then garbage: the sniffer accepts it, Pillow cannot read a size, so the job decides (202)."""
    client, queue = small_limit_client
    response = post_photo(client, b"\xff\xd8\xff" + bytes(range(256)) * 4, name="garbage.jpg")
    assert response.status_code == 202, response.get_data(as_text=True)
    assert queue.sent == [(response.get_json()["id"], "cpu")]


def test_header_read_does_not_decode_the_photo(faces_dir: Path, monkeypatch):
    """The 12.6 MP photo is checked from its header alone: decoding pixels at submit would make the API slow."""
    from PIL import Image, ImageFile

    def refuse_decode(self, *args, **kwargs):
        raise AssertionError("the submit check decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_decode)
    monkeypatch.setattr(Image.Image, "load", refuse_decode)
    data = (faces_dir / "g_large_4352px.jpg").read_bytes()
    require_pixel_limit(data, 50_000_000)
    with pytest.raises(Face3dError) as caught:
        require_pixel_limit(data, 4352 * 2903 - 1)
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE


def test_a_photo_whose_decode_would_not_fit_the_workers_budget_is_refused_at_submit(session_factory, local_storage,
                                                                                    tmp_path):
    """Within MAX_PIXELS but over DECODE_MEMORY_BYTES decoded (a PNG is decoded at full size before it is
    reduced): 413 at once, not a job the worker fails later."""
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from tests.engine.test_decode_memory import flat_png

    settings = load_settings(env={"DECODE_MEMORY_BYTES": str(16 * 1024 ** 2)}, data_dir=tmp_path / "data")
    app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=RecordingQueue())
    body = assert_problem(post_photo(app.test_client(), flat_png(3000, 3000, 16, 6, 4), name="big.png"), 413,
                          "image_too_large")
    assert "DECODE_MEMORY_BYTES" in body["detail"]
    assert jobs.list_jobs(session_factory, limit=10)[0] == []
