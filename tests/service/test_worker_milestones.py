"""Results as soon as they exist: a real job (CPU engine, real photo) stores its mesh first, then vis.png, then the
videos; every write the worker makes keeps the job moving forward; a client can wait for the mesh alone.

Each write of the job row (progress, partial result) is recorded as the database has it right after the write, so
the order is checked on what any reader could have seen, not on timing luck.
"""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import imageio_ffmpeg
import pytest

from face3d.shared import jobs
from face3d.shared.config import load_settings
from face3d.shared.storage import input_key
from face3d.worker.context import WorkerContext
from face3d.worker.tasks import run_job
from tests.stubs import RecordingQueue

FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces"
MESH = ("face_0.obj", "face_0.mtl", "face_0_texture.png", "face_0.glb", "result.json")
SMALL = {"frames": 6, "render_size": 128, "texture_size": 256}


@pytest.fixture
def ctx(session_factory, local_storage, tmp_path):
    return WorkerContext(load_settings({}, data_dir=tmp_path), session_factory, local_storage, RecordingQueue())


def queued_job(ctx, photo: str, options: dict) -> str:
    data = (FACES / photo).read_bytes()
    job_id = uuid.uuid4().hex
    key = input_key(job_id, photo)
    ctx.storage.put_bytes(key, data)
    jobs.create_job(ctx.session_factory, engine="cpu", options=options, input_name=photo, input_key=key,
                    input_size=len(data), input_sha256="2" * 64, job_id=job_id)
    return job_id


class Snapshots(list):
    """(state, stage, progress, ready names, planned names, milestones) of the row after each write."""

    def __init__(self, sf) -> None:
        super().__init__()
        self.sf = sf

    def record(self, job_id: str) -> None:
        job = jobs.get_job(self.sf, job_id)
        artifacts = (job.result or {}).get("artifacts", [])
        self.append((job.state.value, job.stage, job.progress, [a["name"] for a in artifacts if a["ready"]],
                     [a["name"] for a in artifacts if not a["ready"]], (job.result or {}).get("milestones", [])))


@pytest.fixture
def snapshots(ctx, monkeypatch):
    seen = Snapshots(ctx.session_factory)
    for verb in ("report_progress", "record_partial_result"):
        real = getattr(jobs, verb)

        def spy(sf, job_id, *args, _real=real):
            answer = _real(sf, job_id, *args)
            seen.record(job_id)
            return answer

        monkeypatch.setattr(jobs, verb, spy)
    return seen


def test_artifacts_appear_mesh_first_and_the_job_never_goes_back(ctx, snapshots):
    job_id = queued_job(ctx, "a_frontal_obama.jpg", {**SMALL, "outputs": ["json", "obj", "glb", "vis", "video", "gif"]})
    assert run_job(ctx, job_id, worker="w") == "succeeded"
    snapshots.record(job_id)                                   # the final row, after mark_succeeded
    progress = [snap[2] for snap in snapshots]
    assert progress == sorted(progress), progress               # monotonic
    assert all(p < 1.0 for p in progress[:-1]) and progress[-1] == 1.0
    assert snapshots[-1][0] == "succeeded" and snapshots[-1][4] == []
    ready_sets = [set(snap[3]) for snap in snapshots]
    assert all(earlier <= later for earlier, later in zip(ready_sets, ready_sets[1:]))     # never un-ready
    first_seen = {}
    for index, ready in enumerate(ready_sets):
        for name in ready:
            first_seen.setdefault(name, index)
    assert max(first_seen[name] for name in MESH) < first_seen["vis.png"] < first_seen["turntable.mp4"]
    assert first_seen["turntable.mp4"] <= first_seen["turntable.gif"]
    mesh_ready = next(snap for snap in snapshots if "mesh" in snap[5])
    assert mesh_ready[0] == "running" and {"vis.png", "turntable.mp4"} <= set(mesh_ready[4])   # planned, not ready
    stages = [snap[1] for snap in snapshots]
    assert stages.index("render") < stages.index("encode") and stages[-1] == "done"
    timings = jobs.get_job(ctx.session_factory, job_id).result["timings_ms"]
    assert timings["mesh_ready"] > timings["export"] > 0          # from the job's start to the mesh stored


def test_render_progress_moves_with_the_frames(ctx, snapshots):
    job_id = queued_job(ctx, "a_frontal_obama.jpg", {**SMALL, "frames": 120, "outputs": ["json", "glb", "video"]})
    assert run_job(ctx, job_id, worker="w") == "succeeded"
    rendering = [snap[2] for snap in snapshots if snap[1] == "render"]
    assert len(rendering) >= 2 and rendering[-1] > rendering[0]         # not stuck at one value during the render


