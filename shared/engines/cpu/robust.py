"""The pose-robust face model: 3DDFA_V2's MobileNet-0.5 3DMM regressor and its FaceBoxes detector (ONNX).

MediaPipe's landmark model is trained on mostly frontal faces: past ~60 degrees of yaw it rejects the face or
collapses its points onto the visible half. 3DDFA_V2 (Guo et al., ECCV 2020) regresses 62 3DMM parameters (pose,
40 shape, 10 expression) from a 120x120 crop and was trained on 300W-LP's synthesised large poses, so its 68 points
keep the hidden jaw where it really is. FaceBoxes (Zhang et al., 2017; the detector 3DDFA_V2 ships) confirms profile
boxes MediaPipe rejects. Weights and their provenance: weights/README.md.

Each fit averages the crop and its mirror image at a few crop scales (test-time augmentation: about -0.1 % NME on
the AFLW2000-3D development split for 6 network passes of ~0.4 ms each).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from face3d.shared.engines.cpu.ibug68 import FLIP_68

WEIGHTS = Path(__file__).with_name("weights")
REGRESSOR = WEIGHTS / "tddfa_mb05_120.onnx"   # any 3DDFA_V2 120x120 62-parameter ONNX drops in here (weights/README.md)
INPUT = 120
MIRROR_X = np.diag([-1.0, 1.0, 1.0])
CROP_SCALES = (0.9, 1.0, 1.1)          # test-time crop scales around the landmark box (x mirror each)
FACEBOXES_MEAN = np.array([104.0, 117.0, 123.0], np.float32)   # BGR, as FaceBoxes was trained
FACEBOXES_SIDE = 720                   # detection runs on a copy no larger than this


@dataclass(frozen=True)
class Basis:
    """The 68-point sparse 3DMM (BFM, 40 shape + 10 expression components) and the regressor's output scaling."""

    mean: np.ndarray               # (68, 3) BFM units (micrometres), model frame: +x image right, +y up, +z out
    shape: np.ndarray              # (68, 3, 40)
    expression: np.ndarray         # (68, 3, 10)
    param_mean: np.ndarray         # (62,)
    param_std: np.ndarray          # (62,)

    def points(self, params: np.ndarray) -> np.ndarray:
        """(68, 3) model-frame points of a 62-parameter vector (pose not applied)."""
        return self.mean + self.shape @ params[12:52] + self.expression @ params[52:62]


@lru_cache(maxsize=1)
def basis() -> Basis:
    with np.load(WEIGHTS / "bfm68.npz") as data:
        return Basis(*(data[key].astype(np.float64) for key in
                       ("mean", "shape_basis", "expression_basis", "param_mean", "param_std")))


@dataclass(frozen=True)
class RobustFit:
    points: np.ndarray             # (68, 3) photo pixels, iBUG order; z in pixels, larger = nearer the camera
    model_points: np.ndarray       # (68, 3) the face's own 3DMM points, model frame, BFM units
    rotation: np.ndarray           # (3, 3) model frame -> camera frame (x right, y up, z to the viewer)


