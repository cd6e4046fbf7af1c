"""CpuEngine: MediaPipe detection + landmarks, then our own mesh, pose and texture (see the package docstring)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from face3d.shared.engines.base import Face, Options, Photo, ProgressFn, Reconstruction
from face3d.shared.engines.cpu import lowlight
from face3d.shared.engines.cpu.detect import Candidate, Detector, iou, suppress
from face3d.shared.engines.cpu.landmarks import LandmarkFit, LandmarkModel, Roi, roi_from_box, roi_from_landmarks
from face3d.shared.engines.cpu.mesh import FaceGeometry, build, posed
from face3d.shared.engines.cpu.quiet import native_noise_filtered
from face3d.shared.engines.cpu.texture import bake
from face3d.shared.errors import EngineUnavailable, NoFaceError

DETECT_MAX_SIDE = 1280       # detection runs on a copy no larger than this; landmarks and texture use full resolution
TINY_FACE_PX = 24            # below this (detector box, photo pixels) the landmark presence score is noise
TINY_MIN_SUPPORT = 2         # tiny faces are verified by detector agreement instead: boxes from >= 2 views ...
TINY_MIN_SCORE = 0.75        # ... the best of them at least this confident
MIN_DETECT_PX = 8            # BlazeFace boxes smaller than this are hands, badges and buttons
MIN_PRESENCE = 0.5           # landmark model's face-presence score, on both passes
MAX_SHAPE_RMS = 0.009        # metres (real faces <= 7.6 mm on ../shared/faces): residual of the landmarks against the mean face after similarity alignment
SMALL_FACE_PX = 40
EXTREME_YAW = 45.0
LOOSE_ROI = 2.2              # retry crop scale (profiles: the detector box covers only half the head)


@dataclass(frozen=True)
class DetectedFace:
    """A verified face without mesh or texture (what other engines use to find faces)."""

    bbox: tuple[float, float, float, float]      # x0, y0, x1, y1, photo pixels (landmark extent)
    score: float                                  # detector confidence 0..1
    landmarks_2d: np.ndarray                      # (468, 2) float32 photo pixels


@dataclass
class Found:
    fit: LandmarkFit
    score: float
    box: tuple[float, float, float, float]     # landmark extent, photo pixels
    geometry: FaceGeometry
    detector_side: float = 0.0

    @property
    def side(self) -> float:
        """Both boxes under-read a 12 px face by a pixel or two; the larger is the fairer size for min_face_px."""
        return max(_side(self.box), self.detector_side)


class CpuEngine:
    name = "cpu"

    def __init__(self) -> None:
        self._detector: Detector | None = None
        self._landmarks: LandmarkModel | None = None

    def load(self) -> None:
        if self._detector is not None:
            return
        try:
            from face3d.shared.engines.cpu.topology import canonical, dense_topology

            canonical()
            dense_topology()
            with native_noise_filtered():
                self._detector = Detector(min_score=0.3)
                self._landmarks = LandmarkModel()
                self._warm_up()          # graphs open (and log) on their first packet, so open them here
        except (ImportError, OSError, RuntimeError) as exc:
            raise EngineUnavailable(f"cannot load the MediaPipe models: {exc}") from exc

    def _warm_up(self) -> None:
        blank = np.zeros((64, 64, 3), dtype=np.uint8)
        for model in ("short", "full"):
            self._detector.run(blank, model)
        self._landmarks.fit(blank, Roi(32.0, 32.0, 48.0, 0.0))

    def close(self) -> None:
        for model in (self._detector, self._landmarks):
            if model is not None:
                model.close()
        self._detector = self._landmarks = None

    def reconstruct(self, photo: Photo, options: Options | None = None, progress: ProgressFn | None = None) -> Reconstruction:
        options = options or Options()
        progress = progress or (lambda stage: None)
        self.load()
        timings: dict[str, float] = {}
        warnings: list[str] = []

        started = _stage(progress, "detect")
        rgb, light_warnings = _lit(photo.rgb)
        warnings += light_warnings
        candidates = self._candidates(rgb, mirrored=False)
        timings["detect"] = _elapsed(started)

        started = _stage(progress, "landmarks")
        found = self._find(rgb, candidates, options, warnings)
        if not found:
            raise NoFaceError(f"{photo.name}: no face found")
        timings["landmarks"] = _elapsed(started)

        started = _stage(progress, "mesh")
        for f in found:
            f.geometry = build(f.fit.points)
        timings["mesh"] = _elapsed(started)

        started = _stage(progress, "texture")
        faces = [self._face(i, f, rgb, options, warnings) for i, f in enumerate(found)]
        timings["texture"] = _elapsed(started)

        result_photo = Photo(rgb=rgb, name=photo.name) if light_warnings else photo
        return Reconstruction(engine=self.name, width=photo.width, height=photo.height, faces=faces,
                              warnings=warnings, timings_ms=timings, photo=result_photo)

    def detect_faces(self, photo: Photo, options: Options | None = None) -> list[DetectedFace]:
        """The faces reconstruct would return (same enhancement, verification, limits and order), without mesh or
        texture; an empty list when there is none."""
        options = options or Options()
        self.load()
        rgb, _ = _lit(photo.rgb)
        found = self._find(rgb, self._candidates(rgb, mirrored=False), options, [])
        return [DetectedFace(f.box, float(f.score), f.fit.points[:, :2].astype(np.float32)) for f in found]

    def _find(self, rgb: np.ndarray, candidates: list[Candidate], options: Options, warnings: list[str]) -> list[Found]:
        """Verified faces at least min_face_px, at most max_faces (most prominent), left to right."""
        found = self._verify(rgb, candidates)
        if not found:                        # profiles and hard cases: mirrored pass and looser crops
            found = self._verify(rgb, self._candidates(rgb, mirrored=True), loose=True)
        found = [f for f in found if f.side >= options.min_face_px]
        if len(found) > options.max_faces:
            warnings.append("max_faces_reached")
            found = sorted(found, key=lambda f: -f.score * _side(f.box))[: options.max_faces]
        return sorted(found, key=lambda f: (f.box[0] + f.box[2]) / 2)

    def _candidates(self, rgb: np.ndarray, mirrored: bool) -> list[Candidate]:
        scale = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
        small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        found = self._detector.detect(small, tiles=not mirrored, mirrored=mirrored)
        found = suppress([c.scaled(1.0 / scale) for c in found], threshold=0.5)
        return [c for c in found if c.side >= MIN_DETECT_PX]

    def _verify(self, rgb: np.ndarray, candidates: list[Candidate], loose: bool = False) -> list[Found]:
        found: list[Found] = []
        for candidate in candidates:
            if any(_covers(f.box, candidate.box) for f in found):
                continue
            tiny = candidate.side < TINY_FACE_PX
            fit = self._tiny_fit(rgb, candidate) if tiny else self._landmark_fit(rgb, candidate, loose)
            if fit is None:
                continue
            box = _landmark_box(fit.points)
            if any(iou(box, f.box) > 0.4 or _inside_fraction(box, f.box) > 0.6 for f in found):
                continue
            geometry = build(fit.points)
            if geometry.fit.rms > MAX_SHAPE_RMS:
                continue
            found.append(Found(fit, candidate.score, box, geometry, candidate.side))
        return found

    def _landmark_fit(self, rgb: np.ndarray, candidate: Candidate, loose: bool) -> LandmarkFit | None:
        roi = roi_from_box(candidate.box, candidate.keypoints[:2])
        rois = [roi] + ([Roi(roi.cx, roi.cy, roi.size * LOOSE_ROI / 1.5, roi.angle)] if loose else [])
        for first_roi in rois:
            first = self._landmarks.fit(rgb, first_roi)
            if first.presence < MIN_PRESENCE:
                continue
            second = self._landmarks.fit(rgb, roi_from_landmarks(first.points))
            if second.presence >= MIN_PRESENCE:
                return second
        return None

    def _tiny_fit(self, rgb: np.ndarray, candidate: Candidate) -> LandmarkFit | None:
        """A 10-20 px face: trust the detectors' agreement; keep the most confident of four landmark fits."""
        if candidate.support < TINY_MIN_SUPPORT or candidate.score < TINY_MIN_SCORE:
            return None
        roi = roi_from_box(candidate.box, candidate.keypoints[:2])
        fits = []
        for factor in (1.0, 1.2):
            first = self._landmarks.fit(rgb, Roi(roi.cx, roi.cy, roi.size * factor, roi.angle))
            fits += [first, self._landmarks.fit(rgb, roi_from_landmarks(first.points))]
        return max(fits, key=lambda fit: fit.presence)

    def _face(self, index: int, found: Found, rgb: np.ndarray, options: Options, shared_warnings: list[str]) -> Face:
        g = found.geometry
        texture = bake(rgb, posed(g), options.texture_size)
        warnings = [w for w in shared_warnings if w == "low_light_enhanced"]
        side = _side(found.box)
        if side < SMALL_FACE_PX:
            warnings.append("small_face")
        if _touches_edge(found.box, rgb.shape):
            warnings.append("face_cut_by_edge")
        if abs(g.yaw) > EXTREME_YAW:
            warnings.append("extreme_yaw")
        if texture.mirrored:
            warnings.append("texture_mirrored")
        return Face(
            index=index, bbox=tuple(float(v) for v in found.box), score=float(found.score),
            yaw=g.yaw, pitch=g.pitch, roll=g.roll,
            vertices=g.vertices, triangles=g.triangles, uvs=g.uvs, normals=g.normals,
            texture=texture.image, texture_synthesized=texture.synthesized,
            landmarks_2d=found.fit.points[:, :2].astype(np.float32), landmarks_3d=g.landmarks_3d.astype(np.float32),
            camera=g.camera, warnings=warnings,
            extra={"presence": found.fit.presence, "shape_rms_mm": round(g.fit.rms * 1000, 2)},
        )


