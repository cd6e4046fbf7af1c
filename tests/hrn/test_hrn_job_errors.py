"""HRN's failures as a job sees them: the task body (worker.tasks.run_job) with an HrnEngine whose runner fails."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from face3d.shared import jobs
from face3d.shared.config import load_settings
from face3d.shared.engines.hrn import HrnEngine
from face3d.shared.engines.hrn.failures import HrnNoFace
from face3d.shared.engines.hrn.process import HrnProcess
from face3d.shared.storage import input_key
from face3d.worker.context import WorkerContext
from face3d.worker.tasks import run_job
from tests.stubs import RecordingQueue

PHOTO = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "a_frontal_obama.jpg"


@pytest.fixture
def ctx(session_factory, local_storage, tmp_path):
    return WorkerContext(load_settings({}, data_dir=tmp_path), session_factory, local_storage, RecordingQueue())


@pytest.fixture
def hrn_failing_with(monkeypatch):
    import face3d.shared.engines as engines

    def install(error: BaseException) -> None:
        def runner(crop):
            raise error

        engine = HrnEngine(detector=lambda photo, options: [((300.0, 200.0, 700.0, 700.0), 0.9)],
                           enhancer=lambda photo: (photo, False), runner=runner, process=HrnProcess())
        monkeypatch.setitem(engines._ENGINES, "hrn", engine)

    return install


def hrn_job(ctx) -> str:
    job_id = uuid.uuid4().hex
    key = input_key(job_id, PHOTO.name)
    ctx.storage.put_bytes(key, PHOTO.read_bytes())
    jobs.create_job(ctx.session_factory, engine="hrn", options={"video": False}, input_name=PHOTO.name,
                    input_key=key, input_size=PHOTO.stat().st_size, input_sha256="0" * 64, job_id=job_id)
    return job_id


def test_cuda_out_of_memory_fails_the_job_as_engine_error_with_the_cause(ctx, hrn_failing_with):
    hrn_failing_with(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.77 GiB total)"))
    job_id = hrn_job(ctx)
    assert run_job(ctx, job_id, worker="w") == "failed"
    job = jobs.get_job(ctx.session_factory, job_id)
    assert job.error_code == "engine_error"
    assert "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" in job.error_message


def test_the_soft_time_limit_inside_hrn_fails_the_job_as_timeout(ctx, hrn_failing_with):
    hrn_failing_with(SoftTimeLimitExceeded())
    job_id = hrn_job(ctx)
    assert run_job(ctx, job_id, worker="w") == "failed"
    assert jobs.get_job(ctx.session_factory, job_id).error_code == "timeout"


def test_hrns_no_face_fails_the_job_as_no_face_detected(ctx, hrn_failing_with):
    hrn_failing_with(HrnNoFace("HRN found no face (KeyError in forward)"))
    job_id = hrn_job(ctx)
    assert run_job(ctx, job_id, worker="w") == "failed"
    assert jobs.get_job(ctx.session_factory, job_id).error_code == "no_face_detected"
