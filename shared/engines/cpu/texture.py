"""Texture atlas: rasterise the UV layout once per atlas size, then per face map every texel to the photo
through the projected mesh and sample with one cv2.remap call.

Each texel's colour comes from up to three sources, in this order of trust:
1. its own photo sample, as far as the photo sees that surface point (0 where it faces away, lies outside the photo
   or behind nearer geometry (a depth buffer: the nose on a turned face), rising with the view cosine, feathered at
   occlusion edges). Near the face's outline and occluding edges the landmark fit may be a few pixels off and the
   sample show hair or the background, so there it counts only as far as it looks like the face's skin
   (shared/engines/cpu/skin.py; eyes, brows and lips may differ);
2. its mirror texel (u -> 1 - u), by how well the photo saw that one as skin: hair, the background and anything
   found covering the face (shared/engines/cpu/occlusion.py) are never mirrored;
3. a fill: the nearest photo and mirror skin colours pushed and pulled across the gaps.
The texture is made on a coarse raster (the weights, the fill and the texel -> photo map are smooth), then sampled
and blended at full size.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from face3d.shared.engines.cpu.compose import blend, interpolate
from face3d.shared.engines.cpu.mesh import PosedMesh
from face3d.shared.engines.cpu.occlusion import Occlusion, find_occlusion
from face3d.shared.engines.cpu.skin import skin_likeness
from face3d.shared.engines.cpu.topology import canonical, dense_topology
from face3d.shared.engines.cpu.visibility import rasterise

COARSE_SIZE = 256            # raster used for the texel -> photo map and the weights
GRAZING_COS = 0.15           # surface at more than ~81 degrees to the view direction: photo weight 0 ...
SQUARE_COS = 0.4             # ... rising smoothly to 1 at 66 degrees and less
DEPTH_TOLERANCE_M = 0.006    # a texel this far behind the depth buffer is hidden (the nose stands ~25 mm proud)
DEPTH_STEP_M = 0.015         # depth change across two buffer pixels that marks an occluding edge, not a steep slope
FEATHER_TEXELS = 3.0         # blur sigma (coarse texels) that softens the photo weight at occlusion edges
SILHOUETTE_FADE = 0.025      # of the face's extent: photo samples this near an outline or a depth step count less
RIM_WIDTH = (0.04, 0.12)     # of the face's extent: samples nearer an edge than the first must look like skin to
                             # count, beyond the second any colour counts (a beard, a mole, make-up: what is there)
MIDLINE_TEXELS = 3           # ~3 mm at COARSE_SIZE


@dataclass(frozen=True)
class Raster:
    size: int
    texel_rows: np.ndarray       # (K,) row of each covered texel
    texel_cols: np.ndarray       # (K,)
    triangle: np.ndarray         # (K,) dense-mesh triangle under the texel
    corners: np.ndarray          # (K, 3) vertex indices of that triangle
    weights: np.ndarray          # (K, 3) float32 barycentric weights
    area: np.ndarray             # (size, size) float32 share of the mean face's surface under each texel (sums to 1)


@dataclass(frozen=True)
class View:
    """What the photo shows of each coarse texel."""

    colours: np.ndarray          # (C, C, 3) uint8 RGB photo sample of the texel's surface point
    mapping: np.ndarray          # (C, C, 2) float32 photo xy of each texel (extended past the chart)
    seen: np.ndarray             # (C, C) float32 0..1 how well the photo sees that point
    rim: np.ndarray              # (C, C) float32 1 on an outline or occluding edge, 0 from RIM_WIDTH[1] away
    covered: np.ndarray          # (C, C) bool the UV chart
    area: np.ndarray             # (C, C) float32 surface share per texel
    face_px: float               # the face's longer projected side, photo pixels


@dataclass
class TextureResult:
    image: np.ndarray            # (T, T, 3) uint8
    synthesized: float           # share of the surface colour not taken from the photo where it lies
    mirrored: float              # share of the surface colour taken from the mirror texel
    occluded: float              # share of the face found covered (0: nothing found)
    occlusion: Occlusion         # what was found, and the cues measured


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
    area = np.zeros((size, size), np.float32)
    area[rows, cols] = _area_per_texel(topology.triangles, pixels)[triangle]
    return Raster(size, rows, cols, triangle, corners, weights.astype(np.float32), area / area.sum())


def _area_per_texel(triangles: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Surface area of the mean face over atlas area, per dense triangle (the packed layout is not equal-area)."""
    vertices = dense_topology().operator @ canonical().mean_shape.astype(np.float32)
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    surface = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    p, q, r = (pixels[triangles[:, k]] for k in range(3))
    atlas = 0.5 * np.abs((q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0]))
    return (surface / np.maximum(atlas, 1e-9)).astype(np.float32)