def test_group_photo_gets_one_turntable_per_face_with_the_asked_frames(ctx, tmp_path):
    job_id = queued_job(ctx, "c_group_t1_six.jpg", {**SMALL, "frames": 7, "outputs": ["json", "video"]})
    assert run_job(ctx, job_id, worker="w") == "succeeded"
    result = jobs.get_job(ctx.session_factory, job_id).result
    artifacts = {a["name"]: a for a in result["artifacts"]}
    faces = len(result["faces"])
    assert faces >= 2
    for name in ["turntable.mp4", *(f"turntable_face{i}.mp4" for i in range(faces))]:
        path = tmp_path / name
        path.write_bytes(ctx.storage.get_bytes(artifacts[name]["key"]))
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        assert tuple(meta["size"]) == (128, 128)
        assert sum(1 for _ in reader) == 7, name
    assert f"turntable_face{faces}.mp4" not in artifacts


def test_no_face_videos_leaves_only_the_tiled_clip(ctx):
    job_id = queued_job(ctx, "c_group_t1_six.jpg", {**SMALL, "face_videos": False, "outputs": ["json", "video"]})
    assert run_job(ctx, job_id, worker="w") == "succeeded"
    names = {a["name"] for a in jobs.get_job(ctx.session_factory, job_id).result["artifacts"]}
    assert "turntable.mp4" in names and not any(name.startswith("turntable_face") for name in names)


def test_a_job_failing_after_its_mesh_was_stored_leaves_no_output(ctx, monkeypatch):
    import face3d.shared.artifacts.vis as vis

    def broken(recon):
        raise RuntimeError("vis exploded")

    monkeypatch.setattr(vis, "draw_vis", broken)
    job_id = queued_job(ctx, "a_frontal_obama.jpg", SMALL)
    assert run_job(ctx, job_id, worker="w") == "failed"
    job = jobs.get_job(ctx.session_factory, job_id)
    assert job.error_code == "internal" and "vis exploded" in job.error_message
    assert not (job.result or {}).get("artifacts")                 # the mesh was stored, then removed
    outputs = Path(ctx.storage.root) / "jobs" / job_id / "output"
    assert not outputs.exists() or not any(outputs.iterdir())


def test_prefer_wait_for_the_mesh_returns_before_the_video_is_done(ctx, settings_app):
    client = settings_app.test_client()
    job_id = queued_job(ctx, "a_frontal_obama.jpg", {"frames": 360, "sweep_degrees": 360, "texture_size": 256})
    worker = threading.Thread(target=run_job, args=(ctx, job_id), kwargs={"worker": "w"})
    start = time.monotonic()
    worker.start()
    try:
        response = client.get(f"/v1/jobs/{job_id}?wait_for=mesh", headers={"Prefer": "wait=60"})
        waited = time.monotonic() - start
        body = response.get_json()
        assert response.status_code == 200 and response.headers["Preference-Applied"] == "wait=60"
        assert body["state"] == "running", f"the mesh wait only returned at {body['state']} after {waited:.1f} s"
        assert "mesh" in body["milestones"]
        ready = {a["name"]: a["ready"] for a in body["artifacts"]}
        assert all(ready[name] for name in MESH) and ready["turntable.mp4"] is False
        assert client.get(f"/v1/jobs/{job_id}/artifacts/face_0.glb").status_code == 200
        assert client.get(f"/v1/jobs/{job_id}/artifacts/turntable.mp4").status_code == 404
    finally:
        worker.join(timeout=300)
    final = client.get(f"/v1/jobs/{job_id}").get_json()
    assert final["state"] == "succeeded" and final["progress"] == 1.0
    assert all(a["ready"] for a in final["artifacts"])
    assert client.get(f"/v1/jobs/{job_id}/artifacts/turntable.mp4").status_code == 200


def test_wait_for_must_name_a_milestone(settings_app, ctx):
    job_id = queued_job(ctx, "a_frontal_obama.jpg", {})
    response = settings_app.test_client().get(f"/v1/jobs/{job_id}?wait_for=everything", headers={"Prefer": "wait=1"})
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_request"


@pytest.fixture
def settings_app(ctx):
    from face3d.api.app import create_app

    app = create_app(ctx.settings, session_factory=ctx.session_factory, storage=ctx.storage, queue=ctx.queue)
    app.testing = True
    return app
