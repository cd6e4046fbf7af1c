"""Texture atlas: rasterise the UV layout once per atlas size, then per face map every texel to the photo
through the projected mesh and sample with one cv2.remap call.

Each texel trusts its own photo sample by a weight: 0 where the surface faces away, lies outside the photo or is
hidden behind nearer geometry (a depth buffer of the posed mesh: the nose on a turned face), rising smoothly with
the view cosine and feathered at occlusion edges. What the texel does not take from the photo it takes from its
mirror texel (u -> 1 - u) by that one's weight, and the rest from a push-pull fill of the blended atlas.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from face3d.shared.engines.cpu.mesh import PosedMesh
from face3d.shared.engines.cpu.topology import dense_topology
from face3d.shared.engines.cpu.visibility import rasterise

COARSE_SIZE = 256            # raster used for the texel -> photo map and the weights
GRAZING_COS = 0.15           # surface at more than ~81 degrees to the view direction: photo weight 0 ...
SQUARE_COS = 0.4             # ... rising smoothly to 1 at 66 degrees and less
DEPTH_TOLERANCE_M = 0.006    # a texel this far behind the depth buffer is hidden (the nose stands ~25 mm proud)
DEPTH_STEP_M = 0.015         # depth change across two buffer pixels that marks an occluding edge, not a steep slope
FEATHER_TEXELS = 3.0         # blur sigma (coarse texels) that softens the photo weight at occlusion edges
SILHOUETTE_FADE = 0.025      # of the face's extent: photo samples this near an outline or a depth step may show
                             # the background or the occluder (landmark fits are off by ~1-2 %), so count for less
MIRRORED_WEIGHT = 0.5        # a texel this much taken from its mirror makes the texture 'mirrored'


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


def bake(photo: np.ndarray, mesh: PosedMesh, size: int) -> TextureResult:
    """The atlas of one posed face: photo where the surface is seen, its mirror where only that is, fill elsewhere.

    The texel -> photo map is continuous and piecewise affine, so it, all weights and the fill are computed on a
    coarse raster and upsampled bilinearly; only cv2.remap and two cv2.blendLinear calls touch every full texel.
    """
    coarse = min(size, COARSE_SIZE)
    r = raster(coarse)
    per_vertex = np.c_[mesh.xy, mesh.depth, mesh.facing].astype(np.float32)
    texels = np.einsum("kj,kjd->kd", r.weights, per_vertex[r.corners])
    positions = texels[:, :2]
    covered = np.zeros((coarse, coarse), dtype=bool)
    covered[r.texel_rows, r.texel_cols] = True
    own = _own_weight(photo.shape, mesh, r, texels, covered)
    mirror = (1.0 - own) * own[:, ::-1]
    known = own + mirror

    mapping = np.zeros((coarse, coarse, 2), dtype=np.float32)
    mapping[r.texel_rows, r.texel_cols] = positions
    mapping = fill_unknown(mapping, covered)           # extend the map past the chart so edges sample the photo too
    small = _blend_mirror(_sample(photo, mapping), own, mirror)
    # cv2.blendLinear normalises by the weight sum; texels with neither weight come out black and are filled here
    fill = np.clip(fill_unknown(small.astype(np.float32), known > 0.999, weights=known), 0, 255).astype(np.uint8)
    image = small
    if coarse != size:
        image = _blend_mirror(_sample(photo, cv2.resize(mapping, (size, size), interpolation=cv2.INTER_LINEAR)),
                              _resized(own, size), _resized(mirror, size))
        fill = cv2.resize(fill, (size, size), interpolation=cv2.INTER_LINEAR)
    image = cv2.blendLinear(image, fill, _resized(known, size), _resized(1.0 - known, size))

    synthesized = 1.0 - float(own[covered].mean())            # the share of the surface colour not from the photo
    return TextureResult(np.ascontiguousarray(image), synthesized, bool((mirror[covered] > MIRRORED_WEIGHT).any()))


def _own_weight(shape: tuple[int, ...], mesh: PosedMesh, r: Raster, texels: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """How much each coarse texel trusts its own photo sample: 0 unseen, 1 squarely seen, feathered in between.

    Seen = inside the photo, facing the camera and not behind nearer geometry (depth buffer). The weight ramps with
    the view cosine and fades out within a few texels of an occlusion edge, so the borrowed mirror half and the
    photo half meet without a seam.
    """
    height, width = shape[:2]
    xy, depth, cosine = texels[:, :2], texels[:, 2], texels[:, 3]
    front = mesh.triangle_facing > 0
    tolerance = DEPTH_TOLERANCE_M * mesh.pixels_per_metre
    buffer = rasterise(mesh.xy, mesh.depth, mesh.triangles[front], step=DEPTH_STEP_M * mesh.pixels_per_metre)
    unhidden = buffer.visible(xy, depth, tolerance)
    off_edge = np.clip(buffer.distance_to_edge(xy) / SILHOUETTE_FADE, 0.0, 1.0)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= width - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= height - 1)
    seen = np.ones(covered.shape, dtype=np.float32)   # off the chart counts as seen so chart borders are not feathered
    seen[r.texel_rows, r.texel_cols] = unhidden & inside & (mesh.triangle_facing[r.triangle] > 0)
    sigma = FEATHER_TEXELS * covered.shape[0] / COARSE_SIZE
    feather = np.clip(2.0 * cv2.GaussianBlur(seen, (0, 0), sigma) - 1.0, 0.0, 1.0) * seen
    ramp = np.zeros(covered.shape, dtype=np.float32)
    ramp[r.texel_rows, r.texel_cols] = np.clip((cosine - GRAZING_COS) / (SQUARE_COS - GRAZING_COS), 0.0, 1.0) * off_edge
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)          # smoothstep
    return np.where(covered, feather * ramp, 0.0).astype(np.float32)


def _sample(photo: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    return cv2.remap(photo, mapping[:, :, 0], mapping[:, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _blend_mirror(image: np.ndarray, own: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    return cv2.blendLinear(image, cv2.flip(image, 1), own, mirror)


def _resized(weight: np.ndarray, size: int) -> np.ndarray:
    if weight.shape[0] == size:
        return weight
    return cv2.resize(weight, (size, size), interpolation=cv2.INTER_LINEAR)


def fill_unknown(values: np.ndarray, known: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Push-pull: average known entries down a pyramid, then paint unknown entries from the coarser levels.

    ``weights`` (0..1, default ``known``) says how much each entry counts in the averages.
    """
    values = values.astype(np.float32)
    if values.ndim == 2:
        values = values[:, :, None]
    weight = known.astype(np.float32) if weights is None else weights.astype(np.float32)
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
