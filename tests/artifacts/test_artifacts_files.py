"""The files write_artifacts produces from a synthetic reconstruction: valid, loadable, the sizes asked for."""
from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import trimesh
from PIL import Image

from face3d.shared.artifacts.meshes import face_file_names
from tests.artifacts.conftest import SYNTHETIC_OPTIONS


def test_progress_reports_stages_in_order_and_times_them(synthetic_output):
    recon, _, _, calls = synthetic_output
    stages = [stage for stage, fraction in calls if fraction is None and stage != "written"]
    assert stages == ["export", "vis", "render", "encode", "face_videos", "gif"]
    assert all(recon.timings_ms[stage] > 0 for stage in stages)
    fractions = [fraction for stage, fraction in calls if stage == "render" and fraction is not None]
    assert len(fractions) == SYNTHETIC_OPTIONS.frames and fractions == sorted(fractions) and fractions[-1] == 1.0
    per_face = [fraction for stage, fraction in calls if stage == "face_videos" and fraction is not None]
    assert per_face == [(i + 1) / len(recon.faces) for i in range(len(recon.faces))]


def test_files_are_handed_over_milestone_by_milestone_mesh_first(synthetic_output):
    _, files, _, calls = synthetic_output
    written = [item for stage, item in calls if stage == "written"]
    assert [w.milestone for w in written] == ["mesh", "vis", "video", "video", "video", "done"]
    mesh = {path.name for path in written[0].paths}
    assert {"face_0.obj", "face_0.mtl", "face_0_texture.png", "face_0.glb", "face_1.glb", "result.json"} <= mesh
    assert written[0].pending == ["vis.png", "turntable.mp4", "turntable_face0.mp4", "turntable_face1.mp4",
                                  "turntable.gif"]
    assert [p.name for p in written[2].paths] == ["turntable.mp4"]                 # the tiled clip first
    assert [p.name for p in written[3].paths] == ["turntable_face0.mp4", "turntable_face1.mp4"]
    assert written[-1].pending == [] and [p.name for p in written[-1].paths] == ["result.json"]
    handed = [path.name for w in written for path in w.paths]
    assert sorted(set(handed)) == sorted(path.name for path in files)


@pytest.mark.parametrize("index", [0, 1])
def test_obj_loads_back_with_uvs_texture_and_geometry(synthetic_output, synthetic_options, index):
    recon, _, outdir, _ = synthetic_output
    face = recon.faces[index]
    mesh = trimesh.load(outdir / f"face_{index}.obj", process=False)
    assert mesh.vertices.shape == face.vertices.shape
    np.testing.assert_allclose(mesh.vertices, face.vertices, atol=1e-5)
    np.testing.assert_array_equal(mesh.faces, face.triangles)
    uv = mesh.visual.uv
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    np.testing.assert_allclose(uv, face.uvs, atol=1e-5)
    assert mesh.visual.material.image.size == (synthetic_options.texture_size,) * 2


def test_mtl_names_the_png_by_relative_name(synthetic_output):
    _, _, outdir, _ = synthetic_output
    names = face_file_names(0)
    assert f"mtllib {names['mtl']}" in (outdir / names["obj"]).read_text()
    assert f"map_Kd {names['texture']}" in (outdir / names["mtl"]).read_text().splitlines()


def test_texture_png_has_requested_size_and_content(synthetic_output, synthetic_options):
    recon, _, outdir, _ = synthetic_output
    image = Image.open(outdir / "face_0_texture.png")
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.size == (synthetic_options.texture_size,) * 2
    expected = cv2.resize(recon.faces[0].texture, image.size, interpolation=cv2.INTER_CUBIC)
    assert np.abs(np.asarray(image).astype(int) - expected).mean() < 8


@pytest.mark.parametrize("index", [0, 1])
def test_glb_loads_back_with_embedded_texture(synthetic_output, synthetic_options, index):
    recon, _, outdir, _ = synthetic_output
    scene = trimesh.load(outdir / f"face_{index}.glb", process=False)
    assert set(scene.geometry) == {f"face_{index}", f"face_{index}_back"}
    mesh = scene.geometry[f"face_{index}"]
    assert len(mesh.faces) == len(recon.faces[index].triangles)
    np.testing.assert_allclose(mesh.visual.uv, recon.faces[index].uvs, atol=1e-5)
    material = mesh.visual.material
    assert material.baseColorTexture.size == (synthetic_options.texture_size,) * 2
    assert material.metallicFactor == 0.0                     # not glTF's metallic default


def test_result_json_matches_schema_and_names_existing_files(synthetic_output):
    recon, files, outdir, _ = synthetic_output
    document = json.loads((outdir / "result.json").read_text())
    assert document["version"] == 1 and document["units"] == "metres" and "+y = up" in document["axes"]
    assert document["image"] == {"width": recon.width, "height": recon.height}
    assert document["engine"] == "synthetic"
    assert set(document["timings_ms"]) >= {"detect", "export", "render", "encode"}
    assert len(document["faces"]) == len(recon.faces)
    for face, entry in zip(recon.faces, document["faces"]):
        assert entry["index"] == face.index
        assert set(entry) >= {"bbox", "score", "yaw", "pitch", "roll", "warnings", "texture_synthesized", "files",
                              "landmarks_2d", "landmarks_3d", "camera"}
        assert entry["yaw"] == pytest.approx(face.yaw, abs=0.01)
        np.testing.assert_allclose(entry["bbox"], face.bbox, atol=0.01)
        assert np.shape(entry["landmarks_2d"]) == (len(face.landmarks_2d), 2)
        assert np.shape(entry["landmarks_3d"]) == (len(face.landmarks_3d), 3)
        assert np.shape(entry["camera"]["rotation"]) == (3, 3)
        default = {"obj", "mtl", "texture", "glb"}          # STL, 3MF, PLY and USDZ only when asked for
        expected = {k: v for k, v in face_file_names(face.index).items() if k in default}
        assert entry["files"] == {**expected, "turntable_mp4": f"turntable_face{face.index}.mp4"}   # 2 faces
    named = [name for entry in document["faces"] for name in entry["files"].values()]
    named += list(document["files"].values())
    assert set(document["files"]) == {"vis", "turntable_mp4", "turntable_gif"}
    assert all((outdir / name).is_file() for name in named)
    assert {path.name for path in files} == set(named) | {"result.json"}


