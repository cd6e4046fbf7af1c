"""The pose-robust model: 3DDFA_V2's regressor and FaceBoxes as ONNX (shared/engines/cpu/robust.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from face3d.shared.engines.cpu.robust import INPUT, RobustModel, crop_square, square_from_box
from face3d.shared.imaging import load_image
from tests.engine.conftest import photo_path


@pytest.fixture(scope="module")
def robust() -> RobustModel:
    return RobustModel()


def bgr_of(name: str) -> np.ndarray:
    return np.ascontiguousarray(load_image(photo_path(name)).rgb[:, :, ::-1])


def yaw_of(rotation: np.ndarray) -> float:
    return float(np.degrees(np.arcsin(-rotation[0, 2])))


def test_crop_matches_the_resize_the_network_was_trained_with():
    image = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    expected = cv2.resize(image[40:280, 30:270], (INPUT, INPUT), interpolation=cv2.INTER_LINEAR)
    difference = np.abs(crop_square(image, (30, 40, 270, 280)).astype(int) - expected.astype(int))
    assert difference[2:-2, 2:-2].max() <= 1


def test_faceboxes_finds_a_frontal_face_and_nothing_in_grass(robust):
    boxes = robust.detect(bgr_of("a_frontal_obama.jpg"))
    assert boxes and boxes[0][1] > 0.9
    assert all(score < 0.5 for _, score in robust.detect(bgr_of("f_noface_grass.jpg")))


def test_fit_is_mirror_consistent(robust):
    bgr = bgr_of("b_yaw_left_face.jpg")
    box = robust.detect(bgr)[0][0]
    yaw = yaw_of(robust.fit(bgr, square_from_box(box)).rotation)
    mirrored = np.ascontiguousarray(bgr[:, ::-1])
    width = bgr.shape[1]
    mirrored_box = (width - box[2], box[1], width - box[0], box[3])
    mirrored_yaw = yaw_of(robust.fit(mirrored, square_from_box(mirrored_box)).rotation)
    assert yaw > 45 and abs(yaw + mirrored_yaw) < 2.0
