"""process_photo on real photos with the CPU engine (loaded once per session)."""
from __future__ import annotations

import json

import imageio_ffmpeg
import pytest
import trimesh

from face3d.shared.options import DEFAULT_OUTPUTS
from face3d.shared.engines.base import Options
from face3d.shared.errors import ErrorCode, InputError, NoFaceError
from face3d.shared.pipeline import process_photo

FAST = Options(texture_size=256, frames=8, render_size=128, outputs=frozenset(DEFAULT_OUTPUTS) | {"gif"})


def run(faces_dir, name, engine, outdir, options=FAST):
    return process_photo((faces_dir / name).read_bytes(), name, engine, options, outdir)


def test_frontal_photo_gives_every_artifact(cpu_engine, faces_dir, tmp_path):
    stages: list[str] = []
    result = process_photo((faces_dir / "a_frontal_obama.jpg").read_bytes(), "a_frontal_obama.jpg", cpu_engine,
                           FAST, tmp_path, progress=lambda stage, fraction=None: stages.append(stage))
    stages = [stage for i, stage in enumerate(stages) if not i or stage != stages[i - 1]]   # render: one per frame
    assert stages[0] == "decode" and stages[-5:] == ["export", "vis", "render", "encode", "gif"]
    document = json.loads((tmp_path / "result.json").read_text())
    assert document == result.document
    assert document["engine"] == "cpu" and document["image"] == {"width": 910, "height": 1137}
    assert len(document["faces"]) == 1
    assert set(document["timings_ms"]) >= {"decode", "export", "vis", "render", "encode", "gif"}
    face = document["faces"][0]
    assert abs(face["yaw"]) < 20
    x0, y0, x1, y1 = face["bbox"]
    assert 0 <= x0 < x1 <= 910 and 0 <= y0 < y1 <= 1137
    mesh = trimesh.load(tmp_path / face["files"]["obj"], process=False)
    assert len(mesh.faces) > 500 and mesh.visual.material.image.size == (256, 256)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "turntable.mp4"))
    assert tuple(next(reader)["size"]) == (128, 128)
    assert sum(1 for _ in reader) == FAST.frames


def test_group_photo_writes_files_for_every_face(cpu_engine, faces_dir, tmp_path):
    result = run(faces_dir, "c_group_t1_six.jpg", cpu_engine, tmp_path, Options(texture_size=128, video=False))
    faces = result.document["faces"]
    assert len(faces) >= 3
    assert [f["index"] for f in faces] == list(range(len(faces)))
    for face in faces:
        assert all((tmp_path / name).is_file() for name in face["files"].values())
    assert not (tmp_path / "turntable.mp4").exists()


def test_photo_without_face_raises_no_face(cpu_engine, faces_dir, tmp_path):
    with pytest.raises(NoFaceError) as caught:
        run(faces_dir, "f_noface_grass.jpg", cpu_engine, tmp_path)
    assert caught.value.code is ErrorCode.NO_FACE_DETECTED


def test_undecodable_bytes_raise_input_error(cpu_engine, tmp_path):
    with pytest.raises(InputError) as caught:
        process_photo(b"not an image at all", "junk.jpg", cpu_engine, FAST, tmp_path)
    assert caught.value.code is ErrorCode.INVALID_IMAGE
