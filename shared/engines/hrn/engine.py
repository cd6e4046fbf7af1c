"""HRN (ModelScope ``damo/cv_resnet50_face-reconstruction``, revision v2.0.0-HRN) as a multi-face engine.

HRN reconstructs one face per call, so we find every face with the CPU engine's detector, cut a crop around each,
run HRN per crop and map each result back to photo pixels (``convert.py``). CUDA only.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

from face3d.shared.engines.base import Face, Options, Photo, ProgressFn, Reconstruction
from face3d.shared.engines.hrn import runner as hrn_runner
from face3d.shared.engines.hrn.convert import convert_hrn_output
from face3d.shared.engines.hrn.crops import Box, crop_for_hrn
from face3d.shared.errors import EngineUnavailable, Face3dError, NoFaceError

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
    ) -> None:
        self._model_dir = model_dir
        self._detector = detector
        self._enhancer = enhancer
        self._environment = environment or Environment()
        self._runner = runner

    def load(self) -> None:
        """Check packages, CUDA and weights (in that order) and build the pipeline; EngineUnavailable says which."""
        if self._runner is not None:
            return
        missing = self._environment.missing_modules()
        if missing:
            raise EngineUnavailable(
                f"HRN engine needs packages that are not installed: {', '.join(missing)} "
                "(use the GPU image, infra/Dockerfile.gpu, or install face3d[gpu] plus nvdiffrast and pytorch3d)"
            )
        if not self._environment.cuda_available():
            raise EngineUnavailable("HRN engine needs a CUDA GPU, and torch sees none")
        source = hrn_runner.model_source(self._model_dir)
        self._runner = self._environment.build_runner(source)

    def reconstruct(self, photo: Photo, options: Options, progress: ProgressFn | None = None) -> Reconstruction:
        report = progress or (lambda _stage: None)
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
            raise NoFaceError(f"{photo.name}: HRN could not reconstruct any of the {len(detections)} faces found")
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
            try:
                raw, pose = self._runner(crop)
            except Face3dError:
                raise
            except Exception as exc:  # HRN fails by KeyError/IndexError when its own detector sees no face
                log.warning("HRN skipped the face at %s: %r", tuple(round(v) for v in box), exc)
                warnings.append("face_skipped")
                continue
            faces.append(convert_hrn_output(raw, crop_box, pose, index=len(faces), bbox=box, score=score,
                                            texture_size=options.texture_size))
        timings["reconstruct"] = _ms_since(started)
        return faces, warnings


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


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)
