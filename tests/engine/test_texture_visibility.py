"""Texture self-occlusion (depth buffer, mirror fill), detection-only calls and the quiet model load."""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pytest

from face3d.shared.engines.base import Options
from face3d.shared.engines.cpu import DetectedFace
from face3d.shared.engines.cpu.quiet import native_noise_filtered
from face3d.shared.engines.cpu.topology import canonical
from face3d.shared.engines.cpu.visibility import rasterise
from face3d.shared.imaging import load_image
from tests.engine.conftest import photo_path

ATLAS = 256


@pytest.fixture(scope="module")
def faces(cpu_engine):
    @lru_cache(maxsize=None)
    def reconstruct(name: str):
        return cpu_engine.reconstruct(load_image(photo_path(name)), Options(texture_size=ATLAS)).faces

    return reconstruct


def square(x0: float, x1: float, depth: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xy = np.array([[x0, x0], [x1, x0], [x1, x1], [x0, x1]], dtype=np.float64)
    return xy, np.full(4, depth), np.array([[0, 1, 2], [0, 2, 3]])


def test_depth_buffer_hides_what_lies_behind_a_nearer_surface():
    far_xy, far_z, far_tri = square(0.0, 100.0, 0.0)
    near_xy, near_z, near_tri = square(40.0, 60.0, 30.0)
    buffer = rasterise(np.vstack([far_xy, near_xy]), np.r_[far_z, near_z], np.vstack([far_tri, near_tri + 4]), step=10.0)
    points = np.array([[50.0, 50.0], [10.0, 10.0], [50.0, 50.0]])
    assert buffer.visible(points, np.array([0.0, 0.0, 30.0]), tolerance=2.0).tolist() == [False, True, True]
    distances = buffer.distance_to_edge(np.array([[50.0, 50.0], [39.0, 50.0], [20.0, 20.0]]))
    assert distances[1] < 0.02 < distances[2] and distances[0] > 0.05      # the near square's outline is an edge


def far_side_texels(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of atlas texels between the far eye and the mouth beside the nose, and of their mirror texels."""
    shape, uvs = canonical().mean_shape, canonical().uvs[: len(canonical().mean_shape)]
    far = 1.0 if yaw > 0 else -1.0                           # yaw < 0 shows +X (subject's left): the far side is -X
    eyes, mouth = shape[[33, 263], 1].mean(), shape[[13, 14], 1].mean()
    x, y = shape[:, 0] * far, shape[:, 1]
    ids = np.nonzero((x > 0.006) & (x < 0.04) & (y < eyes + 0.01) & (y > mouth))[0]
    rows = np.clip(np.rint((1.0 - uvs[ids, 1]) * ATLAS - 0.5), 0, ATLAS - 1).astype(int)

    def cols(u: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(u * ATLAS - 0.5), 0, ATLAS - 1).astype(int)

    return (rows, cols(uvs[ids, 0])), (rows, cols(1.0 - uvs[ids, 0]))


@pytest.mark.parametrize("name", ["b_yaw_left_face.jpg", "b_yaw_dim_room.jpg"])
def test_far_side_hidden_by_the_nose_takes_the_near_side_skin(faces, name):
    # before the depth buffer these texels sampled the nose, hair and wall: mean difference 7-9 levels
    face, = faces(name)
    far, near = far_side_texels(face.yaw)
    difference = np.abs(face.texture[far].astype(int) - face.texture[near].astype(int)).mean()
    assert difference < 3.0, difference


@pytest.mark.parametrize("name", ["b_yaw_left_face.jpg", "b_yaw_dim_room.jpg", "c_group_t1_six.jpg"])
def test_atlas_has_no_unfilled_texels(faces, name):
    for face in faces(name):
        assert not (face.texture.reshape(-1, 3).max(axis=1) == 0).any(), face.index


def test_synthesized_share_rises_with_yaw(faces):
    found = [f for name in ("a_frontal_obama.jpg", "c_group_t1_six.jpg", "b_yaw_left_face.jpg", "b_yaw_dim_room.jpg")
             for f in faces(name)]
    yaw = np.array([abs(f.yaw) for f in found])
    synthesized = np.array([f.texture_synthesized for f in found])
    ranks = [np.argsort(np.argsort(values)) for values in (yaw, synthesized)]
    assert np.corrcoef(*ranks)[0, 1] > 0.8
    assert synthesized[yaw > 45].min() > synthesized[yaw < 10].max() + 0.1


def test_detect_faces_matches_reconstruct_without_mesh(cpu_engine, faces):
    detected = cpu_engine.detect_faces(load_image(photo_path("c_group_t1_six.jpg")), Options())
    assert all(isinstance(d, DetectedFace) for d in detected)
    assert [d.bbox for d in detected] == [f.bbox for f in faces("c_group_t1_six.jpg")]
    assert all(d.landmarks_2d.shape == (468, 2) and 0 < d.score <= 1 for d in detected)
    assert len(cpu_engine.detect_faces(load_image(photo_path("c_group_t1_six.jpg")), Options(max_faces=2))) == 2


def test_detect_faces_finds_nothing_in_grass(cpu_engine):
    assert cpu_engine.detect_faces(load_image(photo_path("f_noface_grass.jpg")), Options()) == []


def test_model_load_noise_is_dropped_and_real_errors_kept(capfd):
    with native_noise_filtered():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 00:00:1795666679.273972   30017 inference_feedback_manager.cc:114] Feedback manager "
                    b"requires a model with a single signature inference. Disabling support for feedback tensors.\n")
        os.write(2, b"E0000 00:00:1.0 123 model.cc:1] cannot open the model file\n")
    err = capfd.readouterr().err
    assert "cannot open the model file" in err
    assert "XNNPACK" not in err and "Feedback manager" not in err


def test_loading_the_engine_prints_no_native_noise(capfd):
    from face3d.shared.engines.cpu import CpuEngine

    engine = CpuEngine()
    engine.load()
    engine.close()
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "Feedback manager" not in err and "InitializeLog" not in err
