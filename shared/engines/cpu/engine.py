"""CpuEngine: MediaPipe and a pose-robust 3DMM model find and fit every face; our own mesh, pose and texture."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from face3d.shared.engines.base import Face, Options, Photo, ProgressFn, Reconstruction
from face3d.shared.engines.cpu import compose, lowlight, visibility
from face3d.shared.engines.cpu.detect import Detector
from face3d.shared.engines.cpu.finding import FaceFinder, Found, side_of
from face3d.shared.engines.cpu.fitting import FaceFit, fuse, robust_fit
from face3d.shared.engines.cpu.landmarks import LandmarkModel, Roi
from face3d.shared.engines.cpu.fusion import mediapipe_68
from face3d.shared.engines.cpu.mesh import posed
from face3d.shared.engines.cpu.morph import default_morph
from face3d.shared.engines.cpu.occlusion import eye_disagreement
from face3d.shared.engines.cpu.quiet import native_noise_filtered
from face3d.shared.engines.cpu.robust import CROP_SCALES, RobustModel
from face3d.shared.engines.cpu.texture import TextureResult, bake
from face3d.shared.engines.cpu.topology import dense_topology
from face3d.shared.errors import EngineUnavailable, NoFaceError
from face3d.shared.threads import parallel_imap

SMALL_FACE_PX = 40
EXTREME_YAW = 45.0
MIRRORED_SHARE = 0.20       # more of the surface colour than this from the mirror image: "texture_mirrored"
MANY_FACES = 4               # past this many faces each gets one crop (and its mirror) instead of three


@dataclass(frozen=True)
class DetectedFace:
    """A found face without mesh or texture (what other engines use to find faces)."""

    bbox: tuple[float, float, float, float]      # x0, y0, x1, y1, photo pixels (landmark extent)
    score: float                                  # detector confidence 0..1
    landmarks_2d: np.ndarray                      # (468, 2) float32 photo pixels


class CpuEngine:
    name = "cpu"

    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._finder: FaceFinder | None = None
        self._robust: RobustModel | None = None
        self._closables: list = []
        # MediaPipe's graphs serve one caller at a time: jobs sharing this engine (a threads pool) find faces in turn.
        self._graphs_lock = threading.Lock()

    def load(self) -> None:
        if self._finder is not None:
            return
        try:
            with native_noise_filtered():
                detector, landmarks = Detector(min_score=0.3), LandmarkModel()
                self._robust = RobustModel(threads=self._threads)
                self._closables = [detector, landmarks]
                self._finder = FaceFinder(detector, landmarks, self._robust)
                self._warm_up(detector, landmarks)
        except (ImportError, OSError, RuntimeError) as exc:
            raise EngineUnavailable(f"cannot load the CPU engine's models: {exc}") from exc

    def _warm_up(self, detector: Detector, landmarks: LandmarkModel) -> None:
        """Graphs open (and log) on their first packet and caches fill on first use: do both at load time."""
        blank = np.zeros((64, 64, 3), dtype=np.uint8)
        for lane in range(detector.lanes):
            for model in ("short", "full"):
                detector.run(blank, model, lane)
        landmarks.fit(blank, Roi(32.0, 32.0, 48.0, 0.0))
        self._robust.fit(blank, (0.0, 0.0, 64.0, 64.0))
        dense_topology()
        default_morph()
        compose.warm_up()
        visibility.warm_up()

    def close(self) -> None:
        for model in self._closables:
            model.close()
        self._finder = self._robust = None
        self._closables = []

    def reconstruct(self, photo: Photo, options: Options | None = None, progress: ProgressFn | None = None) -> Reconstruction:
        options = options or Options()
        progress = progress or (lambda stage: None)
        self.load()
        timings: dict[str, float] = {}
        warnings: list[str] = []

        started = _stage(progress, "detect")
        rgb, light_warnings = _lit(photo.rgb)
        warnings += light_warnings
        found = self._faces(rgb, options, warnings)
        if not found:
            raise NoFaceError(f"{photo.name}: no face found")
        timings["detect"] = _elapsed(started)

        started = _stage(progress, "landmarks")
        fits = self._fits(rgb, found)
        timings["landmarks"] = _elapsed(started)

        started = _stage(progress, "mesh")
        fused = [fuse(f, fit) for f, fit in zip(found, fits)]
        timings["mesh"] = _elapsed(started)

        started = _stage(progress, "texture")
        # Faces bake on the job's threads (numpy, OpenCV and the blend kernel release the GIL for most of it).
        faces = list(parallel_imap(lambda face: self._face(*face, rgb, options, warnings),
                                   [(i, f, fit) for i, (f, fit) in enumerate(zip(found, fused))]))
        timings["texture"] = _elapsed(started)

        result_photo = Photo(rgb=rgb, name=photo.name) if light_warnings else photo
        return Reconstruction(engine=self.name, width=photo.width, height=photo.height, faces=faces,
                              warnings=warnings, timings_ms=timings, photo=result_photo)

    def detect_faces(self, photo: Photo, options: Options | None = None) -> list[DetectedFace]:
        """The faces reconstruct would return (same enhancement, detection, limits and order), without mesh or
        texture; an empty list when there is none."""
        options = options or Options()
        self.load()
        rgb, _ = _lit(photo.rgb)
        found = self._faces(rgb, options, [])
        detected = []
        for f in found:
            points = f.fit.points if f.fit is not None else self._projected_points(rgb, f)
            detected.append(DetectedFace(f.box, float(f.score), points[:, :2].astype(np.float32)))
        return detected

    def _projected_points(self, rgb: np.ndarray, found: Found) -> np.ndarray:
        """468 points of a face only the robust model saw: its fused mesh's landmarks, projected."""
        fitted = fuse(found, self._fits(rgb, [found])[0])
        return fitted.geometry.camera.project(fitted.geometry.landmarks_3d)

    def _faces(self, rgb: np.ndarray, options: Options, warnings: list[str]) -> list[Found]:
        """Faces at least min_face_px, at most max_faces (most prominent), left to right."""
        with self._graphs_lock:
            found = [f for f in self._finder.find(rgb) if f.side >= options.min_face_px]
        if len(found) > options.max_faces:
            warnings.append("max_faces_reached")
            found = sorted(found, key=lambda f: -f.score * side_of(f.box))[: options.max_faces]
        return sorted(found, key=lambda f: (f.box[0] + f.box[2]) / 2)

    def _fits(self, rgb: np.ndarray, found: list[Found]):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)       # ~70x a numpy channel-reversing copy
        scales = CROP_SCALES if len(found) <= MANY_FACES else (1.0,)
        return [robust_fit(self._robust, bgr, f, scales) for f in found]

    def _face(self, index: int, found: Found, fit: FaceFit, rgb: np.ndarray, options: Options,
              shared_warnings: list[str]) -> Face:
        g = fit.geometry
        texture = None
        if options.needs_texture:
            texture = bake(rgb, posed(g), options.texture_size, _disagreement(found, fit))
        box = _box_of(fit.landmarks_68) if found.fit is None else found.box
        warnings = [w for w in shared_warnings if w == "low_light_enhanced"]
        warnings += _face_warnings(box, rgb.shape, g.yaw, texture)
        return Face(
            index=index, bbox=box, score=float(found.score),
            yaw=g.yaw, pitch=g.pitch, roll=g.roll,
            vertices=g.vertices, triangles=g.triangles, uvs=g.uvs, normals=g.normals,
            texture=None if texture is None else texture.image,
            texture_synthesized=0.0 if texture is None else texture.synthesized,
            landmarks_2d=g.camera.project(g.landmarks_3d).astype(np.float32),
            landmarks_3d=g.landmarks_3d.astype(np.float32), camera=g.camera, warnings=warnings,
            landmarks_68=fit.landmarks_68.astype(np.float32), landmarks_68_3d=fit.landmarks_68_3d.astype(np.float32),
            extra=_extra(found, fit) | ({} if texture is None else _occlusion_extra(texture)),
            texture_mirrored=None if texture is None else round(texture.mirrored, 4),
            occluded=None if texture is None else round(texture.occluded, 4),
        )


