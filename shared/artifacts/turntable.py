"""Turntable videos: every face of the photo tiled in one square clip, and optionally one clip per face.

Layout: turntable.mp4 tiles the faces in a near-square grid (ceil(sqrt(n)) columns) inside a ``render_size`` x
``render_size`` frame, so its cost does not grow with the face count; turntable_face<i>.mp4 (0-based i, the
face's index) shows face i alone at the full ``render_size``.
Motion: ``frames`` frames. A sweep below 360 degrees oscillates smoothly, yaw = sweep/2 * sin(2 pi (k + 1/3) / frames),
so the clip loops without a jump (60 = +-30 degrees, like HRN); the 1/3 phase keeps any two neighbouring frames
from sharing a yaw. 360 is a full turn at constant speed.
Encoding: H.264 in process through PyAV's FFmpeg (x264 ultrafast, yuv420p, even side: an odd ``render_size`` is
rounded down). It replaced piping raw frames to the ffmpeg binary of imageio-ffmpeg: a 30-frame 512^2 clip went from
~92 to ~60 ms (no process start, no 23 MB pipe); converting the frames to YUV with OpenCV (``yuv420``) took about
a fifth off that again. turntable.gif (opt-in) through Pillow with one palette for the clip.
Frames render on the job's bounded thread pool (shared/threads.py; the kernels release the GIL).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterator

import av
import cv2
import numpy as np
from PIL import Image

from face3d.shared.artifacts.render import BACKGROUND, TexturedMesh, View, render
from face3d.shared.threads import parallel_imap
from face3d.shared.engines.base import Face

FPS = 15
X264 = {"preset": "ultrafast", "crf": "23"}


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
    if len(meshes) == 1:                          # one face fills the frame: no canvas to fill and copy into
        return render(meshes[0], side, View(yaw_degrees=float(yaw))).rgb
    frame = np.empty((side, side, 3), np.uint8)
    frame[:] = np.asarray(BACKGROUND, np.uint8)
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


def render_clip(faces: list[Face], frames: int, sweep_degrees: float, render_size: int,
                report: Callable[[float], None] | None = None) -> list[np.ndarray]:
    """Every frame of one clip (the faces tiled, or one face alone), ``report(done / frames)`` after each."""
    clip = []
    for frame in turntable_frames(faces, frames, sweep_degrees, render_size):
        clip.append(frame)
        if report is not None:
            report(len(clip) / frames)
    return clip


def write_mp4(frames: list[np.ndarray], path: Path) -> Path:
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = X264
        for planes in parallel_imap(yuv420, frames):     # converted on the job's threads while x264 encodes
            container.mux(stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
        container.mux(stream.encode())          # flush the encoder's delayed frames
    return path


def yuv420(frame: np.ndarray) -> np.ndarray:
    """(H * 3 / 2, W) uint8 I420 planes of an RGB frame (even sides): BT.601, limited range, each chroma sample the
    mean of its 2x2 block, as swscale converts rgb24 to yuv420p (within 1-2 levels), in ~0.5 ms where handing
    PyAV rgb24 frames cost ~1.5 ms a 512^2 frame, half of the whole encode."""
    frame = np.ascontiguousarray(frame)
    height, width = frame.shape[:2]
    planes = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)
    # OpenCV subsamples chroma by taking each 2x2 block's top-left pixel (colour fringes at the face's outline); a
    # frame whose blocks already hold their mean gives the averaged chroma
    blocks = cv2.resize(cv2.resize(frame, (width // 2, height // 2), interpolation=cv2.INTER_AREA), (width, height),
                        interpolation=cv2.INTER_NEAREST)
    planes[height:] = cv2.cvtColor(blocks, cv2.COLOR_RGB2YUV_I420)[height:]
    return planes


def write_gif(frames: list[np.ndarray], path: Path) -> Path:
    # One palette for the whole clip (taken from the middle frame) keeps colours steady and quantising cheap; Pillow
    # measured faster than ffmpeg's palettegen/paletteuse for these short clips (bench/bench_engine.py, GIF row).
    palette = Image.fromarray(frames[len(frames) // 2]).quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / FPS), loop=0,
                   optimize=False, disposal=1)
    return path
