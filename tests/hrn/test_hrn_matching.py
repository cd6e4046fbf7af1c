"""The right face: HRN's landmark box against the detector's box, one retry with the neighbours painted over, then
``hrn_face_mismatch``."""
from __future__ import annotations

import numpy as np
import pytest

from tests.hrn.hrn_synthetic import align_for, hrn_result
from face3d.shared.engines.base import Options, Photo
from face3d.shared.engines.hrn import CropBox, HrnEngine
from face3d.shared.engines.hrn.matching import FILL_RGB, box_iou, fill_outside, landmark_box
from face3d.shared.engines.hrn.process import HrnProcess
from face3d.shared.errors import NoFaceError
from tests.hrn.test_hrn_engine import MARK, fake_runner

TARGET = (400.0, 400.0, 440.0, 440.0)
NEIGHBOUR = (442.0, 380.0, 484.0, 484.0)      # bigger, and inside the target's 2.2x crop: HRN's detector prefers it


def photo_with(*boxes) -> Photo:
    rgb = np.full((800, 800, 3), 90, dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        rgb[int(y0):int(y1), int(x0):int(x1)] = MARK
    return Photo(rgb=rgb, name="pair.png")


def engine(runner, detections) -> HrnEngine:
    return HrnEngine(detector=lambda p, o: detections, enhancer=lambda p: (p, False), runner=runner,
                     process=HrnProcess())


def recording(runner):
    crops = []

    def run(crop):
        crops.append(crop.copy())
        return runner(crop)

    return run, crops


def test_a_neighbour_reconstructed_instead_of_the_target_triggers_one_retry_with_the_rest_painted_over():
    run, crops = recording(fake_runner)
    result = engine(run, [(TARGET, 0.9)]).reconstruct(photo_with(TARGET, NEIGHBOUR), Options(texture_size=32))
    assert len(crops) == 2 and result.warnings == []
    assert [f.bbox for f in result.faces] == [TARGET]
    centre = result.faces[0].camera.project(result.faces[0].vertices).mean(axis=0)
    assert TARGET[0] < centre[0] < TARGET[2] and TARGET[1] < centre[1] < TARGET[3]
    first, retry = crops
    assert (first[0, 0] != FILL_RGB).any() and (retry[0, 0] == FILL_RGB).all() and (retry[-1, -1] == FILL_RGB).all()
    middle = retry.shape[0] // 2
    assert (retry[middle, middle] == MARK).all()                    # the target itself is kept


def off_target_runner(crop: np.ndarray):
    """Always 'reconstructs' a small face in the crop's top-left corner: never the target."""
    return hrn_result(align=align_for((60.0, 60.0), 50.0, (crop.shape[1], crop.shape[0])))[:2]


def test_a_face_that_still_does_not_match_is_skipped_with_hrn_face_mismatch():
    left = (100.0, 100.0, 300.0, 300.0)                  # faces run left to right: its two calls come first
    run, crops = recording(lambda crop: off_target_runner(crop) if len(crops) <= 2 else fake_runner(crop))
    result = engine(run, [(TARGET, 0.9), (left, 0.8)]).reconstruct(photo_with(TARGET, left), Options(texture_size=32))
    assert len(crops) == 3 and result.warnings == ["hrn_face_mismatch"]
    assert [f.bbox for f in result.faces] == [TARGET]


def test_only_mismatches_mean_no_usable_face():
    with pytest.raises(NoFaceError, match="hrn_face_mismatch"):
        engine(off_target_runner, [(TARGET, 0.9)]).reconstruct(photo_with(TARGET), Options(texture_size=32))


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_fill_outside_keeps_the_enlarged_target_box_in_a_scaled_crop():
    crop = np.zeros((200, 200, 3), dtype=np.uint8)
    where = CropBox(x0=100.0, y0=50.0, scale=2.0)                    # crop pixel = (photo - offset) * 2
    filled = fill_outside(crop, where, (130.0, 80.0, 150.0, 100.0), margin=0.1)    # kept: photo 128..152, 78..102
    kept = np.argwhere((filled != FILL_RGB).any(axis=2))
    assert kept.min(axis=0).tolist() == [56, 56] and kept.max(axis=0).tolist() == [103, 103]


def test_landmark_box_is_the_projected_keypoints_in_photo_pixels():
    raw, pose, _ = hrn_result(align=align_for((300.0, 300.0), 200.0, (600, 600)))
    box = landmark_box(raw, pose, CropBox(x0=1000.0, y0=0.0, scale=2.0))
    assert 1000 + 90 < box[0] < 1000 + 110 and 1000 + 190 < box[2] < 1000 + 210      # 200 crop px = 100 photo px
