"""Result reuse stays within one owner (API key), and a reused result owns its own copy of the files: key B's
identical photo never gets key A's job id, and deleting the job whose result was reused breaks nothing."""
from __future__ import annotations

import hashlib
import uuid

from face3d.shared import batches, jobs
from face3d.shared.batches import NewItem
from face3d.shared.storage import input_key, job_prefix, output_key

PHOTO = b"\xff\xd8\xff\xe0 the same photo bytes"


def _settings(tmp_path):
    from face3d.shared.config import load_settings

    return load_settings(env={}, data_dir=tmp_path / "data")


def _context(tmp_path, session_factory, storage):
    from face3d.worker.context import WorkerContext

    return WorkerContext(_settings(tmp_path), session_factory, storage, queue=None)


def _succeeded_job(session_factory, storage, owner: str) -> str:
    """A finished batch item of ``owner`` with one artifact in its own folder."""
    batch = batches.create_batch(session_factory, engine="cpu", options={}, source="client", owner_id=owner)
    job_id = uuid.uuid4().hex
    storage.put_bytes(input_key(job_id, "a.jpg"), PHOTO)
    storage.put_bytes(output_key(job_id, "face_0.glb"), b"glTF artifact")
    batches.add_items(session_factory, batch, [NewItem("a.jpg", input_key(job_id, "a.jpg"), len(PHOTO),
                                                       hashlib.sha256(PHOTO).hexdigest(), job_id)])
    artifact = {"name": "face_0.glb", "key": output_key(job_id, "face_0.glb"), "size": 13,
                "content_type": "model/gltf-binary"}
    assert jobs.mark_running(session_factory, job_id, "w") and jobs.mark_succeeded(
        session_factory, job_id, {"faces": [], "artifacts": [artifact]})
    return job_id


def _queued_item(session_factory, storage, owner: str) -> str:
    batch = batches.create_batch(session_factory, engine="cpu", options={}, source="client", owner_id=owner)
    job_id = uuid.uuid4().hex
    storage.put_bytes(input_key(job_id, "b.jpg"), PHOTO)
    batches.add_items(session_factory, batch, [NewItem("b.jpg", input_key(job_id, "b.jpg"), len(PHOTO),
                                                       hashlib.sha256(PHOTO).hexdigest(), job_id)])
    return job_id


def test_another_keys_identical_photo_is_not_reused(tmp_path, session_factory, local_storage):
    from face3d.worker.batch_tasks import prepare_item

    _succeeded_job(session_factory, local_storage, owner="key_a")
    job_b = _queued_item(session_factory, local_storage, owner="key_b")
    assert prepare_item(_context(tmp_path, session_factory, local_storage), job_b, "w") is None   # runs the engine
    assert jobs.get_job(session_factory, job_b).state.value == "queued"
    assert jobs.get_job(session_factory, job_b).result is None


def test_same_key_reuse_survives_deleting_the_earlier_job(tmp_path, session_factory, local_storage):
    from face3d.worker.batch_tasks import prepare_item

    job_a = _succeeded_job(session_factory, local_storage, owner="key_a")
    job_a2 = _queued_item(session_factory, local_storage, owner="key_a")
    assert prepare_item(_context(tmp_path, session_factory, local_storage), job_a2, "w") == "reused"
    reused = jobs.get_job(session_factory, job_a2)
    assert reused.result["reused_from"] == job_a
    artifact = reused.result["artifacts"][0]
    assert artifact["key"].startswith(job_prefix(job_a2))           # its own copy, not the other job's file
    jobs.delete_job(session_factory, job_a)
    local_storage.delete_prefix(job_prefix(job_a))
    assert local_storage.get_bytes(artifact["key"]) == b"glTF artifact"


def test_open_api_reuses_only_open_api_results(session_factory, local_storage):
    _succeeded_job(session_factory, local_storage, owner="key_a")
    sha = hashlib.sha256(PHOTO).hexdigest()
    assert jobs.find_succeeded_by_content(session_factory, sha, "cpu", {}, None) is None
    assert jobs.find_succeeded_by_content(session_factory, sha, "cpu", {}, "key_b") is None
    assert jobs.find_succeeded_by_content(session_factory, sha, "cpu", {}, "key_a") is not None


def test_s3_copy_is_independent_of_its_source(s3_storage):
    s3_storage.put_bytes("jobs/a/output/x.glb", b"data")
    s3_storage.copy("jobs/a/output/x.glb", "jobs/b/output/x.glb")
    s3_storage.delete_prefix("jobs/a/")
    assert s3_storage.get_bytes("jobs/b/output/x.glb") == b"data"
