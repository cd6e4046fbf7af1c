"""Fixtures for the artifact writers: a synthetic Reconstruction (front half of an ellipsoid, checkerboard texture)
tests them without any engine; the real CPU engine is loaded once per session for the photo tests."""
from __future__ import annotations

import os

import numpy as np
import pytest

from face3d.shared.artifacts.render import yaw_matrix
from face3d.shared.options import DEFAULT_OUTPUTS
from face3d.shared.engines.base import Camera, Face, Options, Photo, Reconstruction

RADII = np.array([0.075, 0.1, 0.06])          # metres: half width, half height, depth of a face-sized shell


def checkerboard(size: int, squares: int = 8) -> np.ndarray:
    cell = np.arange(size) * squares // size
    board = ((cell[:, None] + cell[None, :]) % 2).astype(np.float64)
    ramp = np.linspace(0.3, 1.0, size)
    rgb = np.stack([board * 200 + 40, ramp[:, None] * 180 + 0 * board, (1 - board) * 200 + 30], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def half_ellipsoid(grid: int = 71) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, CCW triangles, UVs and unit normals of the z >= 0 half of an ellipsoid, ~2*(grid-1)^2 triangles."""
    u, v = np.meshgrid(np.linspace(0, 1, grid), np.linspace(0, 1, grid))
    lon = (u - 0.5) * np.pi                       # -90..90 degrees around Y, 0 = facing +Z
    lat = (v - 0.5) * np.pi * 0.95                # avoid the degenerate poles
    unit = np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), np.cos(lat) * np.cos(lon)], axis=-1).reshape(-1, 3)
    vertices = (unit * RADII).astype(np.float32)
    normals = unit / RADII**2
    normals = (normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32)
    index = np.arange(grid * grid).reshape(grid, grid)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]   # u right, v up
    triangles = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    uvs = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float32)
    return vertices, triangles.astype(np.int32), uvs, normals


def synthetic_face(index: int, centre_px: tuple[float, float], scale: float, yaw: float, texture_size: int) -> Face:
    vertices, triangles, uvs, normals = half_ellipsoid()
    camera = Camera(scale=scale, rotation=yaw_matrix(yaw), translation=np.array(centre_px, dtype=np.float64))
    landmark_ids = np.linspace(0, len(vertices) - 1, 68).astype(int)
    projected = camera.project(vertices.astype(np.float64))
    (x0, y0), (x1, y1) = projected.min(axis=0), projected.max(axis=0)
    return Face(
        index=index, bbox=(float(x0), float(y0), float(x1), float(y1)), score=0.97, yaw=yaw, pitch=0.0, roll=0.0,
        vertices=vertices, triangles=triangles, uvs=uvs, normals=normals, texture=checkerboard(texture_size),
        texture_synthesized=0.25, landmarks_2d=projected[landmark_ids], landmarks_3d=vertices[landmark_ids],
        camera=camera, warnings=["synthetic"] if index else [],
    )


def synthetic_reconstruction(faces: int = 2, width: int = 640, height: int = 480, texture_size: int = 256) -> Reconstruction:
    gradient = np.linspace(0, 255, width, dtype=np.float64)[None, :, None] * np.ones((height, 1, 3))
    photo = Photo(rgb=gradient.astype(np.uint8), name="synthetic.png")
    made = [
        synthetic_face(i, (width * (i + 1) / (faces + 1), height / 2), scale=width / (3 * faces) / 0.15,
                       yaw=15.0 * (i - (faces - 1) / 2), texture_size=texture_size)
        for i in range(faces)
    ]
    return Reconstruction(engine="synthetic", width=width, height=height, faces=made, photo=photo,
                          timings_ms={"detect": 1.0})


# Every default output and the opt-in GIF: the fixture writes each kind of file once.
SYNTHETIC_OPTIONS = Options(texture_size=256, frames=12, render_size=256, sweep_degrees=60,
                            outputs=frozenset(DEFAULT_OUTPUTS) | {"gif"})


@pytest.fixture(scope="session")
def make_reconstruction():
    return synthetic_reconstruction


@pytest.fixture(scope="session")
def synthetic_options() -> Options:
    return SYNTHETIC_OPTIONS


@pytest.fixture(scope="session")
def synthetic_output(tmp_path_factory: pytest.TempPathFactory):
    """write_artifacts run once on a two-face synthetic reconstruction: (reconstruction, files, outdir, stages);
    ``stages``: every progress call as (stage, fraction or None), then the milestones as ("written", Written)."""
    from face3d.shared.artifacts import write_artifacts

    recon = synthetic_reconstruction(faces=2, texture_size=200)      # not the requested size: the writer resizes
    outdir = tmp_path_factory.mktemp("synthetic")
    stages: list[tuple] = []
    files = write_artifacts(recon, outdir, SYNTHETIC_OPTIONS, progress=lambda stage, fraction=None: stages.append(
        (stage, fraction)), on_written=lambda written: stages.append(("written", written)))
    return recon, files, outdir, stages


@pytest.fixture(scope="session")
def cpu_engine():
    """The real CPU engine, loaded once; skipped (loudly) while shared.engines.cpu cannot be imported."""
    from face3d.shared.engines import get_engine

    try:
        return get_engine("cpu")
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CPU engine cannot be imported: {exc}", pytrace=False)
        pytest.skip(f"*** CPU engine not importable yet: {exc} ***")
