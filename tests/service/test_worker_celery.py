"""A real Celery worker process on the production stack (Redis broker, PostgreSQL, S3 server) running jobs on real
photos: a face photo succeeds with its artifacts stored, a no-face photo fails no_face_detected, and a message for a
job that already succeeded changes nothing."""
from __future__ import annotations

import json
import uuid

import pytest

from face3d.shared import jobs
from face3d.shared.config import load_settings
from face3d.shared.db import make_engine, make_session_factory
from face3d.shared.migrations import upgrade
from face3d.shared.states import JobState
from face3d.shared.storage import make_storage
from face3d.shared.queue import JobQueue
from tests.service.workers import FACES, describe, submit, wait_terminal, worker_process

FAST = {"video": False, "texture_size": 256}


@pytest.fixture(scope="module")
def stack(postgres_url, redis_url, s3_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("celery-worker")
    env = {
        "FACE3D_DATA_DIR": str(folder), "DATABASE_URL": postgres_url, "BROKER_URL": redis_url,
        "STORAGE_BACKEND": "s3", "S3_ENDPOINT_URL": s3_server, "S3_BUCKET": "face3d-test",
        "S3_PREFIX": f"worker-{uuid.uuid4().hex[:6]}/", "JOB_TIME_LIMIT_S": "300",
    }
    upgrade(postgres_url)
    settings = load_settings(env)
    engine = make_engine(postgres_url)
    sf = make_session_factory(engine)
    log_path = folder / "worker.log"
    with worker_process(env, log_path):
        yield sf, make_storage(settings), JobQueue.from_settings(settings), log_path
    engine.dispose()


def test_face_photo_succeeds_with_artifacts_in_s3(stack):
    sf, storage, queue, log = stack
    job_id = submit(sf, storage, queue, FACES / "a_frontal_darkskin_woman.jpg", FAST)
    job = wait_terminal(sf, job_id, log)
    assert job.state is JobState.SUCCEEDED, describe(job, log)
    assert job.attempts == 1 and job.progress == 1.0 and job.worker.startswith("face3d-cpu")
    assert len(job.result["faces"]) == 1 and job.result["faces"][0]["score"] > 0.5
    names = {artifact["name"] for artifact in job.result["artifacts"]}
    assert {"result.json", "face_0.obj", "face_0.glb"} <= names
    for artifact in job.result["artifacts"]:
        assert len(storage.get_bytes(artifact["key"])) == artifact["size"] > 0
    document = json.loads(storage.get_bytes(f"jobs/{job_id}/output/result.json"))
    assert len(document["faces"]) == 1


def test_no_face_photo_fails_no_face_detected(stack):
    sf, storage, queue, log = stack
    job = wait_terminal(sf, submit(sf, storage, queue, FACES / "f_noface_grass.jpg", FAST), log)
    assert (job.state, job.error_code) == (JobState.FAILED, "no_face_detected"), describe(job, log)


def test_message_for_succeeded_job_is_ignored(stack):
    sf, storage, queue, log = stack
    done_id = submit_without_sending(sf)
    jobs.mark_running(sf, done_id, "earlier-worker")
    jobs.mark_succeeded(sf, done_id, {"faces": [], "artifacts": [], "marker": "kept"})
    before = jobs.get_job(sf, done_id)
    queue.send_job(done_id, "cpu")
    # The solo worker takes messages in order: once the next job is finished, the first message was handled.
    follower = wait_terminal(sf, submit(sf, storage, queue, FACES / "f_noface_grass.jpg", FAST), log)
    assert follower.is_terminal
    after = jobs.get_job(sf, done_id)
    assert after.result == {"faces": [], "artifacts": [], "marker": "kept"}
    assert (after.state, after.attempts, after.worker, after.updated_at) == (
        JobState.SUCCEEDED, 1, "earlier-worker", before.updated_at)
    assert f"job {done_id}: not queued, message ignored" in log.read_text(errors="replace")


def submit_without_sending(sf) -> str:
    job, _ = jobs.create_job(sf, engine="cpu", options={}, input_name="x.jpg", input_key="jobs/x/input/x.jpg",
                               input_size=1, input_sha256="0" * 64)
    return job.id