def _barycentric(triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    weights = np.clip(np.stack([1.0 - w1 - w2, w1, w2], axis=1), 0.0, 1.0)   # texels on an edge may poke out
    return weights / weights.sum(axis=1, keepdims=True)


def bake(photo: np.ndarray, mesh: PosedMesh, size: int,
         disagreement: tuple[float, float] | None = None) -> TextureResult:
    """The atlas of one posed face (see the module doc for where each texel's colour comes from); ``disagreement``:
    the landmark models' per-eye disagreement (shared.engines.cpu.occlusion.eye_disagreement)."""
    coarse = min(size, COARSE_SIZE)
    view = observe(photo, mesh, coarse)
    skin = skin_likeness(view.colours, view.seen, view.covered)
    occlusion = find_occlusion(view, skin, disagreement)
    weights = blend_weights(view, skin, occlusion.mask)
    fill = skin_fill(view.colours, weights, skin)
    image = _compose(view.colours, weights, fill)
    if coarse != size:
        mapping = cv2.resize(view.mapping, (size, size), interpolation=cv2.INTER_LINEAR)
        image = _compose(_sample(photo, mapping), weights.resized(size),
                         cv2.resize(fill, (size, size), interpolation=cv2.INTER_LINEAR))
    own_share = float((view.area * weights.own).sum())
    return TextureResult(np.ascontiguousarray(image), 1.0 - own_share, float((view.area * weights.mirror).sum()),
                         occlusion.share, occlusion)


def observe(photo: np.ndarray, mesh: PosedMesh, coarse: int) -> View:
    r = raster(coarse)
    per_vertex = np.c_[mesh.xy, mesh.depth, mesh.facing].astype(np.float32)
    texels = interpolate(r.weights, r.corners, per_vertex)
    covered = np.zeros((coarse, coarse), dtype=bool)
    covered[r.texel_rows, r.texel_cols] = True
    seen, rim = _seen(photo.shape, mesh, r, texels, covered)
    mapping = np.zeros((coarse, coarse, 2), dtype=np.float32)
    mapping[r.texel_rows, r.texel_cols] = texels[:, :2]
    mapping = fill_unknown(mapping, covered)           # extend the map past the chart so edges sample the photo too
    face_px = float(np.ptp(mesh.xy, axis=0).max())
    return View(_sample(photo, mapping), mapping, seen, rim, covered, r.area, face_px)


def _seen(shape: tuple[int, ...], mesh: PosedMesh, r: Raster, texels: np.ndarray,
          covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How well the photo sees each coarse texel (0 unseen, 1 squarely seen, feathered in between), and how near it
    lies to an outline or occluding edge (the rim weight, 1 on the edge).

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
    edge = buffer.distance_to_edge(xy)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= width - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= height - 1)
    seen = np.ones(covered.shape, dtype=np.float32)   # off the chart counts as seen so chart borders are not feathered
    seen[r.texel_rows, r.texel_cols] = unhidden & inside & (mesh.triangle_facing[r.triangle] > 0)
    sigma = FEATHER_TEXELS * covered.shape[0] / COARSE_SIZE
    feather = np.clip(2.0 * cv2.GaussianBlur(seen, (0, 0), sigma) - 1.0, 0.0, 1.0) * seen
    ramp = np.zeros(covered.shape, dtype=np.float32)
    ramp[r.texel_rows, r.texel_cols] = (np.clip((cosine - GRAZING_COS) / (SQUARE_COS - GRAZING_COS), 0.0, 1.0)
                                        * np.clip(edge / SILHOUETTE_FADE, 0.0, 1.0))
    rim = np.zeros(covered.shape, dtype=np.float32)
    rim[r.texel_rows, r.texel_cols] = 1.0 - _smoothstep((edge - RIM_WIDTH[0]) / (RIM_WIDTH[1] - RIM_WIDTH[0]))
    return np.where(covered, feather * _smoothstep(ramp), 0.0).astype(np.float32), rim


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class Weights:
    own: np.ndarray              # how much each texel takes from its own photo sample
    mirror: np.ndarray           # ... from its mirror texel's sample (the fill gives the rest)

    def resized(self, size: int) -> Weights:
        return Weights(_resized(self.own, size), _resized(self.mirror, size))


def blend_weights(view: View, skin: np.ndarray, covered_by_something: np.ndarray) -> Weights:
    """Source (what may stand for skin elsewhere: the mirror, the fill): seen skin that nothing covers. Own: the
    photo's sample as far as it is seen; one that does not look like skin only where the other side cannot offer
    skin instead and the texel lies away from the face's edges (a beard, glasses, a mask seen on both sides: what
    is there; not the background or hair at the outline, nor a ball held to one cheek). Mirror: what own leaves, by
    the mirror texel's source."""
    source = view.seen * skin * (1.0 - covered_by_something)
    mirrored_source = source[:, ::-1]
    # on the midline a texel is its own mirror: whether the other side offers skin is asked a few texels away too
    reach = MIDLINE_TEXELS * skin.shape[0] // COARSE_SIZE
    nearby = cv2.dilate(mirrored_source, np.ones((1, 2 * reach + 1), np.uint8))
    kept = (1.0 - view.rim) * (1.0 - nearby)
    own = view.seen * np.maximum(skin + (1.0 - skin) * kept, covered_by_something)
    mirror = (1.0 - own) * mirrored_source
    return Weights(own.astype(np.float32), mirror.astype(np.float32))


def skin_fill(colours: np.ndarray, w: Weights, skin: np.ndarray) -> np.ndarray:
    """What neither the photo nor the mirror gives: the blended photo and mirror colours pushed and pulled from the
    nearest texels that have them, counting each by how far it is skin (a beard or a mask kept where it is seen is
    not spread into the gaps)."""
    known = w.own + w.mirror
    blended = _compose(colours, w, np.zeros_like(colours, dtype=np.float32), rounded=False)
    blended /= np.maximum(known, 1e-6)[..., None]
    trust = np.clip(w.own * skin + w.mirror, 0.0, 1.0)
    return np.clip(fill_unknown(blended, known > 0.999, weights=trust), 0.0, 255.0)


def _compose(colours: np.ndarray, w: Weights, fill: np.ndarray, rounded: bool = True) -> np.ndarray:
    return blend(colours, w.own, w.mirror, fill, rounded)


def _sample(photo: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    # the (H, W, 2) map as one argument: its x and y planes as two would be strided views OpenCV first copies
    return cv2.remap(photo, mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


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
