"""Pure conversion of one HRN pipeline result into our engine-neutral ``Face`` (numpy only, no torch).

What HRN returns, read from ModelScope's source (modelscope/modelscope, main branch, 2025):

- ``modelscope/pipelines/cv/face_reconstruction_pipeline.py`` (``FaceReconstructionPipeline.forward``): the pipeline
  returns ``{"output_img": texture_map, "output": {"mesh": face_mesh, "vis_image": ..., "frame_list": [...]},
  "output_obj": None}``. It reconstructs only the first face its own RetinaFace finds (``results[0]``), and an
  ``np.ndarray`` input is read as BGR (``LoadImage.convert_to_ndarray`` flips it), so we hand it PIL RGB images.
- ``modelscope/models/cv/face_reconstruction/models/facerecon_model.py`` (``save_results_hrn``):
  ``texture_map = (255 * pred_color_high).permute(0, 2, 3, 1)[..., ::-1]``: (256, 256, 3) float, **BGR**, nominally
  0..255 but shaded by spherical-harmonics lighting, so values can leave that range.
  ``face_mesh = {"vertices": (35709, 3), "faces": face_buf + 1 (1-based, (70789, 3)), "UVs": (35709, 2),
  "faces_uv": faces, "normals": (35709, 3), "faces_normal": faces}``. ``vertices`` is ``pred_vertex`` with
  ``z -> 10 - z`` undone, i.e. ``face_shape_transformed = S @ rot + trans``: the posed shape in HRN's world frame.
  ``vis_image`` is 9 panels of 224 px side by side, BGR float; ``frame_list`` is 30 RGB uint8 frames
  (input | grey | colour, 512 px each) of a -30..+30 degree yaw sweep at 5 degrees pitch.
- ``.../models/bfm.py``: ``compute_rotation`` builds ``Rz(z) @ Ry(y) @ Rx(x)`` from ``angle`` (radians) and
  ``transform`` applies ``points @ R.T + trans``; ``to_camera`` sets ``z_cam = 10 - z``; ``to_image`` is a pinhole
  with focal 1015 and centre 112 in a 224 px *aligned* image whose y axis points **up**; the mean shape is recentred
  on its vertex centroid. Units: ``utils.transferBFM09`` divides BFM's micrometres by 1e5, "to decimeter".
  Axes: +x image right, +y up, +z towards the camera: the same as ours.
- UV origin: ``bfm.add_nonlinear_offset`` samples UV maps at row ``h - 1 - v * h`` and ``utils.write_obj`` writes
  ``vt`` unchanged next to the texture saved with ``cv2.imwrite``: v = 0 is the bottom row, texture row 0 the top,
  which is our convention too, so UVs and texture rows are kept as they are (no v flip).
- ``utils.align_img`` / ``resize_n_crop_img``: the 224 px aligned image is the input scaled by ``s`` and shifted,
  ``trans_params = (w0, h0, s, tx, ty)``; landmarks in it are ``([x, y_up] - [tx, ty] + [w0, h0] / 2) * s -
  ([int(w0 s), int(h0 s)] / 2 - 112)`` with ``y_up = h0 - 1 - y``. The pipeline discards these parameters and the
  pose coefficients, so ``HrnPose`` carries what the engine reads from the pipeline object after each call.

None of this was run here (no CUDA, no model hub): the conversion is tested on synthetic arrays of these shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from face3d.shared.engines.base import Camera, Face

FOCAL_PX = 1015.0               # opt.focal
ALIGNED_CENTER_PX = 112.0       # opt.center: principal point of the 224 px aligned image
CAMERA_DISTANCE = 10.0          # opt.camera_d, in HRN units
METRES_PER_HRN_UNIT = 0.1       # HRN's BFM is in decimetres
EXTREME_YAW_DEGREES = 45.0


@dataclass(frozen=True)
class CropBox:
    """Where an HRN input crop came from: ``photo_xy = crop_xy / scale + (x0, y0)``."""

    x0: float
    y0: float
    scale: float = 1.0          # crop pixels per photo pixel

    def to_photo(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) / self.scale + np.array([self.x0, self.y0])


@dataclass(frozen=True)
class HrnPose:
    """What the pipeline computes but does not return, read from it after each call (see ``runner.py``)."""

    angles: np.ndarray          # (3,) radians about x, y, z: ``model.pred_coeffs_dict["angle"][0]``
    translation: np.ndarray     # (3,) HRN units: ``model.pred_coeffs_dict["trans"][0]``
    align: np.ndarray           # (5,) ``align_img`` trans_params (w0, h0, s, tx, ty) of the crop HRN was given
    keypoints: np.ndarray | None = None   # (68,) vertex indices: ``model.facemodel_front.keypoints``


def hrn_rotation(angles: np.ndarray) -> np.ndarray:
    """``Rz(z) @ Ry(y) @ Rx(x)`` as in ``bfm.compute_rotation`` (which returns its transpose for row vectors)."""
    x, y, z = (float(a) for a in angles)
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def yaw_pitch_roll(angles: np.ndarray) -> tuple[float, float, float]:
    """Our signs: yaw + turns the nose to image right (+x), pitch + looks up, roll + is counter-clockwise on screen."""
    x, y, z = np.degrees(np.asarray(angles, dtype=np.float64))
    return float(y), float(-x), float(z)   # Rx(+x) tips the nose down (-y), hence the minus


def project_to_crop(world_vertices: np.ndarray, align: np.ndarray) -> np.ndarray:
    """HRN's own perspective projection of posed vertices, mapped from the aligned image back to crop pixels."""
    w0, h0, s, tx, ty = (float(a) for a in align)
    z_cam = CAMERA_DISTANCE - world_vertices[:, 2]
    aligned = FOCAL_PX * world_vertices[:, :2] / z_cam[:, None] + ALIGNED_CENTER_PX   # y up
    resized_half = np.array([int(w0 * s), int(h0 * s)]) / 2.0
    x_y_up = (aligned + resized_half - ALIGNED_CENTER_PX) / s + np.array([tx, ty]) - np.array([w0, h0]) / 2.0
    return np.stack([x_y_up[:, 0], h0 - 1.0 - x_y_up[:, 1]], axis=1)


