"""Honest errors: only HRN's no-face signals skip a face; CUDA and other failures fail the job as engine_error with
their cause; Celery's soft time limit always reaches the task; a failed load is not retried; a failure after a
success poisons the process."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from face3d.api.problems import http_status
from tests.hrn.fake_hrn_pipeline import FakeHrnPipeline
from tests.hrn.hrn_synthetic import align_for, hrn_result
from face3d.shared.engines.base import Options, Photo
from face3d.shared.engines.hrn import HrnEngine
from face3d.shared.engines.hrn.engine import Environment
from face3d.shared.engines.hrn.failures import HrnNoFace, describe, no_face_signal
from face3d.shared.engines.hrn.process import HrnProcess
from face3d.shared.engines.hrn.runner import PipelineRunner
from face3d.shared.errors import EngineError, EngineUnavailable, ErrorCode, NoFaceError

CROP = np.full((600, 600, 3), 128, dtype=np.uint8)
CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"
BOXES = [(100.0, 100.0, 300.0, 300.0), (500.0, 100.0, 700.0, 300.0)]


@pytest.fixture(autouse=True)
def no_modelscope_alignment(monkeypatch):
    """PipelineRunner's read_data wrapper computes HRN's alignment with modelscope's align_img: not installed here."""
    monkeypatch.setattr("face3d.shared.engines.hrn.runner._alignment", lambda img, lm, lm3d_std: np.zeros(5))


@pytest.mark.parametrize("failure", ["retinaface", "face_alignment", "scale_zero", "second_detection"])
def test_hrns_own_no_face_signals_become_hrn_no_face(failure):
    with pytest.raises(HrnNoFace):
        PipelineRunner(FakeHrnPipeline(failure))(CROP)


@pytest.mark.parametrize("failure, kind", [("cuda_oom", RuntimeError), ("key_error_elsewhere", KeyError),
                                           ("type_error_elsewhere", TypeError)])
def test_other_failures_inside_hrn_propagate_unchanged(failure, kind):
    with pytest.raises(kind) as caught:
        PipelineRunner(FakeHrnPipeline(failure))(CROP)
    assert no_face_signal(caught.value) is None


def test_the_cause_keeps_its_type_and_first_line():
    assert describe(RuntimeError(f"{CUDA_OOM}\nIf reserved ...")) == f"RuntimeError: {CUDA_OOM}"
    assert describe(KeyError("input_img")) == "KeyError: 'input_img'"


def face_at_crop_centre(crop: np.ndarray):
    height, width = crop.shape[:2]
    return hrn_result(align=align_for((width / 2, height / 2), min(width, height) / 2.2, (width, height)))[:2]


def engine_with(runner, boxes=BOXES, process=None) -> HrnEngine:
    detections = [(box, 0.9) for box in boxes]
    return HrnEngine(detector=lambda p, o: detections, enhancer=lambda p: (p, False), runner=runner,
                     process=process or HrnProcess())


def scripted(*outcomes):
    """A runner that, call by call, returns a face at the crop centre ("face") or raises the given exception."""
    remaining = list(outcomes)

    def run(crop):
        outcome = remaining.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return face_at_crop_centre(crop)

    return run


PHOTO = Photo(rgb=np.full((900, 900, 3), 90, dtype=np.uint8), name="two.png")


def test_a_cuda_oom_inside_the_runner_is_an_engine_error_with_its_cause_not_no_face():
    engine = engine_with(scripted(RuntimeError(f"{CUDA_OOM} (GPU 0; 15.77 GiB total)\nIf reserved ...")))
    with pytest.raises(EngineError) as caught:
        engine.reconstruct(PHOTO, Options(texture_size=32))
    assert not isinstance(caught.value, NoFaceError)
    assert caught.value.code is ErrorCode.ENGINE_ERROR and http_status(caught.value.code) == 500
    assert f"RuntimeError: {CUDA_OOM}" in caught.value.message and "(100, 100, 300, 300)" in caught.value.message


