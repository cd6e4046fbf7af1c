"""Checks of OUR conversion of HRN's documented output (synthetic arrays of its shapes), not of HRN itself."""
from __future__ import annotations

import numpy as np
import pytest

from tests.hrn.hrn_synthetic import HRN_VERTICES, align_for, hrn_result
from face3d.shared.engines.hrn.convert import (
    ALIGNED_CENTER_PX,
    CAMERA_DISTANCE,
    FOCAL_PX,
    CropBox,
    convert_hrn_output,
    project_to_crop,
)

POSE = dict(angles=(0.1, 0.35, -0.05), translation=(0.05, -0.1, 0.3))


@pytest.fixture(scope="module")
def posed():
    raw, pose, shape = hrn_result(**POSE)
    return raw, pose, shape, convert_hrn_output(raw, CropBox(0, 0), pose, texture_size=256)


def texel(face, vertex: int) -> np.ndarray:
    """Our convention: v = 0 is the bottom row of the texture, row 0 the top."""
    size = face.texture.shape[0]
    u, v = face.uvs[vertex]
    return face.texture[int(round((1 - v) * (size - 1))), int(round(u * (size - 1)))]


def test_conversion_of_synthetic_hrn_output_makes_triangles_zero_based(posed):
    raw, _, _, face = posed
    assert face.triangles.dtype == np.int32
    assert face.triangles.min() == 0 and face.triangles.max() == HRN_VERTICES - 1
    np.testing.assert_array_equal(face.triangles, raw["output"]["mesh"]["faces"] - 1)


def test_conversion_of_synthetic_hrn_output_turns_bgr_float_texture_into_clipped_rgb_uint8(posed):
    face = posed[3]
    assert face.texture.dtype == np.uint8 and face.texture.shape == (256, 256, 3)
    np.testing.assert_array_equal(face.texture[0, 0], [255, 0, 0])          # red, 300 clipped, -4 clipped
    np.testing.assert_array_equal(face.texture[-1, -1], [0, 255, 255])      # blue + green, not BGR-swapped


def test_conversion_of_synthetic_hrn_output_keeps_uv_origin_at_the_bottom(posed):
    """HRN samples UV maps at row h-1-v*h and writes vt unchanged beside the cv2-saved texture: no v flip."""
    face = posed[3]
    shape = posed[2]
    forehead, chin = np.argmax(shape[:, 1]), np.argmin(shape[:, 1])
    image_left, image_right = np.argmin(shape[:, 0]), np.argmax(shape[:, 0])
    assert face.uvs[forehead, 1] > 0.99 and face.uvs[chin, 1] < 0.01
    assert texel(face, forehead)[0] == 255 and texel(face, forehead)[2] == 0   # top half painted red
    assert texel(face, chin)[2] == 255 and texel(face, chin)[0] == 0           # bottom half painted blue
    assert texel(face, image_right)[1] == 255 and texel(face, image_left)[1] == 0   # u is not mirrored


def test_conversion_of_synthetic_hrn_output_removes_pose_and_converts_decimetres_to_metres(posed):
    face, shape = posed[3], posed[2]
    np.testing.assert_allclose(face.vertices, shape * 0.1, atol=1e-5)
    height = face.vertices[:, 1].max() - face.vertices[:, 1].min()
    assert height == pytest.approx(0.2, rel=0.01)                           # 2 HRN units = 20 cm
    nose = np.argmax(face.vertices[:, 2])
    assert abs(face.vertices[nose, 0]) < 0.01 and face.vertices[nose, 2] > 0  # +z towards the viewer
    assert face.vertices.dtype == np.float32


def test_conversion_of_synthetic_hrn_output_gives_outward_unit_normals_in_the_face_frame(posed):
    face = posed[3]
    np.testing.assert_allclose(np.linalg.norm(face.normals, axis=1), 1.0, atol=1e-5)
    nose = np.argmax(face.vertices[:, 2])
    assert face.normals[nose, 2] > 0.99          # pose removed: the nose tip's normal looks straight at us


def test_conversion_of_synthetic_hrn_output_flips_inward_winding():
    raw, pose, _ = hrn_result()
    raw["output"]["mesh"]["faces"] = raw["output"]["mesh"]["faces"][:, [0, 2, 1]]
    raw["output"]["mesh"]["normals"] = -raw["output"]["mesh"]["normals"]
    face = convert_hrn_output(raw, CropBox(0, 0), pose, texture_size=64)
    a, b, c = (face.vertices[face.triangles[:, i]] for i in range(3))
    assert np.cross(b - a, c - a).sum(axis=0)[2] > 0
    assert face.normals[np.argmax(face.vertices[:, 2]), 2] > 0.99


