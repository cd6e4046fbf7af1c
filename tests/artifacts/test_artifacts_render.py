"""The CPU renderer: framing, z-buffer visibility whatever the triangle order, texture orientation, yaw."""
from __future__ import annotations

import numpy as np
import pytest

from face3d.shared.artifacts.render import BACKGROUND, TexturedMesh, View, render

RED, BLUE = (255, 0, 0), (0, 0, 255)


def quad(x0, y0, x1, y1, z, u):
    """Two CCW triangles facing +Z, every vertex sampling texture column u."""
    vertices = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], np.float32)
    return vertices, np.array([[0, 1, 2], [0, 2, 3]]), np.full((4, 2), [u, 0.5], np.float32)


def two_quads(red_z: float, red_first: bool) -> TexturedMesh:
    texture = np.zeros((4, 4, 3), np.uint8)
    texture[:, :2], texture[:, 2:] = RED, BLUE
    red = quad(-0.02, -0.02, 0.02, 0.02, red_z, 0.125)
    blue = quad(-0.1, -0.1, 0.1, 0.1, 0.0, 0.875)
    parts = [red, blue] if red_first else [blue, red]
    vertices = np.concatenate([parts[0][0], parts[1][0]])
    triangles = np.concatenate([parts[0][1], parts[1][1] + 4])
    uvs = np.concatenate([parts[0][2], parts[1][2]])
    normals = np.tile([0.0, 0.0, 1.0], (8, 1)).astype(np.float32)
    return TexturedMesh(vertices, triangles, uvs, normals, texture)


def dominant(pixel) -> str:
    return "red" if pixel[0] > 2 * pixel[2] else "blue" if pixel[2] > 2 * pixel[0] else "other"


@pytest.mark.parametrize("perspective", [True, False])
@pytest.mark.parametrize("red_first", [True, False])
def test_nearer_quad_wins_whatever_the_triangle_order(perspective, red_first):
    view = View(perspective=perspective)
    in_front = render(two_quads(0.05, red_first), 128, view).rgb
    behind = render(two_quads(-0.05, red_first), 128, view).rgb
    assert dominant(in_front[64, 64]) == "red"
    assert dominant(behind[64, 64]) == "blue"
    assert dominant(in_front[64, 36]) == "blue"                   # outside the small quad


def test_texture_orientation_v_up_and_x_right():
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:4, :4], texture[:4, 4:] = (0, 255, 0), (255, 255, 0)    # top row (v = 1): green | yellow
    texture[4:, :4], texture[4:, 4:] = (255, 0, 255), (0, 255, 255)  # bottom (v = 0): magenta | cyan
    vertices, triangles, _ = quad(-0.1, -0.1, 0.1, 0.1, 0.0, 0.0)
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    mesh = TexturedMesh(vertices, triangles, uvs, np.tile([0, 0, 1.0], (4, 1)), texture)
    rgb = render(mesh, 64, View(perspective=False)).rgb.astype(int)
    top_left, top_right, bottom_left, bottom_right = rgb[16, 16], rgb[16, 48], rgb[48, 16], rgb[48, 48]
    assert top_left[1] > 150 and top_left[0] < 60                   # green
    assert top_right[0] > 150 and top_right[1] > 150 and top_right[2] < 60
    assert bottom_left[0] > 150 and bottom_left[2] > 150 and bottom_left[1] < 60
    assert bottom_right[1] > 150 and bottom_right[2] > 150 and bottom_right[0] < 60


def test_back_faces_render_two_sided():
    mesh = two_quads(0.05, True)
    flipped = TexturedMesh(mesh.vertices, mesh.triangles[:, ::-1], mesh.uvs, mesh.normals, mesh.texture)
    assert render(flipped, 64, View()).mask.mean() > 0.3


def test_face_fills_the_frame_sensibly_and_stays_centred(make_reconstruction):
    mesh = TexturedMesh.from_face(make_reconstruction(faces=1, texture_size=128).faces[0])
    for yaw in (-30, 0, 30):
        out = render(mesh, 256, View(yaw_degrees=yaw))
        fraction = out.mask.mean()
        assert 0.15 < fraction < 0.8
        ys, xs = np.nonzero(out.mask)
        assert abs(xs.mean() - 128) < 40 and abs(ys.mean() - 128) < 20
        assert np.array_equal(out.rgb[~out.mask][0], BACKGROUND)


def test_yaw_turns_the_mesh_and_lighting_is_shaded(make_reconstruction):
    mesh = TexturedMesh.from_face(make_reconstruction(faces=1, texture_size=128).faces[0])
    frontal = render(mesh, 128, View())
    turned = render(mesh, 128, View(yaw_degrees=60))
    assert (frontal.mask != turned.mask).mean() > 0.02
    assert frontal.rgb[frontal.mask].std() > 10


def test_edge_on_quad_covers_almost_nothing():
    mesh = two_quads(0.0, True)
    assert render(mesh, 128, View(yaw_degrees=90, perspective=False)).mask.mean() < 0.02


def test_non_finite_vertices_are_skipped_not_fatal():
    mesh = two_quads(0.05, True)
    vertices = mesh.vertices.copy()
    vertices[0] = np.nan
    broken = TexturedMesh(vertices, mesh.triangles, mesh.uvs, mesh.normals, mesh.texture)
    out = render(broken, 64, View(perspective=False))
    assert 0.3 < out.mask.mean() < 1.0