def test_soft_time_limit_inside_the_runner_reaches_the_task():
    limit = SoftTimeLimitExceeded()
    with pytest.raises(SoftTimeLimitExceeded) as caught:
        engine_with(scripted(limit)).reconstruct(PHOTO, Options(texture_size=32))
    assert caught.value is limit


def test_no_face_from_hrn_skips_that_face_only():
    result = engine_with(scripted(HrnNoFace("KeyError in forward"), "face")).reconstruct(PHOTO, Options(texture_size=32))
    assert [f.bbox for f in result.faces] == [BOXES[1]] and result.warnings == ["face_skipped"]
    with pytest.raises(NoFaceError, match="face_skipped"):
        engine_with(scripted(HrnNoFace("x"), HrnNoFace("y"))).reconstruct(PHOTO, Options(texture_size=32))


def test_an_engine_error_after_a_success_poisons_the_process_and_later_jobs_are_refused():
    process = HrnProcess()
    engine = engine_with(scripted("face", RuntimeError("CUDA error: an illegal memory access was encountered")),
                         process=process)
    with pytest.raises(EngineError, match="illegal memory access.*can no longer run HRN"):
        engine.reconstruct(PHOTO, Options(texture_size=32))
    assert process.poisoned and "illegal memory access" in process.reason
    with pytest.raises(EngineUnavailable, match="CUDA context .* unusable"):
        engine_with(scripted("face", "face"), process=process).reconstruct(PHOTO, Options(texture_size=32))


def test_an_engine_error_before_any_success_does_not_poison():
    process = HrnProcess()
    with pytest.raises(EngineError) as caught:
        engine_with(scripted(RuntimeError("nvdiffrast: ninja build failed")), process=process).reconstruct(
            PHOTO, Options(texture_size=32))
    assert "can no longer run HRN" not in caught.value.message and not process.poisoned


def counting_environment(build):
    calls = []

    def build_runner(source):
        calls.append(source)
        return build()

    return Environment(missing_modules=lambda: [], cuda_available=lambda: True, build_runner=build_runner), calls


def test_a_failed_load_is_remembered_and_not_tried_again():
    def fail():
        raise EngineUnavailable("HRN weights incomplete in /models/x: missing pytorch_model.pt")

    environment, calls = counting_environment(fail)
    process = HrnProcess()
    for _ in range(3):
        with pytest.raises(EngineUnavailable, match="missing pytorch_model.pt"):
            HrnEngine(environment=environment, process=process).load()
    assert len(calls) == 1 and process.state == "failed"


def test_an_unexpected_load_failure_is_remembered_as_engine_unavailable_with_its_cause():
    def fail():
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")

    environment, calls = counting_environment(fail)
    process = HrnProcess()
    for _ in range(2):
        with pytest.raises(EngineUnavailable, match="RuntimeError: CUDA driver version is insufficient"):
            HrnEngine(environment=environment, process=process).load()
    assert len(calls) == 1


def test_a_time_limit_during_the_load_propagates_and_the_next_job_tries_again():
    outcomes = [SoftTimeLimitExceeded(), object()]
    environment, calls = counting_environment(lambda: _raise_or_return(outcomes.pop(0)))
    process = HrnProcess()
    with pytest.raises(SoftTimeLimitExceeded):
        HrnEngine(environment=environment, process=process).load()
    HrnEngine(environment=environment, process=process).load()
    assert len(calls) == 2 and process.state == "ready"


def _raise_or_return(outcome):
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def test_engines_of_one_process_share_one_pipeline_even_while_it_is_being_built():
    """The warm-up thread builds; a job arriving meanwhile waits for that pipeline instead of building another."""
    environment, calls = counting_environment(lambda: time.sleep(0.3) or object())
    process = HrnProcess()
    warm_up = threading.Thread(target=HrnEngine(environment=environment, process=process).load)
    warm_up.start()
    time.sleep(0.05)
    job_engine = HrnEngine(environment=environment, process=process)
    job_engine.load()
    warm_up.join()
    assert len(calls) == 1 and job_engine._runner is process.load(lambda: None)
