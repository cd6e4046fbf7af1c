"""The task body (run_job) in-process, with scripted engines for the outcomes a real photo can't trigger on cue:
cancel at a stage boundary, redelivery after a lost worker, unexpected errors, unreachable storage."""
from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from face3d.shared import jobs, models
from face3d.shared.config import load_settings
from face3d.shared.errors import NoFaceError, StorageUnavailable
from face3d.shared.states import JobState
from face3d.shared.storage import S3Storage, input_key, make_s3_client
from tests.stubs import RecordingQueue
from face3d.worker.context import WorkerContext
from face3d.worker.tasks import ProgressReporter, options_for_engine, run_job

PHOTO = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "g_grayscale_hopper.jpg"


class ScriptedEngine:
    """Stands in for a real engine: runs ``before`` then reports a stage, then does ``action``."""

    name = "scripted"

    def __init__(self, action, before=lambda: None):
        self.action, self.before = action, before

    def load(self) -> None:
        pass

    def reconstruct(self, photo, options, progress=None):
        self.before()
        progress("detect")
        return self.action()


@pytest.fixture
def ctx(session_factory, local_storage, tmp_path):
    return WorkerContext(load_settings({}, data_dir=tmp_path, job_max_attempts=2), session_factory, local_storage,
                         RecordingQueue())


@pytest.fixture
def use_engine(monkeypatch):
    import face3d.shared.engines as engines

    def install(engine: ScriptedEngine) -> None:
        monkeypatch.setitem(engines._ENGINES, "scripted", engine)

    return install


def queued_job(ctx, options=None):
    job_id = uuid.uuid4().hex
    key = input_key(job_id, PHOTO.name)
    ctx.storage.put_bytes(key, PHOTO.read_bytes())
    job, _ = jobs.create_job(ctx.session_factory, engine="scripted", options=options or {}, input_name=PHOTO.name,
                               input_key=key, input_size=PHOTO.stat().st_size, input_sha256="0" * 64, job_id=job_id)
    return job


def test_no_face_fails_without_retry(ctx, use_engine):
    use_engine(ScriptedEngine(lambda: (_ for _ in ()).throw(NoFaceError("no face in the photo"))))
    job = queued_job(ctx)
    assert run_job(ctx, job.id, worker="w") == "failed"
    failed = jobs.get_job(ctx.session_factory, job.id)
    assert (failed.state, failed.error_code, failed.attempts) == (JobState.FAILED, "no_face_detected", 1)


def test_cancel_requested_while_running_stops_at_next_stage(ctx, use_engine):
    reached = []
    job = queued_job(ctx)
    use_engine(ScriptedEngine(lambda: reached.append("after detect"),
                              before=lambda: jobs.cancel_job(ctx.session_factory, job.id)))
    assert run_job(ctx, job.id, worker="w") == "canceled"
    assert reached == []
    assert jobs.get_job(ctx.session_factory, job.id).state is JobState.CANCELED


def test_unexpected_error_fails_internal_with_message(ctx, use_engine):
    use_engine(ScriptedEngine(lambda: (_ for _ in ()).throw(RuntimeError("kaboom"))))
    job = queued_job(ctx)
    assert run_job(ctx, job.id, worker="w") == "failed"
    failed = jobs.get_job(ctx.session_factory, job.id)
    assert failed.error_code == "internal" and "kaboom" in failed.error_message


def test_unknown_engine_fails_engine_unavailable(ctx):
    job = queued_job(ctx)
    with ctx.session_factory.begin() as session:
        session.get(models.Job, job.id).engine = "warp-drive"
    assert run_job(ctx, job.id, worker="w") == "failed"
    assert jobs.get_job(ctx.session_factory, job.id).error_code == "engine_unavailable"


def test_bad_options_fail_validation(ctx, use_engine):
    use_engine(ScriptedEngine(lambda: None))
    job = queued_job(ctx, options={"frames": 3, "colour": "blue"})
    assert run_job(ctx, job.id, worker="w") == "failed"
    failed = jobs.get_job(ctx.session_factory, job.id)
    assert failed.error_code == "validation_failed" and "colour" in failed.error_message