def fit_weak_perspective(points: np.ndarray, rotation: np.ndarray, photo_xy: np.ndarray) -> Camera:
    """Least-squares scale and shift so that ``Camera.project(points)`` best matches ``photo_xy``."""
    flat = (points @ rotation.T)[:, :2] * np.array([1.0, -1.0])
    flat_c, photo_c = flat - flat.mean(axis=0), photo_xy - photo_xy.mean(axis=0)
    scale = float(np.sum(flat_c * photo_c) / max(np.sum(flat_c * flat_c), 1e-12))
    translation = photo_xy.mean(axis=0) - scale * flat.mean(axis=0)
    return Camera(scale=scale, rotation=rotation.astype(np.float64), translation=translation)


def texture_to_rgb(texture_bgr: np.ndarray, size: int) -> np.ndarray:
    """HRN's BGR float texture (row 0 = top) to RGB uint8 at ``size`` x ``size``."""
    rgb = np.clip(np.rint(np.asarray(texture_bgr, dtype=np.float32)[..., ::-1]), 0, 255).astype(np.uint8)
    if rgb.shape[0] != size or rgb.shape[1] != size:
        interpolation = cv2.INTER_CUBIC if size > rgb.shape[0] else cv2.INTER_AREA
        rgb = cv2.resize(rgb, (size, size), interpolation=interpolation)
    return np.ascontiguousarray(rgb)


def outward_triangles(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return triangles wound counter-clockwise from outside (the face's normals sum towards +z) and if we flipped."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    if np.cross(b - a, c - a).sum(axis=0)[2] >= 0:
        return triangles, False
    return triangles[:, [0, 2, 1]], True


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 1e-12, norms, 1.0)


def convert_hrn_output(
    raw: dict,
    crop: CropBox,
    pose: HrnPose,
    *,
    index: int = 0,
    bbox: tuple[float, float, float, float] | None = None,
    score: float = 1.0,
    texture_size: int = 1024,
) -> Face:
    """One HRN pipeline result (``raw``, as returned) for one crop -> a ``Face`` in photo coordinates."""
    mesh = raw["output"]["mesh"]
    world = np.asarray(mesh["vertices"], dtype=np.float64)
    rotation = hrn_rotation(pose.angles)
    vertices, triangles, normals = _pose_free_mesh(mesh, world, pose, rotation)
    photo_xy = crop.to_photo(project_to_crop(world, pose.align))
    camera = fit_weak_perspective(vertices, rotation, photo_xy)
    yaw, pitch, roll = yaw_pitch_roll(pose.angles)
    keypoints = np.asarray(pose.keypoints if pose.keypoints is not None else [], dtype=np.int64)
    if bbox is None:
        bbox = (*photo_xy.min(axis=0), *photo_xy.max(axis=0))
    return Face(
        index=index,
        bbox=tuple(float(v) for v in bbox),
        score=float(score),
        yaw=yaw, pitch=pitch, roll=roll,
        vertices=vertices.astype(np.float32),
        triangles=triangles.astype(np.int32),
        uvs=np.clip(np.asarray(mesh["UVs"], dtype=np.float32), 0.0, 1.0),
        normals=normals.astype(np.float32),
        texture=texture_to_rgb(raw["output_img"], texture_size),
        texture_synthesized=_hidden_fraction(normals, rotation),
        landmarks_2d=photo_xy[keypoints].astype(np.float32).reshape(-1, 2),
        landmarks_3d=vertices[keypoints].astype(np.float32).reshape(-1, 3),
        camera=camera,
        warnings=["extreme_yaw"] if abs(yaw) > EXTREME_YAW_DEGREES else [],
        extra={"hrn_texture_px": int(np.asarray(raw["output_img"]).shape[0]), "landmark_scheme": "ibug68"},
    )


def _pose_free_mesh(mesh: dict, world: np.ndarray, pose: HrnPose,
                    rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo ``S @ R.T + t``: the pose-free shape in HRN units, then metres; its outward triangles and normals."""
    vertices = (world - np.asarray(pose.translation, dtype=np.float64)) @ rotation * METRES_PER_HRN_UNIT
    triangles, flipped = outward_triangles(vertices, np.asarray(mesh["faces"], dtype=np.int64) - 1)
    normals = unit_rows(np.asarray(mesh["normals"], dtype=np.float64) @ rotation) * (-1.0 if flipped else 1.0)
    return vertices, triangles, normals


def _hidden_fraction(normals: np.ndarray, rotation: np.ndarray) -> float:
    """Share of vertices facing away from the camera: an estimate of how much texture HRN had to invent."""
    return float(np.mean((normals @ rotation.T)[:, 2] <= 0.0))
