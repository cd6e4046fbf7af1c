"""Both storage backends behave the same; S3 runs against a real (moto) server and its presigned URLs work."""
from __future__ import annotations

import pytest
import requests

from face3d.shared.errors import ErrorCode, Face3dError, NotFound, StorageUnavailable
from face3d.shared.storage import LocalStorage, S3Storage, input_key, job_prefix, make_s3_client, output_key


@pytest.fixture(params=["local", "s3"])
def storage(request):
    return request.getfixturevalue(f"{request.param}_storage")


def stored(storage, key: str) -> bytes | None:
    """The object's bytes, or None when there is none."""
    try:
        return storage.get_bytes(key)
    except NotFound:
        return None


def test_put_get_and_stream(storage, tmp_path):
    key = output_key("job1", "face_0.glb")
    assert stored(storage, key) is None
    storage.put_bytes(key, b"glTF-bytes", content_type="model/gltf-binary")
    assert storage.get_bytes(key) == b"glTF-bytes"
    source = tmp_path / "vis.png"
    source.write_bytes(b"\x89PNG" + bytes(range(256)))
    storage.put_file(output_key("job1", "vis.png"), source)
    assert storage.get_bytes(output_key("job1", "vis.png")) == source.read_bytes()
    with storage.open_stream(key) as stream:
        assert stream.read() == b"glTF-bytes"


def test_overwrite_replaces_content(storage):
    key = input_key("job2", "a.jpg")
    storage.put_bytes(key, b"one")
    storage.put_bytes(key, b"two!")
    assert storage.get_bytes(key) == b"two!"


def test_missing_key_is_not_found(storage):
    for call in (storage.get_bytes, storage.open_stream):
        with pytest.raises(NotFound):
            call("jobs/none/output/x.png")


def test_delete_prefix_removes_only_that_job(storage):
    for job in ("job3", "job30"):
        storage.put_bytes(input_key(job, "in.jpg"), b"i")
        storage.put_bytes(output_key(job, "result.json"), b"{}")
    assert storage.delete_prefix(job_prefix("job3")) == 2
    assert stored(storage, input_key("job3", "in.jpg")) is None
    assert stored(storage, input_key("job30", "in.jpg")) == b"i"
    assert stored(storage, output_key("job30", "result.json")) == b"{}"
    assert storage.delete_prefix(job_prefix("nothing-here")) == 0


def test_check_passes(storage):
    storage.check()


def test_keys_are_sanitised():
    assert input_key("abc", "../../etc/passwd") == "jobs/abc/input/passwd"
    assert input_key("abc", "my photo (1).JPG") == "jobs/abc/input/my_photo_1_.JPG"
    assert input_key("abc", "") == "jobs/abc/input/upload"
    assert output_key("abc", "..") == "jobs/abc/output/artifact"


def test_local_refuses_escaping_keys(local_storage):
    with pytest.raises(Face3dError) as caught:
        local_storage.put_bytes("jobs/../../outside.txt", b"x")
    assert caught.value.code is ErrorCode.INVALID_REQUEST


def test_local_url_is_none_so_api_streams(local_storage):
    local_storage.put_bytes("jobs/j/output/a.txt", b"a")
    assert local_storage.url_for("jobs/j/output/a.txt") is None


def test_presigned_url_downloads_the_bytes(s3_storage):
    key = output_key("job4", "turntable.gif")
    payload = b"GIF89a" + bytes(range(200))
    s3_storage.put_bytes(key, payload, content_type="image/gif")
    url = s3_storage.url_for(key, filename="turntable.gif")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == payload
    assert 'filename="turntable.gif"' in response.headers.get("Content-Disposition", "")
    assert response.headers["Content-Type"] == "image/gif"


def test_s3_unreachable_is_storage_unavailable():
    client = make_s3_client("http://127.0.0.1:9", "us-east-1")    # the discard port: nothing listens
    storage = S3Storage(client, "bucket")
    with pytest.raises(StorageUnavailable):
        storage.check()
    with pytest.raises(StorageUnavailable):
        storage.put_bytes("jobs/a/input/b.jpg", b"x")


def test_local_check_fails_on_unwritable_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageUnavailable):
        LocalStorage(blocker / "storage").check()


def test_presigned_url_uses_the_public_endpoint_when_set(s3_server, tmp_path):
    """Workers reach storage at an internal address (compose's minio:9000); download links must use the public one."""
    from face3d.shared.config import load_settings
    from face3d.shared.storage import make_storage
    from tests.conftest import S3_BUCKET

    public = s3_server.replace("127.0.0.1", "localhost")
    settings = load_settings({}, data_dir=tmp_path, storage_backend="s3", s3_bucket=S3_BUCKET,
                             s3_endpoint_url=s3_server, s3_public_endpoint_url=public)
    storage = make_storage(settings)
    storage.put_bytes("jobs/pub/output/result.json", b"{}")
    url = storage.url_for("jobs/pub/output/result.json")
    assert url.startswith(public + "/")
    assert requests.get(url, timeout=10).content == b"{}"