def test_finished_job_message_is_ignored(ctx, use_engine):
    use_engine(ScriptedEngine(lambda: pytest.fail("must not run")))
    job = queued_job(ctx)
    jobs.mark_running(ctx.session_factory, job.id, "w0")
    jobs.mark_succeeded(ctx.session_factory, job.id, {"faces": [], "artifacts": []})
    before = jobs.get_job(ctx.session_factory, job.id)
    for redelivered in (False, True):
        assert run_job(ctx, job.id, worker="w", redelivered=redelivered) == "ignored"
    after = jobs.get_job(ctx.session_factory, job.id)
    assert (after.state, after.attempts, after.updated_at) == (before.state, before.attempts, before.updated_at)


def test_redelivery_after_lost_worker_runs_again_then_gives_up(ctx, use_engine):
    use_engine(ScriptedEngine(lambda: (_ for _ in ()).throw(NoFaceError("none"))))
    sf = ctx.session_factory
    job = queued_job(ctx)
    jobs.mark_running(sf, job.id, "dead-worker")
    assert run_job(ctx, job.id, worker="w", redelivered=False) == "ignored"     # not a redelivery: leave it
    assert run_job(ctx, job.id, worker="w", redelivered=True) == "failed"       # attempt 2 ran
    assert jobs.get_job(sf, job.id).attempts == 2

    second = queued_job(ctx)
    jobs.mark_running(sf, second.id, "dead-1")
    jobs.requeue(sf, second.id)
    jobs.mark_running(sf, second.id, "dead-2")                                  # attempts == max (2)
    assert run_job(ctx, second.id, worker="w", redelivered=True) == "failed"       # worker_lost: webhook due
    lost = jobs.get_job(sf, second.id)
    assert (lost.state, lost.error_code) == (JobState.FAILED, "worker_lost")


def test_unreachable_storage_never_fails_the_job_and_hands_it_back(ctx, use_engine):
    use_engine(ScriptedEngine(lambda: pytest.fail("must not run")))
    job = queued_job(ctx)
    broken = S3Storage(make_s3_client("http://127.0.0.1:9", "us-east-1"), "bucket")
    patient = dataclasses.replace(ctx.settings, outage_retry_s=1.0)
    broken_ctx = WorkerContext(patient, ctx.session_factory, broken, ctx.queue)
    assert run_job(broken_ctx, job.id, worker="w") == "deferred"
    after = jobs.get_job(ctx.session_factory, job.id)
    assert (after.state, after.error_code, after.worker) == (JobState.QUEUED, None, None)   # the sweeper resends it


class FlakyStorage:
    """The real storage, unreachable for the first ``failures`` calls of each method (an outage that ends)."""

    def __init__(self, storage, failures: int) -> None:
        self.storage, self.failures, self.calls = storage, failures, 0

    def __getattr__(self, name):
        method = getattr(self.storage, name)

        def call(*args, **kwargs):
            self.calls += 1
            if self.calls <= self.failures:
                raise StorageUnavailable(f"storage unreachable (stub, call {self.calls})")
            return method(*args, **kwargs)
        return call


def test_a_storage_outage_that_ends_is_waited_out(ctx, use_engine):
    use_engine(ScriptedEngine(lambda: (_ for _ in ()).throw(NoFaceError("no face"))))
    job = queued_job(ctx)
    flaky = WorkerContext(ctx.settings, ctx.session_factory, FlakyStorage(ctx.storage, failures=5), ctx.queue)
    assert run_job(flaky, job.id, worker="w") == "failed"       # its own fault, after the outage: no face
    assert jobs.get_job(ctx.session_factory, job.id).error_code == "no_face_detected"


def test_progress_reporter_grows_and_records_stage(session_factory, ctx):
    job = queued_job(ctx)
    jobs.mark_running(session_factory, job.id, "w")
    report = ProgressReporter(session_factory, job.id)
    seen = []
    for stage in ("decode", "detect", "texture"):
        report(stage)
        seen.append(jobs.get_job(session_factory, job.id).progress)
    assert seen == sorted(seen) and 0 < seen[0] < seen[-1] < 1
    assert jobs.get_job(session_factory, job.id).stage == "texture"


def test_options_for_engine_accepts_known_fields():
    assert options_for_engine({"frames": 5, "video": False}).frames == 5
    assert options_for_engine(None).texture_size > 0