def _lit(rgb: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The photo to work on: CLAHE + gamma when it is dark."""
    light = lowlight.measure(rgb)
    if not light.is_low:
        return rgb, []
    return lowlight.enhance(rgb, light), ["low_light_enhanced"]


def _stage(progress: ProgressFn, stage: str) -> float:
    progress(stage)
    return time.perf_counter()


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


def _side(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], box[3] - box[1])


def _landmark_box(points: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _covers(face_box: tuple[float, ...], box: tuple[float, ...]) -> bool:
    """A candidate box whose centre lies inside an accepted face is that face again (skip the landmark call)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    inside = face_box[0] <= cx <= face_box[2] and face_box[1] <= cy <= face_box[3]
    return inside and 0.5 < _side(box) / max(_side(face_box), 1e-6) < 2.0


def _inside_fraction(box: tuple[float, ...], other: tuple[float, ...]) -> float:
    """How much of ``box`` lies inside ``other`` (a hand or an eye on a face is not a second face)."""
    ix = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    iy = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return ix * iy / area if area > 0 else 1.0


def _touches_edge(box: tuple[float, float, float, float], shape: tuple[int, ...]) -> bool:
    height, width = shape[:2]
    return box[0] <= 1 or box[1] <= 1 or box[2] >= width - 2 or box[3] >= height - 2
