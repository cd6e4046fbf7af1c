"""``face3d reconstruct`` through click's CliRunner on real photos."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from face3d.shared.commands import output_dirs, reconstruct

FAST = ["--texture-size", "256", "--no-video"]      # the smallest atlas the API accepts too


def test_output_dirs_one_photo_uses_outdir_and_several_get_unique_stems(tmp_path):
    assert output_dirs([Path("a/x.jpg")], tmp_path) == [tmp_path]
    dirs = output_dirs([Path("a/x.jpg"), Path("b/x.png"), Path("y.jpg"), Path("c/x.jpg")], tmp_path)
    assert [d.name for d in dirs] == ["x", "x_2", "y", "x_3"]


def test_single_photo_succeeds_into_outdir(cpu_engine, faces_dir, tmp_path):
    result = CliRunner().invoke(reconstruct, [str(faces_dir / "a_frontal_obama.jpg"), "-o", str(tmp_path), *FAST])
    assert result.exit_code == 0, result.output
    assert "a_frontal_obama.jpg" in result.output and "1 of 1 photos" in result.output
    assert len(json.loads((tmp_path / "result.json").read_text())["faces"]) == 1


def test_no_face_photo_is_reported_and_the_others_still_run(cpu_engine, faces_dir, tmp_path):
    photos = [str(faces_dir / "f_noface_grass.jpg"), str(faces_dir / "a_frontal_darkskin_woman.jpg")]
    result = CliRunner().invoke(reconstruct, [*photos, "-o", str(tmp_path), *FAST])
    assert result.exit_code == 1, result.output
    assert "f_noface_grass.jpg: no_face_detected" in result.output
    assert "1 of 2 photos" in result.output
    assert (tmp_path / "a_frontal_darkskin_woman" / "result.json").is_file()
    assert not (tmp_path / "f_noface_grass" / "result.json").exists()


def test_usage_errors_exit_2(faces_dir, tmp_path):
    runner = CliRunner()
    assert runner.invoke(reconstruct, [str(faces_dir / "a_frontal_obama.jpg")]).exit_code == 2        # no -o
    assert runner.invoke(reconstruct, [str(tmp_path / "missing.jpg"), "-o", str(tmp_path)]).exit_code == 2
    assert runner.invoke(reconstruct, [str(faces_dir / "a_frontal_obama.jpg"), "-o", str(tmp_path),
                                       "--frames", "0"]).exit_code == 2
    assert runner.invoke(reconstruct, ["-o", str(tmp_path)]).exit_code == 2                           # no photo


def test_a_folder_gives_its_photos_and_lists_the_other_files(cpu_engine, faces_dir, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "hopper.jpg").write_bytes((faces_dir / "g_grayscale_hopper.jpg").read_bytes())
    (folder / "README.md").write_text("# not a photo")
    result = CliRunner().invoke(reconstruct, [str(folder), "-o", str(tmp_path / "out"), *FAST])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "result.json").is_file()              # one photo: straight into OUTDIR
    assert "1 of 1 photos" in result.output and "skipped 1 file(s) that are not photos" in result.output
    assert "README.md" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(reconstruct, [str(empty), "-o", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no photo" in result.output


def test_outputs_json_writes_landmarks_and_pose_only(cpu_engine, faces_dir, tmp_path):
    result = CliRunner().invoke(reconstruct, [str(faces_dir / "b_yaw_dim_room.jpg"), "-o", str(tmp_path),
                                              "--outputs", "json"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    face = json.loads((tmp_path / "result.json").read_text())["faces"][0]
    assert len(face["landmarks_68"]) == 68 and len(face["landmarks_68_3d"][0]) == 3
    assert face["files"] == {} and face["texture_synthesized"] is None


def test_outputs_pick_the_files(cpu_engine, faces_dir, tmp_path):
    result = CliRunner().invoke(reconstruct, [str(faces_dir / "a_frontal_obama.jpg"), "-o", str(tmp_path),
                                              "--outputs", "glb,vis", "--texture-size", "256"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face_0.glb", "result.json", "vis.png"]
    assert json.loads((tmp_path / "result.json").read_text())["faces"][0]["files"] == {"glb": "face_0.glb"}


def test_unknown_outputs_are_a_usage_error(faces_dir, tmp_path):
    result = CliRunner().invoke(reconstruct, [str(faces_dir / "a_frontal_obama.jpg"), "-o", str(tmp_path),
                                              "--outputs", "json,fbx"])
    assert result.exit_code == 2 and "fbx" in result.output
