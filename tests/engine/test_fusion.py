"""The fusion of MediaPipe with the robust model, its calibration, and the morphed mesh of every face."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from face3d.shared.engines.base import Options
from face3d.shared.engines.cpu import fusion
from face3d.shared.engines.cpu.ibug68 import FLIP_68
from face3d.shared.engines.cpu.morph import default_morph
from face3d.shared.engines.cpu.robust import basis
from face3d.shared.engines.cpu.topology import canonical
from face3d.shared.imaging import load_image
from tests.engine.conftest import photo_path

JSON_ONLY = Options(outputs=frozenset({"json"}))


def test_knot_weights_interpolate_linearly():
    weights = fusion.knot_weights(22.5)
    assert weights.sum() == pytest.approx(1.0)
    assert dict(zip(fusion.YAW_KNOTS[weights > 0], weights[weights > 0])) == {15.0: 0.5, 30.0: 0.5}
    assert fusion.knot_weights(500.0)[-1] == 1.0


def test_uncorrected_calibration_changes_nothing():
    raw = fusion.calibration().uncorrected()
    points = np.random.default_rng(1).random((68, 2)) * 100
    other = points + 5.0
    assert np.allclose(fusion.fuse_points(points, other, 30.0, 10.0, raw), points)
    rotation = cv2.Rodrigues(np.array([0.1, 0.5, -0.2]))[0]
    assert np.allclose(fusion.corrected_rotation(rotation, 30.0, raw), rotation)


def test_calibration_is_left_right_symmetric():
    calib = fusion.calibration()
    mirror = canonical().mirror
    assert np.array_equal(np.sort(mirror[calib.mediapipe_to_68], axis=1),
                          np.sort(calib.mediapipe_to_68[FLIP_68], axis=1))
    k = len(fusion.YAW_KNOTS)
    for knot in range(k):
        assert np.allclose(calib.alpha[knot], calib.alpha[k - 1 - knot][FLIP_68], atol=1e-6)
        assert np.allclose(calib.bias[knot], calib.bias[k - 1 - knot][FLIP_68] * [-1, 1], atol=1e-6)


def test_morph_of_the_model_mean_stays_near_the_canonical_face():
    morph = default_morph()
    shape = morph.shape(canonical().mean_shape, basis().mean)
    spread = np.ptp(canonical().mean_shape, axis=0)
    assert np.abs(shape - canonical().mean_shape).max() < 0.25 * spread.max()
    assert np.allclose(np.ptp(shape, axis=0), spread, rtol=0.25)


@pytest.mark.parametrize("name", ["b_yaw_left_face.jpg", "b_yaw_dim_room.jpg"])
def test_profile_meshes_are_whole_faces(cpu_engine, name):
    face = cpu_engine.reconstruct(load_image(photo_path(name)), JSON_ONLY).faces[0]
    width, height = np.ptp(face.landmarks_3d[:, 0]), np.ptp(face.landmarks_3d[:, 1])
    canonical_width, canonical_height = np.ptp(canonical().mean_shape[:, :2], axis=0)
    assert width > 0.8 * canonical_width and height > 0.8 * canonical_height
    assert width / height == pytest.approx(canonical_width / canonical_height, rel=0.2)


@pytest.mark.parametrize("name", ["a_frontal_obama.jpg", "c_group_t1_six.jpg", "b_yaw_dim_room.jpg"])
def test_every_face_has_68_landmarks_in_photo_and_face_frame(cpu_engine, name):
    for face in cpu_engine.reconstruct(load_image(photo_path(name)), JSON_ONLY).faces:
        assert face.landmarks_68.shape == (68, 2) and face.landmarks_68_3d.shape == (68, 3)
        size = np.ptp(face.landmarks_68, axis=0).max()
        projected = face.camera.project(face.landmarks_68_3d.astype(np.float64))
        assert np.linalg.norm(projected - face.landmarks_68, axis=1).mean() < 0.06 * size


def test_json_only_skips_the_texture(cpu_engine):
    face = cpu_engine.reconstruct(load_image(photo_path("a_frontal_obama.jpg")), JSON_ONLY).faces[0]
    assert face.texture is None and "texture_mirrored" not in face.warnings


def test_a_profile_only_faceboxes_confirms_is_found(cpu_engine):
    """The crowd: faces half hidden by hands fail MediaPipe's check; FaceBoxes with BlazeFace agreeing adds them."""
    faces = cpu_engine.reconstruct(load_image(photo_path("c_group_crowd_fans.jpg")), JSON_ONLY).faces
    robust_only = [f for f in faces if f.extra["landmarks"] == "robust"]
    assert robust_only and len(faces) >= 18
    assert all(f.landmarks_2d.shape == (468, 2) for f in robust_only)
