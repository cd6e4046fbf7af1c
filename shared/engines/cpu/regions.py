"""Landmark regions of the UV layout: where the eyes, brows and lips lie in the atlas (their colour may differ from
the skin), the rings of skin around them, and the reference region the face's skin colour is measured on.

The regions are MediaPipe's contour index sets (its face-mesh connections) rasterised as convex hulls of their
points' canonical UVs, once per atlas size. The layout is the same for every face, so they are too.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from face3d.shared.engines.cpu.topology import canonical

RING_MM = (1.5, 5.0)         # the skin ring around a feature: from this far outside its hull to this far
REFERENCE_BAND = 0.14        # the reference region keeps this share of the atlas clear of the face's outline
FEATURE_NAMES = ("eye_right", "eye_left", "brow_right", "brow_left", "lips")


@dataclass(frozen=True)
class Regions:
    size: int
    features: dict[str, np.ndarray]      # name -> (size, size) bool hull
    rings: dict[str, np.ndarray]         # name -> (size, size) bool ring of skin around the hull
    allowed: np.ndarray                  # union of the feature hulls (their colour may differ from the skin)
    reference: np.ndarray                # cheeks, forehead and nose: where the skin colour is measured
    texels_per_mm: float                 # near the eyes (the layout's scale varies a little across the atlas)


def _groups() -> dict[str, frozenset]:
    from mediapipe.python.solutions import face_mesh_connections as mesh

    return {"eye_right": mesh.FACEMESH_RIGHT_EYE, "eye_left": mesh.FACEMESH_LEFT_EYE,
            "brow_right": mesh.FACEMESH_RIGHT_EYEBROW, "brow_left": mesh.FACEMESH_LEFT_EYEBROW,
            "lips": mesh.FACEMESH_LIPS, "oval": mesh.FACEMESH_FACE_OVAL}


def _hull(points: list[int], size: int) -> np.ndarray:
    uvs = canonical().uvs[points]
    pixels = np.round(np.c_[uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size] - 0.5).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(pixels), 1)
    return mask


def _grown(mask: np.ndarray, texels: float) -> np.ndarray:
    radius = max(1, round(texels))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))


def _texels_per_mm(size: int) -> float:
    shape, uvs = canonical().mean_shape, canonical().uvs
    corners = [(33, 133), (362, 263)]               # eye corners: ~28 mm apart on the mean face
    ratios = [np.linalg.norm((uvs[a] - uvs[b]) * size) / (np.linalg.norm(shape[a] - shape[b]) * 1000.0)
              for a, b in corners]
    return float(np.mean(ratios))


@lru_cache(maxsize=4)
def regions(size: int) -> Regions:
    groups = _groups()
    scale = _texels_per_mm(size)
    hulls = {name: _hull(sorted({i for edge in groups[name] for i in edge}), size) for name in FEATURE_NAMES}
    rings = {name: (_grown(hull, RING_MM[1] * scale) & ~_grown(hull, RING_MM[0] * scale)).astype(bool)
             for name, hull in hulls.items()}
    allowed = np.any([hull.astype(bool) for hull in hulls.values()], axis=0)
    oval = _hull(sorted({i for edge in groups["oval"] for i in edge}), size)
    band = max(1, round(REFERENCE_BAND * size))
    inner = cv2.erode(oval, np.ones((2 * band + 1, 2 * band + 1), np.uint8)).astype(bool)
    near_features = _grown(allowed.astype(np.uint8), RING_MM[0] * scale).astype(bool)
    return Regions(size, {k: v.astype(bool) for k, v in hulls.items()}, rings, allowed, inner & ~near_features, scale)
