"""Generate canonical.npz: mean frontal face shape, triangles, mirror pairs and a symmetric cylindrical UV layout.

Run from the repository root:  python tools/make_canonical.py [photo ...]
(defaults to the frontal a_* photos in ../shared/faces). Steps: landmarks on each photo -> generalised Procrustes
mean -> find the mirror partner of every point -> exact symmetrisation -> metric scale (63 mm between eye centres)
-> triangles from MediaPipe's tessellation, oriented towards +z -> cylindrical UVs, u -> 1 - u symmetric, packed
into the square atlas.

    python tools/make_canonical.py --uvs-only

recomputes only the UV layout from the stored mean shape (the shape, triangles and mirror pairs stay as they are).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from face3d.shared.engines.cpu.detect import Detector, suppress
from face3d.shared.engines.cpu.landmarks import LandmarkModel, roi_from_box, roi_from_landmarks
from face3d.shared.engines.cpu.pose import fit_similarity, to_camera_frame
from face3d.shared.engines.cpu.topology import CANONICAL_PATH, triangles_from_edges
from face3d.shared.imaging import load_image

EYE_CORNERS = {"right": (33, 133), "left": (362, 263)}
INTER_EYE_M = 0.063
HEAD_CENTRE_BEHIND_NOSE_M = 0.09
NOSE_TIP = 1
FACES_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "faces"


def landmarks_of(path: Path, detector: Detector, model: LandmarkModel) -> np.ndarray:
    rgb = load_image(path).rgb
    best = suppress(detector.detect(rgb, tiles=False))[0]
    fit = model.fit(rgb, roi_from_box(best.box, best.keypoints[:2]))
    fit = model.fit(rgb, roi_from_landmarks(fit.points))
    return to_camera_frame(fit.points)


def procrustes_mean(shapes: list[np.ndarray], rounds: int = 5) -> np.ndarray:
    mean = shapes[0] - shapes[0].mean(axis=0)
    for _ in range(rounds):
        aligned = []
        for shape in shapes:
            sim = fit_similarity(shape, mean)
            aligned.append(sim.scale * shape @ sim.rotation.T + sim.translation)
        mean = np.mean(aligned, axis=0)
        mean -= mean.mean(axis=0)
    return mean


def eye_centres(shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return tuple(shape[list(EYE_CORNERS[side])].mean(axis=0) for side in ("right", "left"))


def mirror_pairs(shape: np.ndarray, rounds: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Each point's mirror partner, found by nearest neighbour against the x-mirrored shape, refining the plane."""
    right, left = eye_centres(shape)
    x_axis = (left - right) / np.linalg.norm(left - right)
    shape = shape - (left + right) / 2
    z_axis = np.cross(x_axis, np.array([0.0, 1.0, 0.0]))
    z_axis = -z_axis if z_axis[2] < 0 else z_axis
    y_axis = np.cross(z_axis, x_axis)
    shape = shape @ np.stack([x_axis, y_axis, z_axis]).T
    for _ in range(rounds):
        mirrored = shape * np.array([-1.0, 1.0, 1.0])
        distances = np.linalg.norm(shape[:, None, :] - mirrored[None, :, :], axis=2)
        partner = distances.argmin(axis=1)
        sim = fit_similarity(mirrored[partner], shape)          # plane refinement: rigid part only
        half = _half_rotation(sim.rotation)
        shape = (shape - sim.translation / 2) @ half
    return shape, partner


def _half_rotation(rotation: np.ndarray) -> np.ndarray:
    """The rotation half-way to ``rotation`` (so the shape meets its mirror image in the middle)."""
    import cv2

    vector, _ = cv2.Rodrigues(rotation)
    half, _ = cv2.Rodrigues(vector / 2)
    return half


def symmetrise(shape: np.ndarray, partner: np.ndarray) -> np.ndarray:
    if not np.array_equal(partner[partner], np.arange(len(partner))):
        raise SystemExit("mirror pairing is not an involution; add more frontal photos")
    return (shape + shape[partner] * np.array([-1.0, 1.0, 1.0])) / 2


def cylindrical_uvs(shape: np.ndarray, axis_z: float, margin: float = 0.02) -> np.ndarray:
    theta = np.arctan2(shape[:, 0], shape[:, 2] - axis_z)
    radius = float(np.median(np.hypot(shape[:, 0], shape[:, 2] - axis_z)))
    flat = np.stack([theta * radius, shape[:, 1]], axis=1)
    flat[:, 1] -= (flat[:, 1].min() + flat[:, 1].max()) / 2       # centre v; u is already centred (theta symmetric)
    extent = float(np.abs(flat).max()) * 2
    return flat / extent * (1 - 2 * margin) + 0.5


