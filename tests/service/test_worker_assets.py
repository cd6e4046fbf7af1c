"""A job asking for printable and coloured meshes, run by the worker's task body with the real CPU engine: the files
are stored with their media types; a stored option the engine does not know fails the job as validation_failed."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from face3d.shared import jobs
from face3d.shared.config import load_settings
from face3d.shared.storage import input_key
from face3d.worker.context import WorkerContext
from face3d.worker.tasks import options_for_engine, run_job
from tests.stubs import RecordingQueue

PHOTO = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "a_frontal_obama.jpg"


@pytest.fixture
def ctx(session_factory, local_storage, tmp_path):
    return WorkerContext(load_settings({}, data_dir=tmp_path), session_factory, local_storage, RecordingQueue())


def queued_job(ctx, options: dict):
    job_id = uuid.uuid4().hex
    key = input_key(job_id, PHOTO.name)
    ctx.storage.put_bytes(key, PHOTO.read_bytes())
    job, _ = jobs.create_job(ctx.session_factory, engine="cpu", options=options, input_name=PHOTO.name,
                             input_key=key, input_size=PHOTO.stat().st_size, input_sha256="1" * 64, job_id=job_id)
    return job


def test_a_job_writes_the_formats_it_asks_for(ctx):
    job = queued_job(ctx, {"outputs": ["json", "stl", "3mf", "ply"], "texture_size": 256, "units": "mm"})
    assert run_job(ctx, job.id, worker="w") == "succeeded"
    artifacts = {a["name"]: a for a in jobs.get_job(ctx.session_factory, job.id).result["artifacts"]}
    assert set(artifacts) == {"face_0.stl", "face_0.3mf", "face_0.ply", "result.json"}
    assert artifacts["face_0.stl"]["content_type"] == "model/stl"
    assert artifacts["face_0.3mf"]["content_type"] == "model/3mf"
    assert ctx.storage.get_bytes(artifacts["face_0.stl"]["key"])[:80].decode().strip() == "face3d face 0; units: mm"


def test_unknown_stored_output_fails_validation(ctx):
    job = queued_job(ctx, {"outputs": ["fbx"]})
    assert run_job(ctx, job.id, worker="w") == "failed"
    failed = jobs.get_job(ctx.session_factory, job.id)
    assert failed.error_code == "validation_failed" and "fbx" in failed.error_message


def test_stored_outputs_become_the_engine_options():
    assert options_for_engine({"outputs": ["stl"], "solid": True}).outputs == {"json", "stl"}
