"""Engine-neutral artifact writers: a Reconstruction in, the files a person downloads out.

Per face i: face_<i>.obj/.mtl/_texture.png and face_<i>.glb, and on request face_<i>.stl/.3mf/.ply/.usdz
(shared.artifacts.formats); per photo: vis.png, result.json and, when
``options.video``, turntable.mp4 + turntable.gif (all faces tiled in one clip, see ``shared.artifacts.turntable``).
Stage timings "export", "render" and "encode" (ms) are added to ``recon.timings_ms``.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2

from face3d.shared.artifacts.document import result_document, write_document
from face3d.shared.artifacts.formats import write_face_formats
from face3d.shared.artifacts.meshes import sized_texture, write_face_files
from face3d.shared.artifacts.turntable import turntable_frames, write_gif, write_mp4
from face3d.shared.artifacts.vis import draw_vis
from face3d.shared.engines.base import Options, ProgressFn, Reconstruction

RESULT_NAME = "result.json"


@contextmanager
def _stage(recon: Reconstruction, name: str, progress: ProgressFn | None) -> Iterator[None]:
    if progress is not None:
        progress(name)
    start = time.perf_counter()
    yield
    recon.timings_ms[name] = recon.timings_ms.get(name, 0.0) + (time.perf_counter() - start) * 1000


def _texture_for_formats(face, options: Options):
    wanted = options.wants("ply") or options.wants("usdz")
    return sized_texture(face.texture, options.texture_size) if wanted and face.texture is not None else None


def write_artifacts(recon: Reconstruction, outdir: Path, options: Options,
                    progress: ProgressFn | None = None) -> list[Path]:
    """Write every artifact of ``recon`` into ``outdir`` (created if needed); returns the paths, result.json last."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    with _stage(recon, "export", progress):
        for face in recon.faces:
            files += write_face_files(face, outdir, options).as_list()
            files += write_face_formats(face, outdir, options, _texture_for_formats(face, options))
    with _stage(recon, "render", progress):
        vis = draw_vis(recon) if options.wants("vis") else None
        frames = list(turntable_frames(recon.faces, options.frames, options.sweep_degrees, options.render_size)) \
            if options.wants("video") and recon.faces else []
    with _stage(recon, "encode", progress):
        if vis is not None:
            vis_path = outdir / "vis.png"
            cv2.imwrite(str(vis_path), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            files.append(vis_path)
        if frames:
            files.append(write_mp4(frames, outdir / "turntable.mp4"))
            files.append(write_gif(frames, outdir / "turntable.gif"))
    files.append(write_document(result_document(recon, files, options), outdir / RESULT_NAME))
    return files


__all__ = ["write_artifacts", "result_document", "RESULT_NAME"]
