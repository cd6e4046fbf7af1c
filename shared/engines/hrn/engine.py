"""HRN (ModelScope ``damo/cv_resnet50_face-reconstruction``, revision v2.0.0-HRN) as a multi-face engine.

HRN reconstructs one face per call, so we find every face with the CPU engine's detector, cut a crop around each,
run HRN per crop, check that it reconstructed that face (``matching.py``) and map each result back to photo pixels
(``convert.py``). CUDA only.

Errors: only HRN's own no-face signals (``failures.py``) skip a face; anything else HRN raises fails the job as
``engine_error`` with its cause, and Celery's soft time limit always reaches the task.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

from face3d.shared.engines.base import Face, Options, Photo, ProgressFn, Reconstruction
from face3d.shared.engines.hrn import runner as hrn_runner
from face3d.shared.engines.hrn.convert import CropBox, HrnPose, convert_hrn_output
from face3d.shared.engines.hrn.crops import Box, crop_for_hrn
from face3d.shared.engines.hrn.failures import HrnNoFace, describe, is_time_limit
from face3d.shared.engines.hrn.matching import fill_outside, is_target
from face3d.shared.engines.hrn.process import PROCESS, HrnProcess
from face3d.shared.errors import EngineError, EngineUnavailable, Face3dError, NoFaceError

HrnResult = tuple[dict, HrnPose]
Detection = tuple[Box, float]                                  # (x0, y0, x1, y1) photo pixels, score 0..1
FaceDetector = Callable[[Photo, Options], list[Detection]]
LowLightEnhancer = Callable[[Photo], tuple[Photo, bool]]       # -> (photo to use, whether it was enhanced)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Environment:
    """How ``load`` checks the machine; injectable so the refusal paths are testable without a GPU."""

    missing_modules: Callable[[], list[str]] = hrn_runner.missing_modules
    cuda_available: Callable[[], bool] = hrn_runner.cuda_available
    build_runner: Callable[[str], hrn_runner.Runner] = hrn_runner.build_pipeline_runner


class HrnEngine:
    name = "hrn"

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        detector: FaceDetector | None = None,
        enhancer: LowLightEnhancer | None = None,
        environment: Environment | None = None,
        runner: hrn_runner.Runner | None = None,
        process: HrnProcess | None = None,
    ) -> None:
        self._model_dir = model_dir
        self._detector = detector
        self._enhancer = enhancer
        self._environment = environment or Environment()
        self._runner = runner
        # The real machine's engines share one pipeline per process; injected environments get their own state.
        self._process = process or (PROCESS if environment is None and runner is None else HrnProcess())

    def load(self) -> None:
        """The process's pipeline, built on first use (or by the worker's warm-up); a failure is remembered."""
        if self._runner is None:
            self._runner = self._process.load(self._build_runner)

    def _build_runner(self) -> hrn_runner.Runner:
        """Check packages, CUDA and weights (in that order) and build the pipeline; EngineUnavailable says which."""
        missing = self._environment.missing_modules()
        if missing:
            raise EngineUnavailable(
                f"HRN engine needs packages that are not installed: {', '.join(missing)} "
                "(use the GPU image, infra/Dockerfile.gpu, or install face3d[gpu] plus nvdiffrast and pytorch3d)"
            )
        if not self._environment.cuda_available():
            raise EngineUnavailable("HRN engine needs a CUDA GPU, and torch sees none")
        return self._environment.build_runner(hrn_runner.model_source(self._model_dir))

    def reconstruct(self, photo: Photo, options: Options, progress: ProgressFn | None = None) -> Reconstruction:
        report = progress or (lambda _stage: None)
        self._process.refuse_if_poisoned()
        self.load()
        timings: dict[str, float] = {}
        started = time.perf_counter()
        photo, enhanced = (self._enhancer or cpu_low_light)(photo)
        report("detect")
        detections, warnings = _usable(self._detect(photo, options), options)
        timings["detect"] = _ms_since(started)
        if not detections:
            raise NoFaceError(f"{photo.name}: no face found")
        faces, skipped = self._reconstruct_each(photo, detections, options, report, timings)
        warnings += skipped
        if not faces:
            raise NoFaceError(f"{photo.name}: HRN could not reconstruct any of the {len(detections)} faces found "
                              f"({', '.join(sorted(set(skipped)))})")
        if enhanced:
            warnings.insert(0, "low_light_enhanced")
            for face in faces:
                face.warnings.append("low_light_enhanced")
        return Reconstruction(engine=self.name, width=photo.width, height=photo.height, faces=faces,
                              warnings=warnings, timings_ms=timings, photo=photo)

    def _detect(self, photo: Photo, options: Options) -> list[Detection]:
        if self._detector is None:
            self._detector = cpu_engine_detector()
        return self._detector(photo, options)

    def _reconstruct_each(self, photo: Photo, detections: list[Detection], options: Options,
                          report: ProgressFn, timings: dict[str, float]) -> tuple[list[Face], list[str]]:
        faces: list[Face] = []
        warnings: list[str] = []
        started = time.perf_counter()
        for box, score in detections:
            report("reconstruct")          # once per face: a canceled job stops between faces
            crop, crop_box = crop_for_hrn(photo.rgb, box)
            result, skipped = self._reconstruct_target(crop, crop_box, box)
            if result is None:
                warnings.append(skipped)
                continue
            raw, pose = result
            faces.append(convert_hrn_output(raw, crop_box, pose, index=len(faces), bbox=box, score=score,
                                            texture_size=options.texture_size))
            self._process.face_done()
        timings["reconstruct"] = _ms_since(started)
        return faces, warnings

    def _reconstruct_target(self, crop, crop_box: CropBox, box: Box) -> tuple[HrnResult | None, str]:
        """HRN's result for the face in ``box``, or (None, warning): no face, or another face twice."""
        result = self._run_hrn(crop, box)
        if result is None:
            return None, "face_skipped"
        if is_target(*result, crop_box, box):
            return result, ""
        log.info("HRN reconstructed a neighbour of the face at %s: retrying with the rest painted over", _rounded(box))
        result = self._run_hrn(fill_outside(crop, crop_box, box), box)
        if result is not None and is_target(*result, crop_box, box):
            return result, ""
        log.warning("HRN did not reconstruct the face at %s, twice: skipped (hrn_face_mismatch)", _rounded(box))
        return None, "hrn_face_mismatch"

    def _run_hrn(self, crop, box: Box) -> HrnResult | None:
        """One HRN call: None when HRN found no face; any other failure raises EngineError with its cause."""
        try:
            return self._runner(crop)
        except HrnNoFace as exc:
            log.warning("HRN skipped the face at %s: %s", _rounded(box), exc)
            return None
        except Face3dError:
            raise
        except Exception as exc:
            if is_time_limit(exc):
                raise
            cause = describe(exc)
            poisoned = self._process.engine_failed(cause)
            log.error("HRN failed on the face at %s: %s%s", _rounded(box), cause, " (process poisoned)" * poisoned)
            suffix = "; this worker process can no longer run HRN (a prefork pool replaces it)" if poisoned else ""
            raise EngineError(f"HRN failed on the face at {_rounded(box)}: {cause}{suffix}") from exc