def _session(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def square_from_points(points: np.ndarray, grow: float = math.sqrt(2.0)) -> tuple[float, float, float, float]:
    """3DDFA_V2's landmark crop: the points' bounding square, its side times sqrt(2)."""
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    centre, side = (lo + hi) / 2.0, float(max(hi - lo)) * grow
    return centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2


def square_from_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """3DDFA_V2's detector crop for a FaceBoxes box: 1.58x its mean side, centre moved down 0.14 of it."""
    x0, y0, x1, y1 = box
    side = (x1 - x0 + y1 - y0) / 2.0
    cx, cy, grown = (x0 + x1) / 2.0, (y0 + y1) / 2.0 + side * 0.14, side * 1.58
    return cx - grown / 2, cy - grown / 2, cx + grown / 2, cy + grown / 2


def scaled_square(square: tuple[float, ...], factor: float) -> tuple[float, float, float, float]:
    cx, cy = (square[0] + square[2]) / 2.0, (square[1] + square[3]) / 2.0
    half = (square[2] - square[0]) * factor / 2.0
    return cx - half, cy - half, cx + half, cy + half


def crop_square(bgr: np.ndarray, square: tuple[float, ...]) -> np.ndarray:
    """The square resized to the network input (pixel centres mapped as cv2.resize does, as in training); parts
    outside the photo are black."""
    k = INPUT / (square[2] - square[0])
    matrix = np.array([[k, 0.0, k * (0.5 - square[0]) - 0.5], [0.0, k, k * (0.5 - square[1]) - 0.5]])
    return cv2.warpAffine(bgr, matrix, (INPUT, INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def rotation_of(pose: np.ndarray) -> np.ndarray:
    """The rotation of the regressor's affine camera: its two image rows (the depth row is barely constrained by
    training), normalised, completed by their cross product and made orthonormal."""
    r1, r2 = pose[0] / np.linalg.norm(pose[0]), pose[1] / np.linalg.norm(pose[1])
    return orthonormal(np.stack([r1, r2, np.cross(r1, r2)]))


def orthonormal(matrix: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(matrix)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ fix @ vt


class RobustModel:
    def __init__(self, threads: int = 1) -> None:
        self._regressor = _session(REGRESSOR, threads)
        self._detector = _session(WEIGHTS / "faceboxes.onnx", threads)
        self._basis = basis()

    def fit(self, bgr: np.ndarray, square: tuple[float, ...], scales: tuple[float, ...] = CROP_SCALES) -> RobustFit:
        """68 points and rotation for the face in ``square``, averaged over crop scales and their mirror images."""
        squares = [scaled_square(square, s) for s in scales]
        crops = [crop_square(bgr, sq) for sq in squares]
        batch = planar(crops + [cv2.flip(c, 1) for c in crops], (127.5, 127.5, 127.5), 1 / 128)
        params = self._regressor.run(None, {"input": batch})[0].astype(np.float64)
        params = params * self._basis.param_std + self._basis.param_mean
        count = len(squares)
        views = [self._view(params[k], squares[k], mirrored=False) for k in range(count)]
        views += [self._view(params[count + k], squares[k], mirrored=True) for k in range(count)]
        points = np.mean([v[0] for v in views], axis=0)
        rotation = orthonormal(np.sum([v[1] for v in views], axis=0))
        model_points = np.mean([v[2] for v in views], axis=0)
        return RobustFit(points, model_points, rotation)

    def _view(self, params: np.ndarray, square: tuple[float, ...], mirrored: bool):
        """Photo-pixel points, rotation and model points of one network pass (undoing the mirror if it had one)."""
        pose = params[:12].reshape(3, 4)
        model = self._basis.points(params)
        crop_points = model @ pose[:, :3].T + pose[:, 3]
        x = crop_points[:, 0] - 1.0
        y = INPUT - crop_points[:, 1]
        rotation = orthonormal(pose[:, :3])
        if mirrored:
            x = (INPUT - 1.0) - x
            x, y, crop_points = x[FLIP_68], y[FLIP_68], crop_points[FLIP_68]
            rotation = MIRROR_X @ rotation @ MIRROR_X
            model = (model * [-1.0, 1.0, 1.0])[FLIP_68]
        k = (square[2] - square[0]) / INPUT
        points = np.c_[x * k + square[0], y * k + square[1], (crop_points[:, 2] - 1.0) * k]
        return points, rotation, model

    def detect(self, bgr: np.ndarray, min_score: float = 0.3) -> list[tuple[tuple[float, float, float, float], float]]:
        """FaceBoxes boxes (photo pixels) with their scores, best first, after non-maximum suppression."""
        scale = min(1.0, FACEBOXES_SIDE / max(bgr.shape[:2]))
        small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else bgr
        loc, conf = self._detector.run(None, {"input": planar([small], FACEBOXES_MEAN, 1.0)})
        height, width = small.shape[:2]
        boxes = _decode(loc[0].astype(np.float64), _priors(height, width)) * [width, height, width, height]
        scores = conf[0][:, 1]
        keep = np.nonzero(scores >= min_score)[0]
        kept = _suppress(boxes[keep] / scale, scores[keep], threshold=0.3)
        return [(tuple(float(v) for v in box), float(score)) for box, score in kept]


def planar(images: list[np.ndarray], mean, scale: float) -> np.ndarray:
    """(N, 3, H, W) float32 network input, (pixel - mean[channel]) * scale, from N (H, W, 3) uint8 images.

    Channel by channel: numpy's transposing copy of an interleaved image is ~20x slower (~10 ms for FaceBoxes'
    720 px input), and the same arithmetic in float32 gives the same values."""
    out = np.empty((len(images), 3, *images[0].shape[:2]), np.float32)
    for i, image in enumerate(images):
        for c, channel in enumerate(cv2.split(image)):
            np.multiply(np.subtract(channel, np.float32(mean[c]), dtype=np.float32), np.float32(scale), out=out[i, c])
    return out


@lru_cache(maxsize=8)
def _priors(height: int, width: int) -> np.ndarray:
    """FaceBoxes' anchors (centre x, centre y, w, h; fractions of the image), in the order its heads emit them."""
    layers = []
    for step, sizes in ((32, (32, 64, 128)), (64, (256,)), (128, (512,))):
        rows, cols = np.meshgrid(np.arange(math.ceil(height / step)), np.arange(math.ceil(width / step)), indexing="ij")
        cell = []
        for size in sizes:
            offsets = {32: (0.0, 0.25, 0.5, 0.75), 64: (0.0, 0.5)}.get(size, (0.5,))
            for dy in offsets:
                for dx in offsets:
                    cx, cy = (cols + dx) * step / width, (rows + dy) * step / height
                    cell.append(np.stack([cx, cy, np.full(cx.shape, size / width), np.full(cx.shape, size / height)], -1))
        layers.append(np.stack(cell, axis=2).reshape(-1, 4))
    return np.concatenate(layers)


def _decode(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    centre = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * 0.2)
    return np.hstack([centre - size / 2, centre + size / 2])


def _suppress(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[tuple[np.ndarray, float]]:
    order = np.argsort(-scores)
    kept: list[tuple[np.ndarray, float]] = []
    for i in order:
        if all(_iou(boxes[i], other) <= threshold for other, _ in kept):
            kept.append((boxes[i], float(scores[i])))
    return kept


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0
