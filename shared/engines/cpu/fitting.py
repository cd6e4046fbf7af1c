"""One face, both models: the fused 68 landmarks, a calibrated pose, and the 468-point shape the mesh is made of.

The robust model (3DDFA_V2) fits every face, from the crop MediaPipe's points give when that model verified the face
(the sharper crop: -0.1 % NME on the development split) or from the FaceBoxes box otherwise. Its 3DMM shape moves our
canonical face (morph.py); where MediaPipe saw the face nearly frontal (|yaw| <= 25 degrees, fading out by 45) its
468 observed points take over, so frontal meshes keep MediaPipe's dense, pixel-exact detail and turned faces get the
whole face of the model instead of a collapsed patch. The shape is blended in the camera frame, so the mesh projects
exactly onto the blended points and the texture lands where the photo shows the face.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from face3d.shared.engines.cpu.finding import Found
from face3d.shared.engines.cpu.fusion import corrected_rotation, fuse_points, mediapipe_68, raw_angles
from face3d.shared.engines.cpu.mesh import FaceGeometry, geometry_of, mediapipe_shape
from face3d.shared.engines.cpu.morph import default_morph
from face3d.shared.engines.cpu.pose import Similarity
from face3d.shared.engines.cpu.robust import CROP_SCALES, RobustFit, RobustModel, square_from_box, square_from_points
from face3d.shared.engines.cpu.topology import canonical

FRONTAL_YAW = 25.0           # MediaPipe's shape is used whole up to this yaw ...
PROFILE_YAW = 45.0           # ... and not at all from this one on


@dataclass
class FaceFit:
    robust: RobustFit
    landmarks_68: np.ndarray      # (68, 2) fused, photo pixels, iBUG order
    rotation: np.ndarray          # (3, 3) calibrated head rotation
    geometry: FaceGeometry
    landmarks_68_3d: np.ndarray   # (68, 3) metres, face frame: the model's points
    mediapipe_weight: float


def robust_fit(model: RobustModel, bgr: np.ndarray, found: Found, scales=CROP_SCALES) -> RobustFit:
    """The robust model on the face's best crop: MediaPipe's 68 points, or FaceBoxes' box and one refinement."""
    if found.fit is not None:
        return model.fit(bgr, square_from_points(mediapipe_68(found.fit.points)), scales)
    first = model.fit(bgr, square_from_box(found.box), scales=(1.0,))
    return model.fit(bgr, square_from_points(first.points), scales)


def fuse(found: Found, robust: RobustFit) -> FaceFit:
    yaw, _, roll = raw_angles(robust.rotation)
    mediapipe = None if found.fit is None else mediapipe_68(found.fit.points)
    landmarks = fuse_points(robust.points, mediapipe, yaw, roll)
    rotation = corrected_rotation(robust.rotation, yaw)
    weight = 0.0 if found.fit is None else float(np.clip((PROFILE_YAW - abs(yaw)) / (PROFILE_YAW - FRONTAL_YAW), 0, 1))
    geometry, landmarks_3d = _geometry(robust, landmarks, rotation, None if weight == 0 else found.fit.points, weight)
    return FaceFit(robust, landmarks, rotation, geometry, landmarks_3d, weight)


def _geometry(robust: RobustFit, landmarks: np.ndarray, rotation: np.ndarray, mediapipe: np.ndarray | None,
              weight: float) -> tuple[FaceGeometry, np.ndarray]:
    morph = default_morph()
    shape = morph.shape(canonical().mean_shape, robust.model_points)
    anchors = morph.anchors_of(shape)
    scale, shift = _scale_and_shift((anchors @ rotation.T)[:, :2] * [1.0, -1.0], landmarks)
    lift = np.array([shift[0], -shift[1], 0.0])
    points = scale * shape @ rotation.T + lift                       # camera frame, photo pixels, y up
    model_points = scale * anchors @ rotation.T + lift
    if mediapipe is not None:
        fit, observed = mediapipe_shape(mediapipe)
        observed[:, 2] += points[:, 2].mean() - observed[:, 2].mean()
        own_shape = (observed - fit.translation) @ fit.rotation / fit.scale
        points = weight * observed + (1.0 - weight) * points
        shape = weight * own_shape + (1.0 - weight) * shape
        scale = weight * fit.scale + (1.0 - weight) * scale
    origin = points.mean(axis=0) - scale * rotation @ shape.mean(axis=0)
    landmarks_3d = (points - origin) @ rotation / scale
    residual = float(np.sqrt(((model_points[:, :2] * [1, -1] - landmarks) ** 2).sum(axis=1).mean()) / scale)
    similarity = Similarity(scale, rotation, origin, residual)
    return geometry_of(landmarks_3d, similarity), (model_points - origin) @ rotation / scale


def _scale_and_shift(projected: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """s, t minimising |s * projected + t - target|^2 (rotation already applied)."""
    p, q = projected - projected.mean(axis=0), target - target.mean(axis=0)
    scale = float((p * q).sum() / max((p ** 2).sum(), 1e-12))
    return scale, target.mean(axis=0) - scale * projected.mean(axis=0)
