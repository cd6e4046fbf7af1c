"""A closed, printable solid from a face shell: the face, a wall straight back from its outline, and a flat back
(a relief).

Engines give an open shell (the face surface; its eye and mouth holes are closed). Printing, and any tool that needs
an inside, wants a closed, consistently wound surface. The relief keeps the face exactly and adds only what lies
behind it: every outline vertex is copied onto a plane BACK_MM behind the deepest point of the face, the copies are
joined to the outline by a wall and fanned to their centre. Millimetres; the face at life size (engines scale faces
to an average adult's, 63 mm between the eye centres) unless a height is asked for.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BACK_MM = 8.0                # back plate thickness behind the deepest point of the face


@dataclass(frozen=True)
class Relief:
    vertices: np.ndarray         # (N + R + 1, 3) float64 mm: the face's N vertices, R back copies, the back centre
    triangles: np.ndarray        # (M + 3R, 3) int64 counter-clockwise from outside: face, wall, back
    face_vertices: int           # N: the first N vertices are the face's own, in its order
    face_triangles: int          # M: the first M triangles are the face's own


def outline_loop(triangles: np.ndarray) -> np.ndarray:
    """The boundary vertices of a shell in order (the longest loop of edges used by one triangle only), oriented
    as its triangles traverse them."""
    directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    present = {(int(a), int(b)) for a, b in directed}
    following = {int(a): int(b) for a, b in directed if (int(b), int(a)) not in present}
    loops = []
    while following:
        vertex = next(iter(following))
        loop = []
        while vertex in following:
            loop.append(vertex)
            vertex = following.pop(vertex)
        loops.append(loop)
    if not loops:
        raise ValueError("the mesh has no outline: it is closed already")
    return np.array(max(loops, key=len), dtype=np.int64)


def relief(vertices_m: np.ndarray, triangles: np.ndarray, height_mm: float | None = None,
           back_mm: float = BACK_MM) -> Relief:
    """The face shell (metres, +z out of the face) as a watertight solid in millimetres; ``height_mm`` scales the
    whole solid to that height (its extent along y)."""
    vertices = np.asarray(vertices_m, np.float64) * 1000.0
    triangles = np.asarray(triangles, np.int64)
    loop = outline_loop(triangles)
    count, ring = len(vertices), len(loop)
    back_z = vertices[:, 2].min() - back_mm
    back = np.c_[vertices[loop, :2], np.full(ring, back_z)]
    centre = np.array([[*back[:, :2].mean(axis=0), back_z]])
    copy = count + np.arange(ring)                    # index of each outline vertex's copy on the back plane
    following = np.roll(np.arange(ring), -1)
    wall = np.r_[np.c_[loop[following], loop, copy], np.c_[loop[following], copy, copy[following]]]
    cap = np.c_[copy, np.full(ring, count + ring), copy[following]]
    solid = np.vstack([vertices, back, centre])
    if height_mm:
        solid = solid * (height_mm / float(np.ptp(solid[:, 1])))
    return Relief(solid, np.vstack([triangles, wall, cap]), count, len(triangles))
