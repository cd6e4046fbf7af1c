"""Fusing the two landmark models per face, and their calibration against the AFLW2000-3D development split.

Per face we have the robust model's 68 points (3DDFA_V2: right at every pose, jaw included) and, where MediaPipe
verified the face, its 468 points mapped to the 68 iBUG ones, each the mean of the MediaPipe pair that lies closest to
it on frontal faces (sharper on the inner face of frontal views, useless past ~45 degrees of yaw). The fused point is  robust + alpha(yaw, i) * (mediapipe - robust), moved by a small
per-point bias(yaw, i) in the face's own 2D frame; the rotation is corrected by a per-yaw rotation. alpha, bias and
the rotations are tabulated at yaw knots and interpolated linearly, with the left/right mirror symmetry tied
(point i at yaw y == point mirror(i) at -y, x negated). They are least-squares fits on the development split
(tools/calibrate_fusion.py), shrunk towards "no change"; a 2-fold split of the development set measured what they
gain on photos they were not fitted on (README, 3D accuracy).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CALIBRATION = Path(__file__).with_name("weights") / "fusion.npz"
YAW_KNOTS = np.arange(-90.0, 90.1, 15.0)


def mediapipe_68(points_468: np.ndarray) -> np.ndarray:
    """The 68 iBUG points of MediaPipe's 468 (any number of columns)."""
    return points_468[calibration().mediapipe_to_68].mean(axis=1)


def raw_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """AFLW2000-3D's (yaw, pitch, roll) of a rotation, its own signs: the calibration tables' coordinates."""
    yaw = np.degrees(np.arcsin(np.clip(-rotation[0, 2], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(rotation[1, 2], rotation[2, 2]))
    roll = np.degrees(np.arctan2(rotation[0, 1], rotation[0, 0]))
    return float(yaw), float(pitch), float(roll)


def knot_weights(yaw: float) -> np.ndarray:
    """Linear-interpolation weights of ``yaw`` (degrees) over YAW_KNOTS (they sum to 1)."""
    y = float(np.clip(yaw, YAW_KNOTS[0], YAW_KNOTS[-1]))
    weights = np.maximum(0.0, 1.0 - np.abs(YAW_KNOTS - y) / (YAW_KNOTS[1] - YAW_KNOTS[0]))
    return weights / weights.sum()


@dataclass(frozen=True)
class Calibration:
    alpha: np.ndarray        # (K, 68) share of MediaPipe's point per yaw knot
    bias: np.ndarray         # (K, 68, 2) offset in the face frame (fractions of the face size) per yaw knot
    rotation: np.ndarray     # (K, 3, 3) right-multiplied correction of the robust model's rotation per yaw knot
    mediapipe_to_68: np.ndarray  # (68, 2) the two MediaPipe points whose mean is each iBUG point

    def uncorrected(self) -> "Calibration":
        """The same point correspondence, no correction: the raw models (for benchmarks and for re-fitting)."""
        k = len(YAW_KNOTS)
        return Calibration(np.zeros((k, 68)), np.zeros((k, 68, 2)), np.repeat(np.eye(3)[None], k, axis=0),
                           self.mediapipe_to_68)


@lru_cache(maxsize=1)
def calibration() -> Calibration:
    with np.load(CALIBRATION) as data:
        return Calibration(data["alpha"], data["bias"], data["rotation"], data["mediapipe_to_68"].astype(np.int64))


def face_frame(points: np.ndarray, roll_degrees: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Centre, size (sqrt of the box area) and the 2x2 rotation that levels the face by its roll."""
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    size = float(np.sqrt(max((hi - lo).prod(), 1e-6)))
    a = np.radians(roll_degrees)
    level = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points[:, :2].mean(axis=0), size, level


def fuse_points(robust: np.ndarray, mediapipe: np.ndarray | None, yaw: float, roll: float,
                calib: Calibration | None = None) -> np.ndarray:
    """(68, 2) fused photo-pixel landmarks."""
    calib = calib or calibration()
    w = knot_weights(yaw)
    fused = robust[:, :2].astype(np.float64)
    if mediapipe is not None:
        fused = fused + (w @ calib.alpha)[:, None] * (mediapipe[:, :2] - fused)
    centre, size, level = face_frame(robust, roll)
    offset = np.einsum("k,kpc->pc", w, calib.bias) * size
    return fused + offset @ level.T


def corrected_rotation(rotation: np.ndarray, yaw: float, calib: Calibration | None = None) -> np.ndarray:
    calib = calib or calibration()
    blended = np.einsum("k,kij->ij", knot_weights(yaw), calib.rotation)
    u, _, vt = np.linalg.svd(rotation @ blended)
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
