"""CpuEngine on the real test photos in ../shared/faces: face counts, pose, warnings and mesh/texture invariants."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import trimesh

from face3d.shared.engines.base import Options
from face3d.shared.errors import NoFaceError
from face3d.shared.imaging import load_image
from tests.engine.conftest import FACES, photo_path

FAST = Options(texture_size=256)


@pytest.fixture(scope="module")
def run(cpu_engine):
    @lru_cache(maxsize=None)
    def reconstruct(name: str, max_faces: int = FAST.max_faces):
        options = Options(texture_size=FAST.texture_size, max_faces=max_faces)
        return cpu_engine.reconstruct(load_image(photo_path(name)), options)

    return reconstruct


def names(prefix: str) -> list[str]:
    found = sorted(p.name for p in FACES.glob(f"{prefix}*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert found, f"no {prefix}* photos in {FACES}"
    return found


@pytest.mark.parametrize("name", names("a_"))
def test_frontal_photos_have_exactly_one_face(run, name):
    assert len(run(name).faces) == 1


@pytest.mark.parametrize("name", names("f_"))
def test_photos_without_faces_raise_no_face(cpu_engine, name):
    with pytest.raises(NoFaceError):
        cpu_engine.reconstruct(load_image(photo_path(name)), FAST)


def test_group_of_six(run):
    assert len(run("c_group_t1_six.jpg").faces) == 6


def test_group_selfie(run):
    assert len(run("c_group_selfie.jpg").faces) >= 5


@pytest.mark.parametrize("name", ["b_yaw_left_face.jpg", "b_yaw_dim_room.jpg"])
def test_profiles_are_reconstructed_with_strong_yaw(run, name):
    faces = run(name).faces
    assert len(faces) == 1
    assert abs(faces[0].yaw) >= 45
    assert "extreme_yaw" in faces[0].warnings


@pytest.mark.parametrize("name, at_least", [("b_yaw_dim_room.jpg", 60.0), ("b_yaw_left_face.jpg", 55.0)])
def test_profiles_read_their_yaw(run, name, at_least):
    """SOURCES.md judges both 60-70 degrees by eye; the MediaPipe-only engine read 54 and 56. The robust model reads
    dim_room 62 and left_face 57 (59 before the calibration, which AFLW2000-3D's labels pull ~2 degrees lower there)."""
    assert abs(run(name).faces[0].yaw) >= at_least


def test_night_bar_group_of_seven(run):
    assert len(run("d_night_bar_flash_group.jpg").faces) == 7


def test_crowd_finds_faces_half_hidden_by_hands(run):
    faces = run("c_group_crowd_fans.jpg", 30).faces
    assert len(faces) >= 18 and any(f.extra["landmarks"] == "robust" for f in faces)


def test_yaw_sign_follows_the_convention(run):
    # looking towards image left = turning to the subject's right = negative yaw (base.py)
    assert run("b_yaw_left_face.jpg").faces[0].yaw < 0


def test_low_light_photo_is_enhanced(run):
    result = run("d_lowlight_blurry_night.jpg")
    assert len(result.faces) == 1
    assert "low_light_enhanced" in result.faces[0].warnings
    assert "low_light_enhanced" in result.warnings
    assert result.photo is not None and result.photo.rgb.mean() > load_image(photo_path("d_lowlight_blurry_night.jpg")).rgb.mean()


def test_well_lit_photo_is_not_enhanced(run):
    assert "low_light_enhanced" not in run("a_frontal_obama.jpg").warnings


def test_exif_rotated_photo_gives_an_upright_face(run):
    faces = run("g_exif_orientation6_hopper.jpg").faces
    assert len(faces) == 1
    points = faces[0].landmarks_2d
    eyes_y = points[[33, 133, 362, 263], 1].mean()
    mouth_y = points[[13, 14, 78, 308], 1].mean()
    assert eyes_y < mouth_y
    assert abs(faces[0].roll) < 20


def test_faces_are_ordered_left_to_right(run):
    centres = [(f.bbox[0] + f.bbox[2]) / 2 for f in run("c_group_t1_six.jpg").faces]
    assert centres == sorted(centres)
    assert [f.index for f in run("c_group_t1_six.jpg").faces] == list(range(6))


def test_max_faces_is_respected(run):
    result = run("c_group_t1_six.jpg", 2)
    assert len(result.faces) == 2
    assert "max_faces_reached" in result.warnings


def test_min_face_px_drops_small_faces(cpu_engine):
    photo = load_image(photo_path("c_group_t1_six.jpg"))
    with pytest.raises(NoFaceError):
        cpu_engine.reconstruct(photo, Options(texture_size=64, min_face_px=1000))


def test_progress_stages_and_timings(cpu_engine):
    stages: list[str] = []
    result = cpu_engine.reconstruct(load_image(photo_path("a_frontal_astronaut.png")), FAST, stages.append)
    assert stages == ["detect", "landmarks", "mesh", "texture"]
    assert set(result.timings_ms) == set(stages)
    assert all(v >= 0 for v in result.timings_ms.values())


def test_progress_exception_propagates(cpu_engine):
    class Stop(Exception):
        pass

    def cancel_at_mesh(stage: str) -> None:
        if stage == "mesh":
            raise Stop

    with pytest.raises(Stop):
        cpu_engine.reconstruct(load_image(photo_path("a_frontal_astronaut.png")), FAST, cancel_at_mesh)


GEOMETRY_PHOTOS = ["a_frontal_obama.jpg", "b_yaw_left_face.jpg", "c_group_t1_six.jpg", "e_partial_face_obama.jpg"]


def all_faces(run):
    return [(name, face) for name in GEOMETRY_PHOTOS for face in run(name).faces]


def test_mesh_arrays_are_valid(run):
    for name, face in all_faces(run):
        assert face.vertices.dtype == np.float32 and face.vertices.shape[1] == 3, name
        assert face.triangles.dtype == np.int32
        assert face.triangles.min() >= 0 and face.triangles.max() < len(face.vertices)
        assert face.uvs.shape == (len(face.vertices), 2)
        assert face.uvs.min() >= 0.0 and face.uvs.max() <= 1.0
        assert np.allclose(np.linalg.norm(face.normals, axis=1), 1.0, atol=1e-4)
        assert face.texture.shape == (FAST.texture_size, FAST.texture_size, 3) and face.texture.dtype == np.uint8
        assert 0.0 <= face.texture_synthesized <= 1.0
        assert face.landmarks_2d.shape == (468, 2) and face.landmarks_3d.shape == (468, 3)


def test_mesh_is_one_consistently_oriented_surface_facing_the_viewer(run):
    for name, face in all_faces(run):
        mesh = trimesh.Trimesh(face.vertices, face.triangles, process=False)
        assert mesh.is_winding_consistent, name
        assert len(mesh.split(only_watertight=False)) == 1, name
        assert (mesh.face_normals[:, 2] * mesh.area_faces).sum() > 0, name     # outside = +Z, towards the viewer
        agreement = (mesh.vertex_normals * face.normals).sum(axis=1)
        assert np.median(agreement) > 0.99, name


def test_mesh_is_metric_and_in_the_face_frame(run):
    for name, face in all_faces(run):
        width = np.ptp(face.vertices[:, 0])
        assert 0.09 < width < 0.22, (name, width)                                # a face is ~14 cm wide
        right_eye = face.landmarks_3d[[33, 133]].mean(axis=0)
        left_eye = face.landmarks_3d[[362, 263]].mean(axis=0)
        assert left_eye[0] > right_eye[0]                                         # +X = subject's left
        assert face.landmarks_3d[1, 2] > face.landmarks_3d[234, 2]                # nose tip in front of the cheek
        assert face.landmarks_3d[10, 1] > face.landmarks_3d[152, 1]               # forehead above chin: +Y up


def test_camera_projection_lands_on_the_landmarks(run):
    for name, face in all_faces(run):
        projected = face.camera.project(face.landmarks_3d.astype(np.float64))
        extent = np.ptp(face.landmarks_2d, axis=0).max()
        error = np.linalg.norm(projected - face.landmarks_2d, axis=1).max()
        assert error <= 0.05 * extent, (name, error, extent)


def test_texture_looks_like_the_photo_at_the_nose(run):
    face = run("a_frontal_obama.jpg").faces[0]
    photo = load_image(photo_path("a_frontal_obama.jpg")).rgb
    nose = face.landmarks_2d[1].round().astype(int)
    u, v = face.uvs[np.argmin(np.linalg.norm(face.vertices - face.landmarks_3d[1], axis=1))]
    size = face.texture.shape[0]
    texel = face.texture[int((1 - v) * size - 0.5), int(u * size - 0.5)].astype(int)
    assert np.abs(texel - photo[nose[1], nose[0]].astype(int)).max() < 40


def test_profile_texture_is_mirrored(run):
    face = run("b_yaw_left_face.jpg").faces[0]
    assert "texture_mirrored" in face.warnings
    assert face.texture_synthesized > run("a_frontal_obama.jpg").faces[0].texture_synthesized


@pytest.mark.parametrize("name", [p.name for p in sorted(FACES.glob("[bcdeg]_*"))])
def test_every_other_photo_reconstructs_without_crashing(run, name):
    result = run(name)
    assert result.faces, name
    assert result.width == result.photo.width and result.height == result.photo.height


def test_tiny_faces_are_all_found(run):
    # four faces of 10-14 px in a 128 px letterboxed PNG (a FaceBoxes + 3DDFA pipeline finds none of them)
    faces = run("g_tiny_faces_4faces.png").faces
    assert len(faces) == 4
    assert all("small_face" in f.warnings for f in faces)
    assert all(max(f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) < 20 for f in faces)


def test_letterboxed_photo_is_not_taken_for_a_dark_one(run):
    assert "low_light_enhanced" not in run("g_tiny_faces_4faces.png").warnings


def test_min_face_px_counts_original_photo_pixels(cpu_engine):
    photo = load_image(photo_path("g_tiny_faces_4faces.png"))
    with pytest.raises(NoFaceError):
        cpu_engine.reconstruct(photo, Options(texture_size=64, min_face_px=20))


@pytest.mark.parametrize("name", names("a_"))
def test_frontal_photos_read_near_zero_yaw(run, name):
    assert abs(run(name).faces[0].yaw) < 15
