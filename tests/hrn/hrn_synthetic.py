"""Synthetic stand-ins for one HRN pipeline result, shaped as ModelScope's source documents (see convert.py).

They exercise OUR conversion only: nothing here says HRN itself behaves this way beyond what its code shows.
"""
from __future__ import annotations

import numpy as np

from face3d.shared.engines.hrn.convert import CAMERA_DISTANCE, FOCAL_PX, HrnPose, hrn_rotation

HRN_VERTICES = 35709
GRID = 189                       # 189 x 189 grid, cut to HRN's 35709 vertices
FACE_WIDTH_UNITS = 1.6           # HRN units are decimetres: a 16 cm wide, 20 cm tall face
FACE_HEIGHT_UNITS = 2.0
RED, BLUE = (255.0, 0.0, 0.0), (0.0, 0.0, 255.0)


def face_shape() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pose-free shape S (HRN units, x right, y up, bulging to +z), 0-based triangles, UVs (v = 0 at the chin)."""
    u, v = np.meshgrid(np.linspace(0, 1, GRID), np.linspace(0, 1, GRID))
    u, v = u.ravel()[:HRN_VERTICES], v.ravel()[:HRN_VERTICES]
    x, y = (u - 0.5) * FACE_WIDTH_UNITS, (v - 0.5) * FACE_HEIGHT_UNITS
    z = 0.6 * np.sqrt(np.clip(1 - (x / 0.9) ** 2 - (y / 1.1) ** 2, 0, None))
    shape = np.stack([x, y, z], axis=1)
    shape -= shape.mean(axis=0)
    rows, cols = np.meshgrid(np.arange(GRID - 1), np.arange(GRID - 1), indexing="ij")
    corner = (rows * GRID + cols).ravel()
    triangles = np.concatenate([np.stack([corner, corner + 1, corner + GRID], 1),
                                np.stack([corner + 1, corner + GRID + 1, corner + GRID], 1)])
    triangles = triangles[(triangles < HRN_VERTICES).all(axis=1)]
    return shape, triangles, np.stack([u, v], axis=1)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Like HRN's utils.estimate_normals: area-weighted face normals summed per vertex."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(normals, triangles[:, i], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def texture_bgr() -> np.ndarray:
    """(256, 256, 3) BGR float: top half red, bottom half blue, right half green; a little out of 0..255."""
    rgb = np.zeros((256, 256, 3), dtype=np.float32)
    rgb[:128] = RED
    rgb[128:] = BLUE
    rgb[:, 128:, 1] = 255.0
    rgb[:128, :, 0] = 300.0     # SH shading overshoots: must clip, not wrap
    rgb[rgb == 0] = -4.0
    return rgb[..., ::-1].copy()


def align_for(crop_center: tuple[float, float], face_px: float, crop_size: tuple[int, int]) -> np.ndarray:
    """trans_params (w0, h0, s, tx, ty) that put an unposed face of ``face_px`` width at ``crop_center``."""
    w0, h0 = crop_size
    aligned_face_px = FOCAL_PX * FACE_WIDTH_UNITS / CAMERA_DISTANCE
    return np.array([w0, h0, aligned_face_px / face_px, crop_center[0], h0 - 1 - crop_center[1]])


def hrn_result(angles=(0.0, 0.0, 0.0), translation=(0.0, 0.0, 0.0), align=None) -> tuple[dict, HrnPose, np.ndarray]:
    """(raw pipeline result, pose, pose-free shape S) with ``vertices = S @ R.T + t`` as in bfm.transform."""
    shape, triangles, uvs = face_shape()
    posed = shape @ hrn_rotation(np.array(angles)).T + np.array(translation)
    faces_1_based = triangles + 1
    mesh = {
        "vertices": posed.astype(np.float32),
        "faces": faces_1_based,
        "UVs": uvs.astype(np.float32),
        "faces_uv": faces_1_based,
        "normals": vertex_normals(posed, triangles).astype(np.float32),
        "faces_normal": faces_1_based,
    }
    raw = {
        "output_obj": None,
        "output_img": texture_bgr(),
        "output": {
            "mesh": mesh,
            "vis_image": np.zeros((224, 224 * 9, 3), dtype=np.float32),
            "frame_list": [np.zeros((512, 1536, 3), dtype=np.uint8)] * 30,
        },
    }
    pose = HrnPose(
        angles=np.array(angles, dtype=np.float64),
        translation=np.array(translation, dtype=np.float64),
        align=align if align is not None else align_for((400.0, 400.0), 300.0, (800, 800)),
        keypoints=np.linspace(0, HRN_VERTICES - 1, 68).astype(np.int64),
    )
    return raw, pose, shape