def test_result_json_floats_are_rounded(synthetic_output):
    _, _, outdir, _ = synthetic_output
    numbers = re.findall(r"-?\d+\.(\d+)", (outdir / "result.json").read_text())
    assert numbers and max(len(decimals) for decimals in numbers) <= 6


def test_vis_png_shows_photo_width_and_a_render_panel(synthetic_output):
    recon, _, outdir, _ = synthetic_output
    vis = cv2.imread(str(outdir / "vis.png"))
    assert vis.shape[1] == recon.width                       # 640 wide: inside 512..1280, kept
    assert vis.shape[0] > recon.height                       # renders below the photo
    panel = vis[recon.height:]
    assert (np.abs(panel.astype(int) - 48).sum(axis=2) > 30).mean() > 0.05   # something rendered on the grey
    textured, plain = np.split(panel.astype(int), 2)                         # textured grid, then shaded geometry
    covered = np.abs(plain - 48).sum(axis=2) > 30
    assert covered.mean() > 0.05 and (np.ptp(plain[covered], axis=1) <= 2).mean() > 0.95     # grey, shaded
    assert (np.ptp(textured[np.abs(textured - 48).sum(axis=2) > 30], axis=1) > 20).mean() > 0.3   # coloured


def test_no_video_writes_no_turntable_and_no_faces_keeps_a_document(make_reconstruction, tmp_path):
    from dataclasses import replace

    from face3d.shared.artifacts import write_artifacts
    from face3d.shared.engines.base import Options

    recon = make_reconstruction(faces=1, texture_size=64)
    files = write_artifacts(recon, tmp_path, replace(Options(), video=False, texture_size=64))
    names = {path.name for path in files}
    assert "turntable.mp4" not in names and "turntable.gif" not in names
    assert {"face_0.obj", "face_0.glb", "vis.png", "result.json"} <= names
    assert "turntable_mp4" not in json.loads((tmp_path / "result.json").read_text())["files"]


def test_default_outputs_write_the_mp4_but_no_gif(make_reconstruction, tmp_path):
    """The GIF costs more than the MP4 and its render together, so it is written only when asked for."""
    from face3d.shared.artifacts import write_artifacts
    from face3d.shared.engines.base import Options

    recon = make_reconstruction(faces=1, texture_size=64)
    names = {path.name for path in write_artifacts(recon, tmp_path, Options(texture_size=256, frames=4,
                                                                            render_size=64))}
    assert "turntable.mp4" in names and "turntable.gif" not in names
    asked = {path.name for path in write_artifacts(recon, tmp_path / "gif", Options(
        texture_size=256, frames=4, render_size=64, outputs=frozenset({"json", "video", "gif"})))}
    assert {"turntable.mp4", "turntable.gif"} <= asked


def test_reconstruction_without_faces_still_gets_vis_and_document(make_reconstruction, tmp_path):
    from face3d.shared.artifacts import write_artifacts
    from face3d.shared.engines.base import Options

    recon = make_reconstruction(faces=1)
    recon.faces = []
    names = {path.name for path in write_artifacts(recon, tmp_path, Options())}
    assert names == {"vis.png", "result.json"}
    assert json.loads((tmp_path / "result.json").read_text())["faces"] == []


def test_glb_embeds_the_texture_png_bytes_unchanged(synthetic_output):
    import struct

    _, _, outdir, _ = synthetic_output
    data = (outdir / "face_0.glb").read_bytes()
    json_length = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + json_length])
    binary = data[20 + json_length + 8:]
    (image,) = gltf["images"]
    view = gltf["bufferViews"][image["bufferView"]]
    embedded = binary[view.get("byteOffset", 0):view.get("byteOffset", 0) + view["byteLength"]]
    assert image["mimeType"] == "image/png"
    png = (outdir / "face_0_texture.png").read_bytes()
    assert embedded[:len(png)] == png and not embedded[len(png):].strip(b"\0")   # encoded once (+ 4-byte padding)


@pytest.mark.parametrize("units", ["m", "mm"])
def test_shell_obj_matches_trimesh_line_for_line(make_reconstruction, tmp_path, units):
    """The open shell's OBJ is formatted in one pass for speed; it must say exactly what trimesh's writer says."""
    from trimesh.exchange.obj import export_obj

    from face3d.shared.artifacts.formats import UNIT_SCALE
    from face3d.shared.artifacts.meshes import obj_mesh, write_face_files
    from face3d.shared.engines.base import Options

    face = make_reconstruction(faces=1, texture_size=64).faces[0]
    write_face_files(face, tmp_path, Options(texture_size=256, units=units, outputs=frozenset({"json", "obj"})))
    expected, files = export_obj(obj_mesh(face, "face_0_texture", UNIT_SCALE[units]), include_normals=True,
                                 include_texture=True, return_texture=True, digits=6, mtl_name="face_0.mtl",
                                 header=f"face3d; units: {units}")
    assert (tmp_path / "face_0.obj").read_text().splitlines() == expected.splitlines()
    mtl = (tmp_path / "face_0.mtl").read_text()
    assert files["face_0.mtl"].decode().strip() in mtl and mtl.rstrip().endswith("map_Kd face_0_texture.png")
