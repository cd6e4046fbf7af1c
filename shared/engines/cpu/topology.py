"""The canonical face topology: MediaPipe's 468-point tessellation, a mean frontal shape, a symmetric UV layout,
and the Loop-subdivision operator that densifies any per-face landmark set into a smooth mesh.

The mean shape / UVs / mirror pairs are generated once by tools/make_canonical.py into canonical.npz.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CANONICAL_PATH = Path(__file__).with_name("canonical.npz")
SUBDIVISION_LEVELS = 1


def triangles_from_edges(edges: set[tuple[int, int]] | frozenset) -> np.ndarray:
    """Every 3-cycle of the edge graph that is a face (an edge borders at most two faces; drop separating cycles)."""
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    cycles = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    triangles = np.array(sorted(cycles), dtype=np.int64)
    while True:
        sides = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [0, 2]]]), axis=1)
        unique, inverse, counts = np.unique(sides, axis=0, return_inverse=True, return_counts=True)
        per_triangle = counts[inverse.reshape(3, -1)].max(axis=0)
        if per_triangle.max() <= 2:
            return triangles
        # a separating 3-cycle: its edges are all shared with real faces; drop the worst one and re-check
        triangles = np.delete(triangles, int(np.argmax(counts[inverse.reshape(3, -1)].sum(axis=0))), axis=0)


@dataclass(frozen=True)
class Canonical:
    mean_shape: np.ndarray      # (468, 3) metres, face frame (x to subject's left, y up, z to viewer)
    triangles: np.ndarray       # (M, 3) int32 over 468 points + hole centres, counter-clockwise seen from +z
    uvs: np.ndarray             # (468 + H, 2) in [0, 1], u -> 1 - u maps each point onto its mirror partner
    mirror: np.ndarray          # (468,) index of each point's mirror partner
    hole_fill: np.ndarray       # (H, 468) the eye / mouth hole centres as averages of their rim points

    def extended(self) -> np.ndarray:
        """(468 + H, 468): landmarks -> landmarks plus hole centres."""
        return np.vstack([np.eye(len(self.mean_shape)), self.hole_fill])


@dataclass(frozen=True)
class DenseTopology:
    operator: np.ndarray        # (N, 468) float32: dense vertices = operator @ landmark vertices (Loop subdivision)
    triangles: np.ndarray       # (M', 3) int32
    uvs: np.ndarray             # (N, 2) float32


@lru_cache(maxsize=1)
def canonical() -> Canonical:
    with np.load(CANONICAL_PATH) as data:
        return Canonical(
            mean_shape=data["mean_shape"].astype(np.float64),
            triangles=data["triangles"].astype(np.int32),
            uvs=data["uvs"].astype(np.float64),
            mirror=data["mirror"].astype(np.int64),
            hole_fill=data["hole_fill"].astype(np.float64),
        )


@lru_cache(maxsize=1)
def dense_topology(levels: int = SUBDIVISION_LEVELS) -> DenseTopology:
    """Loop subdivision is linear in the vertex positions, so run it once on the identity to get its matrix."""
    from trimesh.remesh import subdivide_loop

    base = canonical()
    count = len(base.uvs)
    columns = []
    triangles = base.triangles
    for start in range(0, count, 3):
        basis = np.zeros((count, 3))
        for k in range(min(3, count - start)):
            basis[start + k, k] = 1.0
        dense, triangles = subdivide_loop(basis, base.triangles, iterations=levels)
        columns.append(dense[:, : min(3, count - start)])
    loop = np.hstack(columns)
    uvs = np.clip(loop @ base.uvs, 0.0, 1.0).astype(np.float32)
    operator = (loop @ base.extended()).astype(np.float32)
    return DenseTopology(operator=operator, triangles=np.asarray(triangles, dtype=np.int32), uvs=uvs)