def _usable(detections: list[Detection], options: Options) -> tuple[list[Detection], list[str]]:
    """Big enough, best first, at most max_faces; then left to right so face indices read like the photo."""
    big = [d for d in detections if min(d[0][2] - d[0][0], d[0][3] - d[0][1]) >= options.min_face_px]
    best = sorted(big, key=lambda d: -d[1])[: options.max_faces]
    warnings = ["max_faces_reached"] if len(big) > options.max_faces else []
    return sorted(best, key=lambda d: ((d[0][0] + d[0][2]) / 2, d[0][1])), warnings


def cpu_engine_detector() -> FaceDetector:
    """Faces as the CPU engine finds and verifies them (its detection-only call: no mesh, no texture)."""
    from face3d.shared.engines.cpu import CpuEngine

    cpu = CpuEngine()
    cpu.load()

    def detect(photo: Photo, options: Options) -> list[Detection]:
        return [(face.bbox, face.score) for face in cpu.detect_faces(photo, options)]

    return detect


def cpu_low_light(photo: Photo) -> tuple[Photo, bool]:
    """The CPU engine's low-light test and enhancement (CLAHE + gamma), shared so both engines see the same photo."""
    from face3d.shared.engines.cpu import lowlight

    light = lowlight.measure(photo.rgb)
    if not light.is_low:
        return photo, False
    return Photo(rgb=lowlight.enhance(photo.rgb, light), name=photo.name), True


def _rounded(box: Box) -> tuple[int, ...]:
    return tuple(round(v) for v in box)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)
