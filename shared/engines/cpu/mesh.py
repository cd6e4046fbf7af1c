"""Per-face geometry: pose removal, metric scale, dense smooth mesh and normals from 468 photo-space landmarks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from face3d.shared.engines.base import Camera
from face3d.shared.engines.cpu.pose import Similarity, euler_degrees, fit_with_depth_scale, to_camera_frame
from face3d.shared.engines.cpu.topology import canonical, dense_topology


@dataclass
class FaceGeometry:
    landmarks_3d: np.ndarray     # (468, 3) metres, face frame
    vertices: np.ndarray         # (N, 3) float32
    triangles: np.ndarray        # (M, 3) int32
    uvs: np.ndarray              # (N, 2) float32
    normals: np.ndarray          # (N, 3) float32
    camera: Camera
    facing: np.ndarray           # (M,) cosine between each triangle's normal and the view direction
    yaw: float
    pitch: float
    roll: float
    fit: Similarity


@dataclass(frozen=True)
class PosedMesh:
    """The dense mesh as the photo sees it: what the texture baker needs."""

    xy: np.ndarray               # (N, 2) photo pixels
    depth: np.ndarray            # (N,) photo pixels along the view axis, larger = nearer the camera
    facing: np.ndarray           # (N,) cosine between each vertex normal and the view direction
    triangles: np.ndarray        # (M, 3) int32
    triangle_facing: np.ndarray  # (M,) the same cosine per triangle
    pixels_per_metre: float


def posed(geometry: FaceGeometry) -> PosedMesh:
    camera = geometry.camera
    rotated = geometry.vertices.astype(np.float64) @ camera.rotation.T
    xy = camera.scale * rotated[:, :2] * np.array([1.0, -1.0]) + camera.translation
    facing = geometry.normals @ camera.rotation[2].astype(np.float32)
    return PosedMesh(xy, camera.scale * rotated[:, 2], facing, geometry.triangles, geometry.facing, camera.scale)


def mediapipe_shape(points: np.ndarray) -> tuple[Similarity, np.ndarray]:
    """MediaPipe's points in a camera frame (x right, y up, z to the viewer; depth stretched to fit, see pose.py)
    and the similarity that best maps the mean face onto them."""
    fit, depth_scale = fit_with_depth_scale(canonical().mean_shape, to_camera_frame(points))
    return fit, to_camera_frame(points) * np.array([1.0, 1.0, depth_scale])


def build(points: np.ndarray) -> FaceGeometry:
    """The geometry of MediaPipe's 468 points alone, posed by their own similarity fit."""
    fit, observed = mediapipe_shape(points)
    landmarks_3d = (observed - fit.translation) @ fit.rotation / fit.scale
    return geometry_of(landmarks_3d, fit)


def geometry_of(landmarks_3d: np.ndarray, fit: Similarity) -> FaceGeometry:
    """Dense mesh, normals and camera of face-frame landmarks seen through ``fit`` (photo = s R X + t, y flipped)."""
    topology = dense_topology()
    vertices = (topology.operator @ landmarks_3d.astype(np.float32)).astype(np.float32)
    face_normals, normals = surface_normals(vertices, topology.triangles)
    camera = Camera(scale=fit.scale, rotation=fit.rotation,
                    translation=np.array([fit.translation[0], -fit.translation[1]]))
    facing = face_normals @ fit.rotation[2].astype(np.float32)       # z of R @ n
    yaw, pitch, roll = euler_degrees(fit.rotation)
    return FaceGeometry(landmarks_3d, vertices, topology.triangles, topology.uvs, normals, camera, facing,
                        yaw, pitch, roll, fit)


def surface_normals(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals and area-weighted unit vertex normals."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    weighted = np.cross(b - a, c - a)
    lengths = np.linalg.norm(weighted, axis=1, keepdims=True)
    face_normals = weighted / np.maximum(lengths, 1e-20)
    summed = np.zeros_like(vertices)
    for k in range(3):
        for axis in range(3):
            summed[:, axis] += np.bincount(triangles[:, k], weights=weighted[:, axis], minlength=len(vertices))
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    normals = np.where(norms > 1e-20, summed / np.maximum(norms, 1e-20), np.array([0.0, 0.0, 1.0], dtype=np.float32))
    return face_normals.astype(np.float32), normals.astype(np.float32)
