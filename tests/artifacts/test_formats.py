"""STL, 3MF, PLY and the closed solid on the synthetic face shell: watertight, the right units and size, colours from
the texture; the GLB single-sided with a dark back; the option names the CLI and the API accept."""
from __future__ import annotations

import json
import struct
from dataclasses import replace

import numpy as np
import pytest
import trimesh

from face3d.shared.artifacts import write_artifacts
from face3d.shared.artifacts.formats import BACK_RGB, vertex_colours
from face3d.shared.artifacts.solid import outline_loop, relief
from face3d.shared.engines.base import Options
from face3d.shared.schema import OUTPUTS, JobOptions
from tests.artifacts.conftest import RADII, synthetic_face

PRINTED = Options(texture_size=64, outputs=frozenset({"json", "obj", "glb", "stl", "3mf", "ply"}), video=False)


@pytest.fixture(scope="module")
def face():
    return synthetic_face(0, (320.0, 240.0), scale=2000.0, yaw=0.0, texture_size=64)


def written(face, tmp_path, options: Options = PRINTED) -> dict:
    from face3d.shared.engines.base import Reconstruction

    recon = Reconstruction(engine="synthetic", width=640, height=480, faces=[face])
    return {path.suffix: path for path in write_artifacts(recon, tmp_path, options)}


