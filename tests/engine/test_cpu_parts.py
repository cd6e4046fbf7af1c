"""CPU engine building blocks on synthetic input: detector-box suppression, depth-scaled pose fit, bar trimming."""
from __future__ import annotations

import numpy as np

from face3d.shared.engines.cpu import lowlight
from face3d.shared.engines.cpu.detect import Candidate, suppress
from face3d.shared.engines.cpu.pose import euler_degrees, fit_with_depth_scale, rotation_from_euler, to_camera_frame
from face3d.shared.engines.cpu.topology import canonical


def candidate(x: float, score: float) -> Candidate:
    return Candidate((x, 0.0, x + 10.0, 10.0), score, np.zeros((6, 2)))


def test_suppress_counts_the_boxes_it_merges():
    kept = suppress([candidate(0, 0.9), candidate(1, 0.8), candidate(0.5, 0.7), candidate(50, 0.6)], threshold=0.5)
    assert [(k.box[0], k.support) for k in kept] == [(0, 3), (50, 1)]
    assert kept[0].score == 0.9


def observed(yaw: float, depth_compression: float) -> np.ndarray:
    """Photo-pixel landmarks of the mean face turned by ``yaw``, with the depth squashed like the landmark model's."""
    shape = canonical().mean_shape @ rotation_from_euler(yaw, 0.0, 0.0).T * 2000.0 + [300.0, 300.0, 0.0]
    camera = shape * np.array([1.0, 1.0, 1.0 / depth_compression])
    return to_camera_frame(camera)            # the frame flip is its own inverse


def test_depth_scale_fit_recovers_a_squashed_profile():
    fit, factor = fit_with_depth_scale(canonical().mean_shape, to_camera_frame(observed(60.0, 1.2)))
    assert abs(factor - 1.2) < 0.051
    assert abs(euler_degrees(fit.rotation)[0] - 60.0) < 2.0


def test_depth_scale_leaves_a_true_frontal_face_alone():
    fit, factor = fit_with_depth_scale(canonical().mean_shape, to_camera_frame(observed(0.0, 1.0)))
    assert factor == 1.0
    assert abs(euler_degrees(fit.rotation)[0]) < 0.5


def test_letterbox_bars_do_not_count_as_darkness():
    rng = np.random.default_rng(0)
    picture = rng.integers(90, 200, size=(96, 128, 3), dtype=np.uint8)
    letterboxed = np.zeros((160, 128, 3), dtype=np.uint8)
    letterboxed[32:128] = picture
    assert not lowlight.measure(letterboxed).is_low
    assert abs(lowlight.measure(letterboxed).mean - lowlight.measure(picture).mean) < 1.0


def test_a_dark_photo_is_still_dark():
    rng = np.random.default_rng(1)
    assert lowlight.measure(rng.integers(0, 40, size=(120, 160, 3), dtype=np.uint8)).is_low
