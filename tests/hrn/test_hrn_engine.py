"""HrnEngine without HRN: refusal paths of load(), and the per-face crop loop with a fake runner in HRN's place."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from face3d.api.problems import http_status
from tests.hrn.hrn_synthetic import FACE_HEIGHT_UNITS, FACE_WIDTH_UNITS, align_for, hrn_result
from face3d.shared.engines.base import Options, Photo
from face3d.shared.engines.hrn import HrnEngine
from face3d.shared.engines.hrn.crops import MAX_CROP_SIDE, MIN_CROP_SIDE, crop_for_hrn
from face3d.shared.engines.hrn.engine import Environment
from face3d.shared.engines.hrn.failures import HrnNoFace
from face3d.shared.engines.hrn.runner import REQUIRED_WEIGHT_FILES, missing_modules
from face3d.shared.errors import EngineUnavailable, ErrorCode, NoFaceError

MARK = np.array([255, 0, 255], dtype=np.uint8)      # painted where the fake runner should "see" a face


def never_build(source: str):
    raise AssertionError(f"the pipeline must not be built ({source})")


GPU_READY = Environment(missing_modules=lambda: [], cuda_available=lambda: True, build_runner=never_build)


@pytest.mark.skipif(not missing_modules(), reason="this machine has the HRN GPU stack installed")
def test_load_refuses_with_engine_unavailable_when_packages_are_missing():
    with pytest.raises(EngineUnavailable) as caught:
        HrnEngine().load()
    assert caught.value.code is ErrorCode.ENGINE_UNAVAILABLE and http_status(caught.value.code) == 503
    assert "modelscope" in caught.value.message


def test_load_refuses_without_cuda():
    environment = Environment(missing_modules=lambda: [], cuda_available=lambda: False, build_runner=never_build)
    with pytest.raises(EngineUnavailable, match="CUDA"):
        HrnEngine(environment=environment).load()


def test_load_refuses_when_the_model_directory_lacks_weights(tmp_path):
    (tmp_path / "configuration.json").write_text("{}")
    with pytest.raises(EngineUnavailable, match="pytorch_model.pt") as caught:
        HrnEngine(model_dir=tmp_path, environment=GPU_READY).load()
    assert "configuration.json," not in caught.value.message


def test_load_reads_the_model_directory_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HRN_MODEL_DIR", str(tmp_path / "absent"))
    with pytest.raises(EngineUnavailable, match="not a directory"):
        HrnEngine(environment=GPU_READY).load()


def test_load_builds_the_pipeline_from_a_complete_model_directory(tmp_path):
    for name in REQUIRED_WEIGHT_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    built = []
    environment = Environment(missing_modules=lambda: [], cuda_available=lambda: True,
                              build_runner=lambda source: built.append(source) or fake_runner)
    HrnEngine(model_dir=tmp_path, environment=environment).load()
    assert built == [str(tmp_path)]


@pytest.mark.parametrize("side, expected", [(20, MIN_CROP_SIDE), (400, 400 * 2.2), (2000, MAX_CROP_SIDE)])
def test_crops_are_square_with_margin_and_scaled_into_hrn_range(side, expected):
    rgb = np.zeros((6000, 6000, 3), dtype=np.uint8)
    box = (2000.0, 2000.0, 2000.0 + side, 2000.0 + side)
    crop, where = crop_for_hrn(rgb, box)
    assert crop.shape[0] == crop.shape[1] == pytest.approx(expected, abs=2)
    corner = where.to_photo(np.array([[0.0, 0.0], [crop.shape[1], crop.shape[0]]]))
    np.testing.assert_allclose(corner.mean(axis=0), (2000 + side / 2, 2000 + side / 2), atol=1.5)


def test_crops_clip_at_the_photo_edge_and_keep_the_offset():
    rgb = np.zeros((300, 400, 3), dtype=np.uint8)
    rgb[10:60, 350:400] = MARK
    crop, where = crop_for_hrn(rgb, (350.0, 10.0, 400.0, 60.0))
    found = np.argwhere((crop == MARK).all(axis=2))
    top_left = where.to_photo(found.min(axis=0)[::-1].astype(float)[None])[0]
    np.testing.assert_allclose(top_left, (350, 10), atol=1.5)


def fake_runner(crop: np.ndarray):
    """Stands in for HRN: 'reconstructs' the biggest painted square of the crop (HRN takes its detector's best
    face), or fails like HRN does when it sees no face."""
    mask = (crop == MARK).all(axis=2).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    if count < 2:
        raise HrnNoFace("HRN found no face (KeyError in forward)")
    x, y, w, h, _ = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
    center = (x + (w - 1) / 2, y + (h - 1) / 2)
    face_px = min(w - 1, (h - 1) * FACE_WIDTH_UNITS / FACE_HEIGHT_UNITS)     # the synthetic face fills the square
    align = align_for(center, face_px, (crop.shape[1], crop.shape[0]))
    raw, pose, _ = hrn_result(angles=(0.0, 0.1, 0.0), align=align)
    return raw, pose


@pytest.fixture
def group_photo():
    rgb = np.full((900, 1600, 3), 90, dtype=np.uint8)
    boxes = [(1200.0, 500.0, 1300.0, 600.0), (100.0, 80.0, 400.0, 380.0)]
    for x0, y0, x1, y1 in boxes:
        rgb[int(y0):int(y1), int(x0):int(x1)] = MARK
    return Photo(rgb=rgb, name="group.png"), boxes


def test_every_detected_face_is_reconstructed_at_its_own_place(group_photo):
    photo, boxes = group_photo
    detections = [(boxes[0], 0.9), (boxes[1], 0.8), ((700.0, 600.0, 760.0, 660.0), 0.7), ((5.0, 5.0, 9.0, 9.0), 0.95)]
    stages = []
    engine = HrnEngine(detector=lambda p, o: detections, enhancer=lambda p: (p, False), runner=fake_runner)
    result = engine.reconstruct(photo, Options(texture_size=64), stages.append)
    assert result.engine == "hrn" and (result.width, result.height) == (1600, 900)
    assert [f.index for f in result.faces] == [0, 1]
    assert [f.bbox for f in result.faces] == [boxes[1], boxes[0]]                    # left to right
    for face, (x0, y0, x1, y1) in zip(result.faces, [boxes[1], boxes[0]]):
        center = face.camera.project(face.vertices).mean(axis=0)
        assert x0 < center[0] < x1 and y0 < center[1] < y1
        assert face.texture.shape == (64, 64, 3)
    assert result.warnings == ["face_skipped"]                                          # the unmarked box
    assert stages == ["detect", "reconstruct", "reconstruct", "reconstruct"]            # 4 px box dropped


def test_low_light_enhancement_is_reported(group_photo):
    photo, boxes = group_photo
    engine = HrnEngine(detector=lambda p, o: [(boxes[0], 0.9)], enhancer=lambda p: (p, True), runner=fake_runner)
    result = engine.reconstruct(photo, Options(texture_size=32))
    assert result.warnings == ["low_light_enhanced"] and result.faces[0].warnings == ["low_light_enhanced"]


def test_a_photo_without_faces_raises_no_face(group_photo):
    photo, _ = group_photo
    engine = HrnEngine(detector=lambda p, o: [], enhancer=lambda p: (p, False), runner=fake_runner)
    with pytest.raises(NoFaceError):
        engine.reconstruct(photo, Options())


def test_max_faces_keeps_the_most_confident(group_photo):
    photo, boxes = group_photo
    engine = HrnEngine(detector=lambda p, o: [(boxes[0], 0.6), (boxes[1], 0.9)], enhancer=lambda p: (p, False),
                       runner=fake_runner)
    result = engine.reconstruct(photo, Options(max_faces=1, texture_size=32))
    assert [f.bbox for f in result.faces] == [boxes[1]] and result.faces[0].score == 0.9


FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces"


@pytest.fixture(scope="module")
def cpu_detector():
    from face3d.shared.engines.hrn.engine import cpu_engine_detector

    return cpu_engine_detector()


def test_default_detector_is_the_cpu_engines(cpu_detector):
    from face3d.shared.imaging import load_image

    (box, score), = cpu_detector(load_image(FACES / "a_frontal_obama.jpg"), Options())
    assert 0 < score <= 1 and 150 < box[2] - box[0] < 700 and box[0] > 0 and box[3] < 1137
    assert cpu_detector(load_image(FACES / "f_noface_grass.jpg"), Options()) == []


def test_default_low_light_step_is_the_cpu_engines():
    from face3d.shared.engines.hrn.engine import cpu_low_light
    from face3d.shared.imaging import load_image

    dark = load_image(FACES / "d_lowlight_blurry_night.jpg")
    enhanced, changed = cpu_low_light(dark)
    assert changed and enhanced.rgb.mean() > dark.rgb.mean() + 10
    bright = load_image(FACES / "a_frontal_obama.jpg")
    assert cpu_low_light(bright) == (bright, False)


def test_group_photo_reconstructs_every_face_found_at_its_own_place(cpu_detector):
    """The CPU detector's boxes on a real group photo, each painted over so the fake HRN can 'see' them: every face
    comes back at its own box, neighbours inside a crop notwithstanding (matching.py retries those)."""
    from face3d.shared.imaging import load_image

    photo = load_image(FACES / "c_group_t1_six.jpg")
    detections = cpu_detector(photo, Options())
    painted = photo.rgb.copy()
    for (x0, y0, x1, y1), _ in detections:
        painted[int(y0):int(y1), int(x0):int(x1)] = MARK
    calls = []
    engine = HrnEngine(detector=lambda p, o: detections, enhancer=lambda p: (p, False),
                       runner=lambda crop: calls.append(crop.shape) or fake_runner(crop))
    result = engine.reconstruct(Photo(rgb=painted, name=photo.name), Options(texture_size=32))
    assert len(result.faces) == len(detections) >= 5 and result.warnings == []
    assert sorted(f.bbox for f in result.faces) == sorted(b for b, _ in detections)
    assert len(detections) <= len(calls) <= 2 * len(detections)
