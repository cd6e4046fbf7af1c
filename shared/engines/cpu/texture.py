"""Texture atlas: rasterise the UV layout once per atlas size, then per face map every texel to the photo
through the projected mesh and sample with one cv2.remap call.

Texels whose triangle faces away from the camera (or is seen at a grazing angle) are 'unseen'; they take the
colour of their mirror texel (u -> 1 - u) when that one was seen, and the rest is filled by push-pull interpolation.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from shared.engines.cpu.topology import dense_topology

COARSE_SIZE = 256            # raster used for the texel -> photo map and the seen masks
GRAZING_COS = 0.2            # triangles at more than ~78 degrees to the view direction count as unseen


@dataclass(frozen=True)
class Raster:
    size: int
    texel_rows: np.ndarray       # (K,) row of each covered texel
    texel_cols: np.ndarray       # (K,)
    triangle: np.ndarray         # (K,) dense-mesh triangle under the texel
    corners: np.ndarray          # (K, 3) vertex indices of that triangle
    weights: np.ndarray          # (K, 3) float32 barycentric weights


@dataclass
class TextureResult:
    image: np.ndarray            # (T, T, 3) uint8
    synthesized: float           # fraction of the surface's texels not seen in the photo
    mirrored: bool


@lru_cache(maxsize=4)
def raster(size: int) -> Raster:
    topology = dense_topology()
    pixels = np.c_[topology.uvs[:, 0] * size, (1.0 - topology.uvs[:, 1]) * size] - 0.5   # texel-centre coordinates
    ids = np.full((size, size), -1, dtype=np.int32)
    shift = 4
    for index, triangle in enumerate(topology.triangles):      # once per atlas size, cached
        polygon = np.round(pixels[triangle] * (1 << shift)).astype(np.int32)
        cv2.fillConvexPoly(ids, polygon, int(index), lineType=cv2.LINE_8, shift=shift)
    rows, cols = np.nonzero(ids >= 0)
    triangle = ids[rows, cols]
    corners = topology.triangles[triangle]
    weights = _barycentric(pixels[corners], np.c_[cols, rows].astype(np.float64))
    return Raster(size, rows, cols, triangle, corners, weights.astype(np.float32))


def _barycentric(triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    weights = np.clip(np.stack([1.0 - w1 - w2, w1, w2], axis=1), 0.0, 1.0)   # texels on an edge may poke out
    return weights / weights.sum(axis=1, keepdims=True)


def bake(photo: np.ndarray, projected: np.ndarray, facing: np.ndarray, size: int) -> TextureResult:
    """projected: (N, 2) photo pixels of the dense vertices; facing: (M,) cosine of each triangle to the viewer.

    The texel -> photo map is continuous and piecewise affine, so it is computed on a coarse raster and upsampled
    bilinearly; only cv2.remap touches every texel of the full atlas.
    """
    coarse = min(size, COARSE_SIZE)
    r = raster(coarse)
    positions = np.einsum("kj,kjd->kd", r.weights, projected.astype(np.float32)[r.corners])
    height, width = photo.shape[:2]
    inside = (positions[:, 0] >= 0) & (positions[:, 0] <= width - 1) & (positions[:, 1] >= 0) & (positions[:, 1] <= height - 1)
    covered = np.zeros((coarse, coarse), dtype=bool)
    covered[r.texel_rows, r.texel_cols] = True
    seen = np.zeros((coarse, coarse), dtype=bool)
    seen[r.texel_rows, r.texel_cols] = inside & (facing[r.triangle] > GRAZING_COS)
    mapping = np.zeros((coarse, coarse, 2), dtype=np.float32)
    mapping[r.texel_rows, r.texel_cols] = positions
    mapping = fill_unknown(mapping, covered)           # extend the map past the chart so edges sample the photo too
    if coarse != size:
        mapping = cv2.resize(mapping, (size, size), interpolation=cv2.INTER_LINEAR)
    image = cv2.remap(photo, mapping[:, :, 0], mapping[:, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    mirror_seen = seen[:, ::-1]
    borrow = covered & ~seen & mirror_seen
    unknown = covered & ~seen & ~mirror_seen
    # cv2.copyTo with a uint8 mask: ~10x faster than np.where on a 1024^2 RGB atlas
    if borrow.any():
        cv2.copyTo(cv2.flip(image, 1), _upsample(borrow, size), image)
    if unknown.any():
        small = cv2.resize(image, (coarse, coarse), interpolation=cv2.INTER_AREA)
        known = ~unknown
        fill = fill_unknown(small.astype(np.float32), known)
        fill = cv2.resize(np.clip(fill, 0, 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
        cv2.copyTo(fill, _upsample(unknown, size), image)
    synthesized = 1.0 - float(seen.sum()) / max(1, int(covered.sum()))
    return TextureResult(np.ascontiguousarray(image), synthesized, bool(borrow.any()))


def _upsample(mask: np.ndarray, size: int) -> np.ndarray:
    """A boolean coarse mask as a uint8 mask of the atlas size (what cv2.copyTo takes)."""
    mask = mask.astype(np.uint8)
    if mask.shape[0] == size:
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


def fill_unknown(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Push-pull: average known entries down a pyramid, then paint unknown entries from the coarser levels."""
    values = values.astype(np.float32)
    if values.ndim == 2:
        values = values[:, :, None]
    weight = known.astype(np.float32)
    filled = _pull(values * weight[:, :, None], weight)
    return np.where(known[:, :, None], values, filled)


def _pull(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    height, width = weight.shape
    if min(height, width) <= 2 or weight.min() > 0:
        return colour / np.maximum(weight, 1e-6)[:, :, None]
    small_size = ((width + 1) // 2, (height + 1) // 2)
    small_colour = cv2.resize(colour, small_size, interpolation=cv2.INTER_AREA)
    small_colour = small_colour.reshape(small_size[1], small_size[0], -1)
    coarse = _pull(small_colour, cv2.resize(weight, small_size, interpolation=cv2.INTER_AREA))
    up = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
    blend = np.clip(weight, 0.0, 1.0)[:, :, None]
    return colour / np.maximum(weight, 1e-6)[:, :, None] * blend + up * (1.0 - blend)