def packed_uvs(uvs: np.ndarray, margin: float = 0.02) -> np.ndarray:
    """The chart stretched into the square atlas: its bounding box scaled to the square, then the elliptical grid
    mapping (Fong 2015) from the disc onto the square, so the near-elliptical face outline fills the atlas (about
    85 % of it instead of 53 %; every region gains texels, the outline most). Smooth, one-to-one and odd in u, so
    u -> 1 - u still maps each point onto its mirror partner."""
    low, high = uvs.min(axis=0), uvs.max(axis=0)
    disc = (uvs - (low + high) / 2) / ((high - low) / 2)
    disc /= np.hypot(disc[:, 0], disc[:, 1]).max()            # inside the unit disc, where the mapping is defined
    u, v = disc[:, 0], disc[:, 1]
    root2 = np.sqrt(2.0)

    def axis(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        base = 2.0 + a * a - b * b
        return 0.5 * np.sqrt(np.maximum(base + 2 * root2 * a, 0.0)) - 0.5 * np.sqrt(np.maximum(base - 2 * root2 * a, 0.0))

    square = np.c_[axis(u, v), axis(v, u)]
    return square * (0.5 - margin) + 0.5


def hole_fans(triangles: np.ndarray, count: int) -> tuple[np.ndarray, list[list[int]]]:
    """Close the eye and mouth holes: one new centre vertex per inner boundary loop, fanned to the loop."""
    directed = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    present = {tuple(e) for e in directed}
    boundary = {int(a): int(b) for a, b in directed if (b, a) not in present}   # a -> b along a boundary
    loops: list[list[int]] = []
    while boundary:
        start, loop = next(iter(boundary)), []
        vertex = start
        while vertex in boundary:
            loop.append(vertex)
            vertex = boundary.pop(vertex)
        loops.append(loop)
    inner = sorted(loops, key=len)[:-1]                       # the longest loop is the face outline
    fans = [[loop[(i + 1) % len(loop)], loop[i], count + k] for k, loop in enumerate(inner) for i in range(len(loop))]
    return np.vstack([triangles, np.array(fans)]), inner


def unfold_uvs(uvs: np.ndarray, triangles: np.ndarray, mirror: np.ndarray, rounds: int = 500) -> np.ndarray:
    """Relax the few UV triangles that fold over (inner lips), keeping the layout exactly symmetric."""
    uvs = uvs.copy()
    neighbours = [set() for _ in range(len(uvs))]
    for a, b, c in triangles:
        neighbours[a] |= {b, c}; neighbours[b] |= {a, c}; neighbours[c] |= {a, b}
    for _ in range(rounds):
        flipped = np.where(signed_areas(uvs, triangles) <= 0)[0]
        if not len(flipped):
            break
        for vertex in set(triangles[flipped].ravel()):
            uvs[vertex] = uvs[list(neighbours[vertex])].mean(axis=0)
        uvs = (uvs + np.c_[1 - uvs[mirror, 0], uvs[mirror, 1]]) / 2
    return uvs


def signed_areas(uvs: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (uvs[triangles[:, k]] for k in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def oriented(triangles: np.ndarray, shape: np.ndarray) -> np.ndarray:
    import trimesh

    mesh = trimesh.Trimesh(shape, triangles, process=False)
    trimesh.repair.fix_winding(mesh)
    faces = np.asarray(mesh.faces)
    if (mesh.face_normals[:, 2] * mesh.area_faces).sum() < 0:
        faces = faces[:, ::-1]
    return faces


def _mirror_holes(fill: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """Which hole is the mirror image of which (eyes swap, the mouth maps to itself)."""
    return np.array([int(np.argmax(fill @ row[partner])) for row in fill])


def layout(shape: np.ndarray, fill: np.ndarray, triangles: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """The UV layout of the mean shape and its hole centres: cylindrical, unfolded, packed into the atlas."""
    uvs = packed_uvs(unfold_uvs(cylindrical_uvs(np.vstack([shape, fill @ shape]), axis_z=0.0), triangles, mirror))
    if (signed_areas(uvs, triangles) <= 0).any():
        raise SystemExit("UV layout still folds over; check the mean shape")
    return uvs


def relayout() -> None:
    """Only the UV layout, from the stored mean shape."""
    with np.load(CANONICAL_PATH) as data:
        stored = {name: data[name] for name in data.files}
    shape, fill = stored["mean_shape"].astype(np.float64), stored["hole_fill"].astype(np.float64)
    mirror = np.concatenate([stored["mirror"], len(shape) + _mirror_holes(fill, stored["mirror"])])
    stored["uvs"] = layout(shape, fill, stored["triangles"], mirror)
    np.savez_compressed(CANONICAL_PATH, **stored)
    print(f"{CANONICAL_PATH}: UV layout recomputed ({len(stored['uvs'])} points)")


def main(paths: list[str]) -> None:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    photos = [Path(p) for p in paths] or sorted(FACES_DIR.glob("a_*"))
    detector, model = Detector(), LandmarkModel()
    shape, partner = mirror_pairs(procrustes_mean([landmarks_of(p, detector, model) for p in photos]))
    shape = symmetrise(shape, partner)
    right, left = eye_centres(shape)
    shape = shape * (INTER_EYE_M / np.linalg.norm(left - right))
    shape -= np.array([0.0, shape[:, 1].mean(), shape[NOSE_TIP, 2] - HEAD_CENTRE_BEHIND_NOSE_M])
    shape[partner == np.arange(len(shape)), 0] = 0.0
    triangles = oriented(triangles_from_edges(FACEMESH_TESSELATION), shape)
    triangles, holes = hole_fans(triangles, len(shape))
    fill = np.zeros((len(holes), len(shape)))
    for k, loop in enumerate(holes):
        fill[k, loop] = 1.0 / len(loop)
    mirror = np.concatenate([partner, len(shape) + _mirror_holes(fill, partner)])
    uvs = layout(shape, fill, triangles, mirror)
    np.savez_compressed(CANONICAL_PATH, mean_shape=shape.astype(np.float32), triangles=triangles.astype(np.int32),
                        uvs=uvs, mirror=partner.astype(np.int32), hole_fill=fill.astype(np.float32),
                        source=np.array([p.name for p in photos]))
    print(f"{CANONICAL_PATH}: {len(shape)} points + {len(holes)} hole centres, {len(triangles)} triangles, "
          f"{int((partner == np.arange(len(shape))).sum())} on the midline, from {len(photos)} photos")


if __name__ == "__main__":
    relayout() if sys.argv[1:] == ["--uvs-only"] else main(sys.argv[1:])
