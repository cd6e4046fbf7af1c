"""The files people use, from every ../shared/faces photo: every GLB passes Khronos' glTF validator with no error and
no warning; every STL and 3MF is a watertight, positive-volume solid of a plausible face's size in millimetres;
a USDZ passes USD's validators."""
from __future__ import annotations

from pathlib import Path

import pytest
import trimesh

from face3d.shared.engines.base import Options
from face3d.shared.errors import NoFaceError
from face3d.shared.pipeline import process_photo
from tests.artifacts.validators import gltf_reports, require_usd, usd_errors
from tests.engine.conftest import FACES

ASSETS = Options(texture_size=256, video=False, outputs=frozenset({"json", "glb", "stl", "3mf"}))
# An adult face at life size, as the engine scales every face (63 mm between the eye centres): about 140 mm across
# the face's outline (in front of the ears) and 165 mm from the chin to the top of the forehead.
FACE_WIDTH_MM, FACE_HEIGHT_MM, TOLERANCE = 140.0, 165.0, 0.10


def photos() -> list[Path]:
    found = sorted(p for p in FACES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(found) >= 20, f"the test photos are missing from {FACES}"
    return found


@pytest.fixture(scope="module")
def written(cpu_engine, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("assets")
    files = []
    for photo in photos():
        try:
            result = process_photo(photo.read_bytes(), photo.name, cpu_engine, ASSETS, root / photo.stem)
        except NoFaceError:
            continue
        files += result.files
    return files


def of_kind(files: list[Path], suffix: str) -> list[Path]:
    chosen = [path for path in files if path.suffix == suffix]
    assert len(chosen) >= 50, f"expected a {suffix} for every face of every photo, got {len(chosen)}"
    return chosen


def test_every_glb_passes_the_gltf_validator(written):
    reports = gltf_reports(of_kind(written, ".glb"))
    bad = {Path(r["path"]).parent.name + "/" + Path(r["path"]).name: [m["code"] for m in r["messages"] if m["severity"] < 2]
           for r in reports if r["numErrors"] or r["numWarnings"]}
    assert len(reports) == len(of_kind(written, ".glb")) and bad == {}


@pytest.mark.parametrize("suffix", [".stl", ".3mf"])
def test_every_printable_mesh_is_a_closed_life_size_solid(written, suffix):
    for path in of_kind(written, suffix):
        mesh = trimesh.load(path, force="mesh")
        where = f"{path.parent.name}/{path.name}"
        assert mesh.is_watertight and mesh.is_winding_consistent, where
        assert mesh.volume > 0, where
        width, height, _ = mesh.extents
        assert abs(width / FACE_WIDTH_MM - 1) < TOLERANCE and abs(height / FACE_HEIGHT_MM - 1) < TOLERANCE, (where,
                                                                                                          mesh.extents)


def test_usdz_passes_usd_validators(cpu_engine, tmp_path):
    require_usd()
    options = Options(texture_size=256, video=False, outputs=frozenset({"json", "usdz"}))
    for name in ("a_frontal_obama.jpg", "b_yaw_left_face.jpg"):
        result = process_photo((FACES / name).read_bytes(), name, cpu_engine, options, tmp_path / name)
        usdz = [path for path in result.files if path.suffix == ".usdz"]
        assert len(usdz) == 1
        assert usd_errors(usdz[0]) == []