def _face_warnings(box: tuple[float, ...], shape: tuple[int, ...], yaw: float,
                   texture: TextureResult | None) -> list[str]:
    warnings = []
    if side_of(box) < SMALL_FACE_PX:
        warnings.append("small_face")
    if _touches_edge(box, shape):
        warnings.append("face_cut_by_edge")
    if abs(yaw) > EXTREME_YAW:
        warnings.append("extreme_yaw")
    if texture is not None and texture.occluded > 0:
        warnings.append("occluded")
    if texture is not None and texture.mirrored > MIRRORED_SHARE:
        warnings.append("texture_mirrored")
    return warnings


def _occlusion_extra(texture: TextureResult) -> dict[str, object]:
    return {"occlusion_cues": {k: round(v, 4) for k, v in texture.occlusion.cues.items()},
            "occluded_features": list(texture.occlusion.features)}


def _disagreement(found: Found, fit: FaceFit) -> tuple[float, float] | None:
    return None if found.fit is None else eye_disagreement(mediapipe_68(found.fit.points), fit.robust.points)


def _extra(found: Found, fit: FaceFit) -> dict[str, object]:
    """What the benchmarks and the calibration read: each model's own answer next to the fused one."""
    extra: dict[str, object] = {"landmarks": "fused" if found.fit is not None else "robust",
                                "mediapipe_shape_weight": round(fit.mediapipe_weight, 3),
                                "model_fit_rms_mm": round(fit.geometry.fit.rms * 1000, 2),
                                "robust_68": fit.robust.points[:, :2], "robust_rotation": fit.robust.rotation}
    if found.fit is not None:
        extra["presence"] = round(found.fit.presence, 4)
        extra["mediapipe_points"] = found.fit.points
    return extra


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


def _box_of(points: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _touches_edge(box: tuple[float, float, float, float], shape: tuple[int, ...]) -> bool:
    height, width = shape[:2]
    return box[0] <= 1 or box[1] <= 1 or box[2] >= width - 2 or box[3] >= height - 2