@pytest.mark.parametrize(
    "angles, expected",
    [((0, np.radians(30), 0), (30, 0, 0)),          # Ry(+) turns the nose to +x: we see the right cheek
     ((np.radians(-20), 0, 0), (0, 20, 0)),         # Rx(-) lifts the nose: looking up
     ((0, 0, np.radians(10)), (0, 0, 10))],         # Rz(+) is counter-clockwise on screen
)
def test_conversion_of_synthetic_hrn_output_reports_pose_in_our_signs(angles, expected):
    raw, pose, _ = hrn_result(angles=angles)
    face = convert_hrn_output(raw, CropBox(0, 0), pose, texture_size=32)
    assert (face.yaw, face.pitch, face.roll) == pytest.approx(expected, abs=1e-6)
    nose = np.argmax(face.vertices[:, 2])
    moved = face.camera.project(face.vertices[[nose]])[0] - face.camera.project(np.zeros((1, 3)))[0]
    if expected[0]:
        assert moved[0] > 0                            # yaw +: nose tip lands right of the head centre
    if expected[1]:
        assert moved[1] < 0                            # pitch +: nose tip lands higher (smaller image y)


def test_conversion_of_synthetic_hrn_output_warns_on_extreme_yaw():
    raw, pose, _ = hrn_result(angles=(0, np.radians(50), 0))
    assert convert_hrn_output(raw, CropBox(0, 0), pose, texture_size=32).warnings == ["extreme_yaw"]
    raw, pose, _ = hrn_result(angles=(0, np.radians(40), 0))
    assert convert_hrn_output(raw, CropBox(0, 0), pose, texture_size=32).warnings == []


def test_projection_inverts_hrn_landmark_alignment():
    """Going forward with resize_n_crop_img's landmark formula must give back HRN's pinhole coordinates."""
    raw, pose, _ = hrn_result(**POSE)
    world = raw["output"]["mesh"]["vertices"].astype(np.float64)[::500]
    crop_xy = project_to_crop(world, pose.align)
    w0, h0, s, tx, ty = pose.align
    lm = np.stack([crop_xy[:, 0], h0 - 1 - crop_xy[:, 1]], axis=1)       # read_data: y up
    aligned = np.stack([lm[:, 0] - tx + w0 / 2, lm[:, 1] - ty + h0 / 2], axis=1) * s
    aligned -= np.array([int(w0 * s) / 2 - 112, int(h0 * s) / 2 - 112])
    pinhole = FOCAL_PX * world[:, :2] / (CAMERA_DISTANCE - world[:, 2:]) + ALIGNED_CENTER_PX
    np.testing.assert_allclose(aligned, pinhole, atol=1e-6)


def test_conversion_of_synthetic_hrn_output_fits_a_camera_onto_hrn_projection(posed):
    raw, pose, _, face = posed
    exact = project_to_crop(raw["output"]["mesh"]["vertices"].astype(np.float64), pose.align)
    fitted = face.camera.project(face.vertices.astype(np.float64))
    face_px = np.ptp(exact[:, 0])
    assert 250 < face_px < 350                                           # align_for placed a 300 px face
    assert np.abs(fitted - exact).mean() < 0.03 * face_px              # weak perspective vs. pinhole at 10 units
    np.testing.assert_allclose(face.landmarks_2d, exact[pose.keypoints], atol=1e-3)
    assert face.landmarks_3d.shape == (68, 3)


def test_conversion_of_synthetic_hrn_output_maps_two_crops_back_to_their_boxes():
    """Two faces, cut from one photo at different offsets and scales, land inside their own boxes."""
    boxes = [(100.0, 120.0, 300.0, 320.0), (1300.0, 700.0, 1420.0, 820.0)]
    crops = [CropBox(x0=20.0, y0=40.0, scale=2.0), CropBox(x0=1228.0, y0=628.0, scale=0.5)]
    for box, crop in zip(boxes, crops):
        center_in_crop = ((np.array(box[:2]) + box[2:]) / 2 - [crop.x0, crop.y0]) * crop.scale
        side_in_crop = (box[2] - box[0]) * crop.scale * 0.7   # face 1.25x taller than wide
        raw, pose, _ = hrn_result(angles=(0, 0.2, 0), align=align_for(tuple(center_in_crop), side_in_crop, (900, 900)))
        face = convert_hrn_output(raw, crop, pose, bbox=box, texture_size=32)
        projected = face.camera.project(face.vertices)
        assert face.bbox == box
        assert (projected.min(axis=0) >= np.array(box[:2]) - 2).all()
        assert (projected.max(axis=0) <= np.array(box[2:]) + 2).all()
        np.testing.assert_allclose(projected.mean(axis=0), (np.array(box[:2]) + box[2:]) / 2, atol=0.05 * (box[2] - box[0]))
