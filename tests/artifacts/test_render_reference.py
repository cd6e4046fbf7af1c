"""The numba renderer draws what the numpy renderer it replaced drew, on a fixed mesh, within a small tolerance.

The reference PNGs in tests/artifacts/data were rendered by the numpy renderer (``git show
499dab1:shared/artifacts/render.py``) from ``reference_mesh()`` at 256^2: frontal and turned (the nose then hides
part of the cheek, so the z-buffer is compared too), perspective and orthographic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from face3d.shared.artifacts.render import TexturedMesh, View, render
from tests.artifacts.conftest import checkerboard, half_ellipsoid

DATA = Path(__file__).parent / "data"
VIEWS = {"front": View(), "turned": View(yaw_degrees=35.0), "ortho": View(yaw_degrees=-20.0, perspective=False)}
SIZE = 256


def reference_mesh() -> TexturedMesh:
    """A face-sized half ellipsoid with a nose-like bump (self-occlusion when turned) and a checkerboard texture."""
    vertices, triangles, uvs, normals = half_ellipsoid(grid=61)
    vertices = vertices.astype(np.float64)
    bump = 0.03 * np.exp(-((vertices[:, 0] / 0.015) ** 2 + (vertices[:, 1] / 0.035) ** 2))
    vertices[:, 2] += bump
    return TexturedMesh(vertices, triangles, uvs, normals, checkerboard(256))


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_matches_the_numpy_renderer(name):
    expected = np.asarray(Image.open(DATA / f"render_reference_{name}.png").convert("RGB")).astype(int)
    got = render(reference_mesh(), SIZE, VIEWS[name]).rgb.astype(int)
    difference = np.abs(got - expected).max(axis=2)
    assert difference.mean() < 0.5, f"mean per-pixel difference {difference.mean():.2f}"
    # Silhouette and tie pixels may fall either way; everything else agrees within bilinear rounding.
    assert (difference > 8).mean() < 0.005, f"{(difference > 8).mean():.2%} pixels differ by more than 8 levels"


def test_untextured_render_is_shaded_grey():
    mesh = reference_mesh()
    plain = render(TexturedMesh(mesh.vertices, mesh.triangles, None, mesh.normals, None), 128, View())
    covered = plain.rgb[plain.mask].astype(int)
    assert plain.mask.mean() > 0.15
    assert (np.ptp(covered, axis=1) == 0).all()                     # grey: no texture colour
    assert covered[:, 0].max() - covered[:, 0].min() > 60           # shaded: Lambert varies over the shell