def test_the_relief_is_a_closed_solid_with_the_face_in_front(face):
    solid = relief(face.vertices, face.triangles)
    mesh = trimesh.Trimesh(solid.vertices, solid.triangles, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    np.testing.assert_allclose(solid.vertices[: solid.face_vertices], face.vertices * 1000.0, atol=1e-3)
    np.testing.assert_allclose(mesh.extents[:2], 2000.0 * RADII[:2], rtol=0.02)     # mm, life size
    assert solid.vertices[:, 2].min() == pytest.approx(face.vertices[:, 2].min() * 1000 - 8.0)


def test_the_outline_runs_the_way_its_triangles_do(face):
    loop = outline_loop(face.triangles)
    edges = {tuple(edge) for triangle in face.triangles for edge in zip(triangle, np.roll(triangle, -1))}
    assert all((int(a), int(b)) in edges for a, b in zip(loop, np.roll(loop, -1)))


def test_a_height_scales_the_whole_solid(face):
    solid = relief(face.vertices, face.triangles, height_mm=50.0)
    assert np.ptp(solid.vertices[:, 1]) == pytest.approx(50.0)


def test_stl_and_3mf_are_watertight_millimetres(face, tmp_path):
    files = written(face, tmp_path)
    for suffix in (".stl", ".3mf"):
        mesh = trimesh.load(files[suffix], force="mesh")
        assert mesh.is_watertight and mesh.volume > 0, suffix
        assert mesh.extents[1] == pytest.approx(2000.0 * RADII[1], rel=0.02), suffix
    assert files[".stl"].read_bytes()[:80].decode().strip() == "face3d face 0; units: mm"
    document = json.loads((tmp_path / "result.json").read_text())
    assert document["file_units"] == {"obj": "m", "ply": "m", "stl": "mm", "3mf": "mm"}
    assert set(document["faces"][0]["files"]) >= {"stl", "3mf", "ply"}


def test_units_and_height_options(face, tmp_path):
    options = replace(PRINTED, units="m", print_height_mm=100.0)
    files = written(face, tmp_path, options)
    stl = trimesh.load(files[".stl"], force="mesh")
    assert stl.extents[1] == pytest.approx(0.1, rel=1e-3)                 # metres, 100 mm high
    assert trimesh.load(files[".3mf"], force="mesh").extents[1] == pytest.approx(100.0, rel=1e-3)   # 3MF: mm
    millimetres = written(face, tmp_path / "mm", replace(PRINTED, units="mm"))
    obj = trimesh.load(millimetres[".obj"], force="mesh", process=False)
    np.testing.assert_allclose(obj.vertices, face.vertices * 1000.0, atol=1e-3)
    ply = trimesh.load(millimetres[".ply"], process=False)
    np.testing.assert_allclose(ply.vertices, face.vertices * 1000.0, atol=1e-3)


def test_ply_colours_are_the_texture_at_each_vertex(face, tmp_path):
    ply = trimesh.load(written(face, tmp_path)[".ply"], process=False)
    expected = vertex_colours(face.uvs, face.texture)
    assert np.abs(ply.visual.vertex_colors[:, :3].astype(int) - expected).max() <= 1
    assert b"comment face3d face 0; units: m" in ply_header(tmp_path / "face_0.ply")


def ply_header(path) -> bytes:
    data = path.read_bytes()
    return data[: data.index(b"end_header")]


def test_solid_closes_the_ply_and_the_obj(face, tmp_path):
    files = written(face, tmp_path, replace(PRINTED, solid=True))
    ply = trimesh.load(files[".ply"], process=False)
    assert ply.is_watertight and ply.volume > 0
    assert (ply.visual.vertex_colors[len(face.vertices):, :3] == BACK_RGB).all()
    obj = trimesh.load(files[".obj"], force="mesh", process=False)
    obj.merge_vertices(merge_tex=True, merge_norm=True)                  # the back is its own object in the OBJ
    assert obj.is_watertight and obj.volume > 0
    assert obj.extents[1] == pytest.approx(2000.0 * RADII[1], rel=0.02)  # a solid OBJ defaults to millimetres
    assert "newmtl face_0_back" in (tmp_path / "face_0.mtl").read_text()


def gltf_json(path) -> dict:
    data = path.read_bytes()
    length, = struct.unpack_from("<I", data, 12)
    return json.loads(data[20:20 + length])


def test_glb_is_single_sided_with_a_dark_back(face, tmp_path):
    document = gltf_json(written(face, tmp_path)[".glb"])
    materials = {m["name"]: m for m in document["materials"]}
    assert not any(m.get("doubleSided", False) for m in materials.values())
    back = materials["face_0_back"]["pbrMetallicRoughness"]
    assert max(back["baseColorFactor"][:3]) < 0.2 and "baseColorTexture" not in back
    assert "baseColorTexture" in materials["face_0"]["pbrMetallicRoughness"]
    scene = trimesh.load(tmp_path / "face_0.glb", process=False)
    skin, inside = scene.geometry["face_0"], scene.geometry["face_0_back"]
    np.testing.assert_array_equal(inside.faces, skin.faces[:, ::-1])


def test_the_cli_and_the_api_accept_the_same_output_names(tmp_path):
    from click.testing import CliRunner

    from face3d.shared.commands import reconstruct

    assert {"stl", "3mf", "ply", "usdz"} <= set(OUTPUTS)
    everything = ",".join(name for name in OUTPUTS if name != "usdz")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not read: the options fail first")
    parsed = reconstruct.make_context("reconstruct", [str(photo), "-o", "out", "--outputs", everything])
    assert frozenset(parsed.params["outputs"]) == frozenset(JobOptions(outputs=everything).outputs)
    for bad in ("fbx", "stl,fbx"):
        with pytest.raises(ValueError, match="fbx"):
            JobOptions(outputs=bad)
        result = CliRunner().invoke(reconstruct, [str(photo), "-o", str(tmp_path / "out"), "--outputs", bad])
        assert result.exit_code == 2 and "fbx" in result.output


def test_job_options_reach_the_engine_options():
    options = JobOptions(outputs="stl,ply", units="mm", solid=True, print_height_mm=120)
    engine = Options(**options.engine_options())
    assert engine.outputs == {"json", "stl", "ply"} and engine.units == "mm" and engine.solid
    assert engine.print_height_mm == 120
    with pytest.raises(Exception):
        JobOptions(units="cm")
    with pytest.raises(Exception):
        JobOptions(print_height_mm=5)
