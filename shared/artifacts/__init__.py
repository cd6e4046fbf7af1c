"""Engine-neutral artifact writers: a Reconstruction in, the files a person downloads out, in the order they are
useful.

Milestones, each handed to ``on_written`` as soon as its files exist (the worker stores them then):
1. ``mesh``: per face i face_<i>.obj/.mtl/_texture.png and face_<i>.glb (and on request .stl/.3mf/.ply/.usdz,
   shared.artifacts.formats), then result.json (its ``files`` name every planned file);
2. ``vis``: vis.png;
3. ``video`` (when ``options.video``): turntable.mp4 (all faces tiled in one clip), then, for a photo of two or
   more faces and ``options.face_videos``, turntable_face<i>.mp4 (one face each), then, with the ``gif`` output,
   turntable.gif (shared.artifacts.turntable);
4. ``done``: result.json again, with every stage's timing.
Stage timings (ms) are added to ``recon.timings_ms``: export, vis, render (the tiled clip's frames), encode (its
MP4), face_videos (the per-face clips, rendered and encoded one after the other), gif. ``progress(stage)`` is called
at each stage, and ``progress(stage, done / total)`` while render and face_videos run.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from face3d.shared.artifacts.document import result_document, write_document
from face3d.shared.artifacts.formats import write_face_formats
from face3d.shared.artifacts.meshes import face_file_names, png_bytes, sized_texture, write_face_files
from face3d.shared.engines.base import Face, Options, ProgressFn, Reconstruction
from face3d.shared.threads import parallel_imap

RESULT_NAME = "result.json"
VIS_NAME, VIDEO_NAME, GIF_NAME = "vis.png", "turntable.mp4", "turntable.gif"
MILESTONES = ("mesh", "vis", "video", "done")


@dataclass
class Written:
    """One milestone's files, the reconstruction they came from, and the names still to come."""

    milestone: str
    paths: list[Path]
    reconstruction: Reconstruction
    pending: list[str] = field(default_factory=list)


WrittenFn = Callable[[Written], None]


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


def wants_face_videos(recon: Reconstruction, options: Options) -> bool:
    return options.wants("video") and options.face_videos and len(recon.faces) > 1


def planned_names(recon: Reconstruction, options: Options) -> list[str]:
    """Every file ``write_artifacts`` will write, in the order it writes them."""
    names: list[str] = []
    for face in recon.faces:
        per_face = face_file_names(face.index)
        kinds = [("obj", "obj"), ("mtl", "obj"), ("texture", "obj"), ("glb", "glb"), ("stl", "stl"),
                 ("3mf", "3mf"), ("ply", "ply"), ("usdz", "usdz")]
        names += [per_face[kind] for kind, output in kinds if options.wants(output)]
    names.append(RESULT_NAME)
    if options.wants("vis"):
        names.append(VIS_NAME)
    if options.wants("video") and recon.faces:
        names.append(VIDEO_NAME)
        if wants_face_videos(recon, options):
            names += [face_file_names(face.index)["turntable_mp4"] for face in recon.faces]
        if options.wants("gif"):
            names.append(GIF_NAME)
    return names


class _Emitter:
    def __init__(self, recon: Reconstruction, planned: list[str], on_written: WrittenFn | None) -> None:
        self.recon, self.pending, self.on_written = recon, list(planned), on_written

    def __call__(self, milestone: str, paths: list[Path]) -> None:
        done = {path.name for path in paths}
        self.pending = [name for name in self.pending if name not in done]
        if self.on_written is not None:
            self.on_written(Written(milestone, list(paths), self.recon, list(self.pending)))


def write_artifacts(recon: Reconstruction, outdir: Path, options: Options, progress: ProgressFn | None = None,
                    on_written: WrittenFn | None = None) -> list[Path]:
    """Write every artifact of ``recon`` into ``outdir`` (created if needed), milestone by milestone; returns the
    paths, result.json last."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    planned = planned_names(recon, options)
    emit = _Emitter(recon, planned, on_written)
    mesh: list[Path] = []
    with _stage(recon, "export", progress):
        for files in parallel_imap(lambda face: _write_face(face, outdir, options), recon.faces):
            mesh += files
        document = outdir / RESULT_NAME
        write_document(result_document(recon, [outdir / name for name in planned], options), document)
    emit("mesh", [*mesh, document])
    later = _write_vis(recon, outdir, options, progress, emit) + _write_videos(recon, outdir, options, progress, emit)
    write_document(result_document(recon, [outdir / name for name in planned], options), document)
    emit("done", [document])
    return [*mesh, *later, document]


def _write_face(face: Face, outdir: Path, options: Options) -> list[Path]:
    return [*write_face_files(face, outdir, options).as_list(),
            *write_face_formats(face, outdir, options, _texture_for_formats(face, options))]


def _write_vis(recon: Reconstruction, outdir: Path, options: Options, progress: ProgressFn | None,
               emit: _Emitter) -> list[Path]:
    if not options.wants("vis"):
        return []
    from face3d.shared.artifacts.vis import draw_vis       # the renderer (numba) loads only where it draws
    with _stage(recon, "vis", progress):
        path = outdir / VIS_NAME
        path.write_bytes(png_bytes(draw_vis(recon)))
    emit("vis", [path])
    return [path]


def _write_videos(recon: Reconstruction, outdir: Path, options: Options, progress: ProgressFn | None,
                  emit: _Emitter) -> list[Path]:
    if not (options.wants("video") and recon.faces):
        return []
    from face3d.shared.artifacts.turntable import render_clip, write_gif, write_mp4

    def report(stage: str) -> Callable[[float], None] | None:
        return None if progress is None else (lambda fraction: progress(stage, fraction))

    clip = (options.frames, options.sweep_degrees, options.render_size)
    with _stage(recon, "render", progress):
        tiled = render_clip(recon.faces, *clip, report=report("render"))
    with _stage(recon, "encode", progress):
        paths = [write_mp4(tiled, outdir / VIDEO_NAME)]
    emit("video", paths)
    if wants_face_videos(recon, options):          # one clip at a time: a crowd's clips never sit in memory at once
        with _stage(recon, "face_videos", progress):
            for done, face in enumerate(recon.faces):
                frames = render_clip([face], *clip)
                paths.append(write_mp4(frames, outdir / face_file_names(face.index)["turntable_mp4"]))
                if progress is not None:
                    progress("face_videos", (done + 1) / len(recon.faces))
        emit("video", paths[1:])
    if not options.wants("gif"):
        return paths
    with _stage(recon, "gif", progress):
        gif = write_gif(tiled, outdir / GIF_NAME)
    emit("video", [gif])
    return [*paths, gif]


__all__ = ["write_artifacts", "result_document", "planned_names", "Written", "WrittenFn", "MILESTONES",
           "RESULT_NAME"]
