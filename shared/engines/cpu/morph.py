"""Our 468-point face topology shaped by the robust model's 3DMM: a whole face at every pose.

The robust model gives each face 68 points of a full 3D face model (the hidden half included). Our mesh topology is
MediaPipe's 468 points; each iBUG point has a MediaPipe counterpart (the calibration's point pairs, fusion.py), so the 68 model points
are 68 anchors on the canonical mean face. A thin-plate spline carries their displacement from the canonical anchors
to all 468 points: the mesh takes the model's face shape and expression and never collapses onto the visible half.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from face3d.shared.engines.cpu.fusion import calibration
from face3d.shared.engines.cpu.robust import basis
from face3d.shared.engines.cpu.topology import canonical

SMOOTHING = 1e-4          # thin-plate regularisation (metres): anchors are model points, not exact observations


@dataclass(frozen=True)
class Morph:
    mapping: np.ndarray       # (68, 2) MediaPipe point pairs of the iBUG points
    anchors: np.ndarray       # (68, 3) metres: the canonical face's iBUG points
    operator: np.ndarray      # (468, 68) anchor displacements -> point displacements
    scale: float              # metres per BFM unit
    rotation: np.ndarray      # (3, 3) BFM model frame -> canonical frame
    offset: np.ndarray        # (3,) metres

    def shape(self, canonical: np.ndarray, model_points: np.ndarray) -> np.ndarray:
        """(468, 3) metres, face frame: the canonical face moved with the model's 68 points."""
        moved = self.scale * model_points @ self.rotation.T + self.offset
        return canonical + self.operator @ (moved - self.anchors)

    def anchors_of(self, shape: np.ndarray) -> np.ndarray:
        """The 68 iBUG points of a 468-point shape."""
        return shape[self.mapping].mean(axis=1)

    def model_to_face(self, model_points: np.ndarray) -> np.ndarray:
        """The model's 68 points in the canonical face frame (metres)."""
        return self.scale * model_points @ self.rotation.T + self.offset


def thin_plate_operator(anchors: np.ndarray, points: np.ndarray, smoothing: float = SMOOTHING) -> np.ndarray:
    """Linear map from anchor displacements (68, 3) to point displacements (N, 3): a 3D thin-plate spline
    (kernel |r|, plus an affine part) that reproduces the anchors up to ``smoothing``."""
    count = len(anchors)
    kernel = np.linalg.norm(anchors[:, None] - anchors[None], axis=-1) + smoothing * np.eye(count)
    affine = np.c_[np.ones(count), anchors]
    system = np.block([[kernel, affine], [affine.T, np.zeros((4, 4))]])
    inverse = np.linalg.inv(system)[:, :count]                           # (68 + 4, 68)
    at_points = np.c_[np.linalg.norm(points[:, None] - anchors[None], axis=-1), np.ones(len(points)), points]
    return at_points @ inverse


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """s, R, t with target ~ s * R @ source + t (Umeyama)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    ds, dt = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(dt.T @ ds)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ fix @ vt
    scale = float(np.trace(np.diag(sigma) @ fix) / (ds ** 2).sum())
    return scale, rotation, mu_t - scale * rotation @ mu_s


@lru_cache(maxsize=1)
def default_morph() -> Morph:
    """The morph of the canonical face (topology.py) to the robust model's BFM points (robust.py)."""
    mapping = calibration().mediapipe_to_68
    anchors = canonical().mean_shape[mapping].mean(axis=1)
    scale, rotation, offset = similarity(basis().mean, anchors)
    return Morph(mapping, anchors, thin_plate_operator(anchors, canonical().mean_shape), scale, rotation, offset)
