"""Turntable MP4 / GIF: decodable, exactly the asked frame count and size; the yaw schedule."""
from __future__ import annotations

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from face3d.shared.artifacts.turntable import frame_side, grid, yaw_schedule


def test_mp4_decodes_to_the_asked_frames_and_size(synthetic_output, synthetic_options):
    _, _, outdir, _ = synthetic_output
    reader = imageio_ffmpeg.read_frames(str(outdir / "turntable.mp4"))
    meta = reader.__next__()
    side = synthetic_options.render_size
    assert tuple(meta["size"]) == (side, side)
    assert meta["codec"].startswith("h264")
    assert "yuv420p" in meta["pix_fmt"]
    frames = [np.frombuffer(frame, np.uint8).reshape(side, side, 3) for frame in reader]
    assert len(frames) == synthetic_options.frames
    assert not np.array_equal(frames[0], frames[len(frames) // 4])        # it turns


def test_gif_has_every_frame(synthetic_output, synthetic_options):
    _, _, outdir, _ = synthetic_output
    gif = Image.open(outdir / "turntable.gif")
    assert gif.n_frames == synthetic_options.frames
    assert gif.size == (synthetic_options.render_size,) * 2


@pytest.mark.parametrize("frames", [2, 7, 12, 28, 30, 31])
def test_oscillating_sweep_stays_in_range_and_never_repeats_a_neighbour(frames):
    yaws = yaw_schedule(frames, 60)
    assert len(yaws) == frames
    assert np.abs(yaws).max() <= 30 + 1e-9
    assert np.abs(np.diff(yaws)).min() > 1e-6


def test_full_turn_is_even_steps():
    yaws = yaw_schedule(36, 360)
    np.testing.assert_allclose(np.diff(yaws), 10.0)


def test_grid_and_even_side():
    assert grid(1) == (1, 1) and grid(2) == (2, 1) and grid(5) == (3, 2) and grid(27) == (6, 5)
    assert frame_side(513) == 512 and frame_side(512) == 512


def test_outputs_without_gif_write_the_mp4_only(make_reconstruction, tmp_path):
    from dataclasses import replace

    from face3d.shared.artifacts import write_artifacts
    from face3d.shared.engines.base import Options

    options = replace(Options(), outputs=frozenset({"json", "video"}), frames=4, render_size=64, texture_size=64)
    names = {path.name for path in write_artifacts(make_reconstruction(faces=1, texture_size=64), tmp_path, options)}
    assert names == {"turntable.mp4", "result.json"}


def test_mp4_shows_the_rendered_colours(make_reconstruction, tmp_path):
    """The encoder's YUV conversion keeps colours: decoded by an independent decoder (ffmpeg's binary), every frame
    matches the rendered one within H.264's loss (compared blurred: the texture's fine grain is what H.264 drops).
    A full-range/limited-range mix-up shifts levels by ~16 and swapped chroma planes turn skin blue; point-sampled
    chroma (OpenCV's own 4:2:0) leaves colour fringes up to ~25 levels along the outline: all fail here."""
    from face3d.shared.artifacts.turntable import render_clip, write_mp4

    recon = make_reconstruction(faces=1, texture_size=128)
    rendered = render_clip(recon.faces, 6, 60.0, 128)
    path = write_mp4(rendered, tmp_path / "clip.mp4")
    reader = imageio_ffmpeg.read_frames(str(path))
    reader.__next__()
    decoded = [np.frombuffer(frame, np.uint8).reshape(128, 128, 3) for frame in reader]
    assert len(decoded) == len(rendered)
    for want, got in zip(rendered, decoded):
        assert np.abs(want.reshape(-1, 3).mean(axis=0) - got.reshape(-1, 3).mean(axis=0)).max() < 2.0
        difference = np.abs(_blurred(want) - _blurred(got))
        assert difference.mean() < 2.0 and difference.max() < 15.0


def _blurred(frame: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 3.0)
