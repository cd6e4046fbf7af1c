"""Turntable videos: every face of the photo tiled in one square clip, and optionally one clip per face.

Layout: turntable.mp4 tiles the faces in a near-square grid (ceil(sqrt(n)) columns) inside a ``render_size`` x
``render_size`` frame, so its cost does not grow with the face count; turntable_face<i>.mp4 (0-based i, the
face's index) shows face i alone at the full ``render_size``.
Motion: ``frames`` frames. A sweep below 360 degrees oscillates smoothly, yaw = sweep/2 * sin(2 pi (k + 1/3) / frames),
so the clip loops without a jump (60 = +-30 degrees, like HRN); the 1/3 phase keeps any two neighbouring frames
from sharing a yaw. 360 is a full turn at constant speed.
Encoding: H.264 (yuv420p, even side: an odd ``render_size`` is rounded down) and turntable.gif, both through the
ffmpeg binary imageio-ffmpeg ships; the GIF uses ffmpeg's palettegen/paletteuse (one palette for the clip).
Frames render on the bounded thread pool of shared.artifacts.render (the kernels release the GIL).
"""
from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import imageio_ffmpeg
import numpy as np

from face3d.shared.artifacts.render import BACKGROUND, TexturedMesh, View, parallel_imap, render
from face3d.shared.engines.base import Face

FPS = 15
X264 = ["-preset", "ultrafast", "-crf", "23", "-movflags", "+faststart"]
GIF_FILTER = "split[a][b];[a]palettegen=max_colors=255:stats_mode=full[p];[b][p]paletteuse=dither=none"


@dataclass
class Clips:
    tiled: list[np.ndarray]                                       # turntable.mp4 / .gif frames
    faces: list[list[np.ndarray]] = field(default_factory=list)   # one clip per face, when asked for


def frame_side(render_size: int) -> int:
    return max(16, render_size - render_size % 2)


def yaw_schedule(frames: int, sweep_degrees: float) -> np.ndarray:
    steps = np.arange(frames) / max(frames, 1)
    if sweep_degrees >= 360:
        return 360.0 * steps
    return sweep_degrees / 2 * np.sin(2 * np.pi * (steps + 1 / (3 * max(frames, 1))))


def grid(count: int) -> tuple[int, int]:
    cols = max(1, math.ceil(math.sqrt(count)))
    return cols, max(1, math.ceil(count / cols))


def tiled_frame(meshes: list[TexturedMesh], side: int, yaw: float) -> np.ndarray:
    cols, rows = grid(len(meshes))
    tile = side // cols
    frame = np.empty((side, side, 3), np.uint8)
    frame[:] = BACKGROUND
    top = (side - rows * tile) // 2
    left = (side - cols * tile) // 2
    for i, mesh in enumerate(meshes):
        y, x = top + (i // cols) * tile, left + (i % cols) * tile
        frame[y:y + tile, x:x + tile] = render(mesh, tile, View(yaw_degrees=float(yaw))).rgb
    return frame


def turntable_frames(faces: list[Face], frames: int, sweep_degrees: float, render_size: int) -> Iterator[np.ndarray]:
    """The tiled clip's frames, in order (rendered on the thread pool)."""
    side = frame_side(render_size)
    tile = side // grid(len(faces))[0]
    meshes = [TexturedMesh.from_face(face).for_frame(tile) for face in faces]
    return parallel_imap(lambda yaw: tiled_frame(meshes, side, yaw), yaw_schedule(frames, sweep_degrees))


def render_turntables(faces: list[Face], frames: int, sweep_degrees: float, render_size: int, *,
                      per_face: bool = False, report: Callable[[float], None] | None = None) -> Clips:
    """Every frame of the tiled clip and, with ``per_face``, of each face's own clip; ``report(done / total)``
    after each frame."""
    total = frames * (1 + (len(faces) if per_face else 0))
    done = 0

    def collect(stream: Iterator[np.ndarray]) -> list[np.ndarray]:
        nonlocal done
        clip = []
        for frame in stream:
            clip.append(frame)
            done += 1
            if report is not None:
                report(done / total)
        return clip

    clips = Clips(collect(turntable_frames(faces, frames, sweep_degrees, render_size)))
    if per_face:
        clips.faces = [collect(turntable_frames([face], frames, sweep_degrees, render_size)) for face in faces]
    return clips


def write_mp4(frames: list[np.ndarray], path: Path) -> Path:
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=FPS, codec="libx264", pix_fmt_out="yuv420p", quality=None,
        macro_block_size=2, ffmpeg_log_level="error", output_params=X264,
    )
    writer.send(None)                 # start the generator (launches ffmpeg)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def write_gif(frames: list[np.ndarray], path: Path) -> Path:
    height, width = frames[0].shape[:2]
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(FPS), "-i", "-", "-filter_complex", GIF_FILTER,
               "-loop", "0", str(path)]
    data = b"".join(np.ascontiguousarray(frame).tobytes() for frame in frames)
    finished = subprocess.run(command, input=data, capture_output=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {path.name}: {finished.stderr.decode(errors='replace')[-500:]}")
    return path
