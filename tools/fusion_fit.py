"""Least-squares fits behind shared/engines/cpu/weights/fusion.npz, from development-split faces.

A face record (dict): robust (68, 2) and mediapipe (68, 2) or None photo points, rotation (3, 3) of the robust
model, yaw and roll (degrees, AFLW2000-3D's signs) read from that rotation, and the truth: truth (68, 2),
true_rotation (3, 3) or None where the true pose is broken, norm (the NME normaliser). Mirror symmetry is tied by
adding every face once more, mirrored. derive_mapping picks, for each iBUG point, the pair of MediaPipe points whose
mean lies closest to it on frontal faces, tied across the mirror so the table stays left/right symmetric.
"""
from __future__ import annotations

import numpy as np

from face3d.shared.engines.cpu.ibug68 import FLIP_68 as FLIP
from face3d.shared.engines.cpu.fusion import YAW_KNOTS, Calibration, face_frame, knot_weights

MIRROR = np.diag([-1.0, 1.0, 1.0])
SHRINK_POINTS = 10.0   # pseudo-faces pulling every landmark knot towards "no change" ...
SHRINK_ROTATION = 3.0  # ... and every rotation knot (chosen by 2-fold cross-validation on the development split)
CANDIDATES = 10        # nearest MediaPipe points tried per iBUG point


def mirrored(face: dict) -> dict:
    """The same face seen in a mirror: x negated, left/right points swapped, yaw and roll negated."""
    def flip(points):
        return None if points is None else (points[FLIP] * [-1.0, 1.0])
    return {**face, "robust": flip(face["robust"]), "mediapipe": flip(face["mediapipe"]), "truth": flip(face["truth"]),
            "rotation": MIRROR @ face["rotation"] @ MIRROR,
            "true_rotation": None if face["true_rotation"] is None else MIRROR @ face["true_rotation"] @ MIRROR,
            "yaw": -face["yaw"], "roll": -face["roll"]}


def fit(faces: list[dict], mapping: np.ndarray) -> Calibration:
    both = faces + [mirrored(f) for f in faces]
    weights = np.array([knot_weights(f["yaw"]) for f in both])             # (F, K)
    alpha = _fit_alpha(both, weights, SHRINK_POINTS)
    bias = _fit_bias(both, weights, alpha, SHRINK_POINTS)
    rotation = _fit_rotation(both, weights, SHRINK_ROTATION)
    return Calibration(alpha, bias, rotation, mapping)


def derive_mapping(points: np.ndarray, truth: np.ndarray, norms: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(68, 2) MediaPipe point pairs: points (F, 468, 2) and truth (F, 68, 2) of frontal faces, mirror (468,)."""
    def error(i, a, b):
        return float(np.median(np.linalg.norm((points[:, a] + points[:, b]) / 2 - truth[:, i], axis=-1) / norms))

    single = np.median(np.linalg.norm(points[:, None] - truth[:, :, None], axis=-1) / norms[:, None, None], axis=0)
    pairs: dict[int, tuple[int, int]] = {}
    for i in range(68):
        j = int(FLIP[i])
        if i in pairs:
            continue
        near = np.argsort(single[i] + single[j][mirror])[:CANDIDATES]
        options = [(a, mirror[a]) for a in near] if i == j else \
            [(a, a) for a in near] + [(a, b) for k, a in enumerate(near) for b in near[k + 1:]]
        best = min(options, key=lambda ab: error(i, *ab) + error(j, mirror[ab[0]], mirror[ab[1]]))
        pairs[i], pairs[j] = (int(best[0]), int(best[1])), (int(mirror[best[0]]), int(mirror[best[1]]))
    return np.array([pairs[i] for i in range(68)])


def _fit_alpha(faces: list[dict], weights: np.ndarray, shrink: float) -> np.ndarray:
    """Per point: minimise sum ||r + (w.a)(m - r) - g||^2 over the knot values a (normal equations)."""
    k = weights.shape[1]
    alpha = np.zeros((k, 68))
    seen = [i for i, f in enumerate(faces) if f["mediapipe"] is not None]
    for p in range(68):
        lhs, rhs = shrink * np.eye(k), np.zeros(k)
        for i in seen:
            f, w = faces[i], weights[i]
            d = (f["mediapipe"][p] - f["robust"][p]) / f["norm"]
            e = (f["truth"][p] - f["robust"][p]) / f["norm"]
            lhs += np.outer(w, w) * (d @ d)
            rhs += w * (d @ e)
        alpha[:, p] = np.clip(np.linalg.solve(lhs, rhs), 0.0, 1.0)
    return alpha


def _fit_bias(faces: list[dict], weights: np.ndarray, alpha: np.ndarray, shrink: float) -> np.ndarray:
    """Per point and axis: the knot offsets that best explain the remaining error in the face frame."""
    k = weights.shape[1]
    residuals = np.zeros((len(faces), 68, 2))
    for i, f in enumerate(faces):
        fused = f["robust"].copy()
        if f["mediapipe"] is not None:
            fused += (weights[i] @ alpha)[:, None] * (f["mediapipe"] - fused)
        _, size, level = face_frame(f["robust"], f["roll"])
        residuals[i] = (f["truth"] - fused) @ level / size
    lhs = weights.T @ weights + shrink * np.eye(k)
    return np.einsum("kj,jpc->kpc", np.linalg.inv(lhs), np.einsum("fk,fpc->kpc", weights, residuals))


def _fit_rotation(faces: list[dict], weights: np.ndarray, shrink: float) -> np.ndarray:
    """Per knot: the rotation C closest to the weighted mean of R^T R_true (plus identity pseudo-faces)."""
    rotations = []
    for j in range(weights.shape[1]):
        total = shrink * np.eye(3)
        for i, f in enumerate(faces):
            if f["true_rotation"] is not None:
                total += weights[i, j] * (f["rotation"].T @ f["true_rotation"])
        u, _, vt = np.linalg.svd(total)
        rotations.append(u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt)
    return np.array(rotations)
