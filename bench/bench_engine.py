"""Engine benchmark over ../shared/faces: per-stage p50/p95, the one-face path, the turntable, peak RSS.

Run: ``.venv/bin/python bench/bench_engine.py [--engine cpu] [--repeat 1] [--faces-dir DIR]`` (``make bench``).
Prints tables; asserts nothing. Targets (a_frontal_obama, 1 MP, one face): mesh artifacts written (decode + mesh +
texture + OBJ/MTL/PNG/GLB + result.json) p50 <= 150 ms; a whole job with vis.png and video p50 <= 350 ms; a
30-frame 512^2 turntable <= 60 ms render + <= 60 ms MP4 encode.
Runs on older trees too (the same rows, for a before/after in one session): where write_artifacts has no
milestone callback, "mesh written" is the whole job, as that is when such a job showed its mesh.
"""
from __future__ import annotations

import argparse
import inspect
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from face3d.shared.artifacts.turntable import turntable_frames, write_gif, write_mp4  # noqa: E402
from face3d.shared.engines import get_engine  # noqa: E402
from face3d.shared.engines.base import Options  # noqa: E402
from face3d.shared.errors import Face3dError  # noqa: E402
from face3d.shared.imaging import decode_image  # noqa: E402
from face3d.shared.pipeline import process_photo  # noqa: E402

STAGES = ("decode", "detect", "landmarks", "mesh", "texture", "export", "vis", "render", "encode", "gif")
ONE_FACE_PHOTO = "a_frontal_obama.jpg"          # 910 x 1137 = 1.03 MP, one face
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def bench_photos(engine, photos: list[Path], repeat: int, workdir: Path) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = defaultdict(list)
    print(f"{'photo':<36} {'faces':>5} {'total ms':>9}  note")
    for photo in photos:
        for _ in range(repeat):
            start = time.perf_counter()
            try:
                result = process_photo(photo.read_bytes(), photo.name, engine, Options(), workdir / photo.stem)
            except Face3dError as exc:
                note, faces = exc.code.value, 0
            else:
                note, faces = ",".join(result.reconstruction.warnings) or "-", len(result.reconstruction.faces)
                for stage, ms in result.reconstruction.timings_ms.items():
                    stages[stage].append(ms)
            total = (time.perf_counter() - start) * 1000
        print(f"{photo.name:<36} {faces:>5} {total:>9.0f}  {note}")
    return stages


def print_stage_table(stages: dict[str, list[float]]) -> None:
    print(f"\n{'stage':<12} {'n':>4} {'p50 ms':>9} {'p95 ms':>9}")
    for stage in [*STAGES, *sorted(set(stages) - set(STAGES))]:
        values = stages.get(stage, [])
        print(f"{stage:<12} {len(values):>4} {percentile(values, 50):>9.1f} {percentile(values, 95):>9.1f}")


def _with_callback() -> bool:
    return "on_written" in inspect.signature(process_photo).parameters


def bench_one_face(engine, path: Path, repeat: int, workdir: Path) -> None:
    data = path.read_bytes()
    mesh_ms, job_ms = [], []
    for run in range(repeat):
        marks: dict[str, float] = {}
        kwargs = {"on_written": lambda written: marks.setdefault(written.milestone, time.perf_counter())} \
            if _with_callback() else {}
        start = time.perf_counter()
        process_photo(data, path.name, engine, Options(), workdir / f"job_{run}", **kwargs)
        end = time.perf_counter()
        job_ms.append((end - start) * 1000)
        mesh_ms.append((marks.get("mesh", end) - start) * 1000)
    print(f"\none face, {path.name} ({decode_image(data).width}x{decode_image(data).height}), default options, "
          f"{repeat} runs:")
    print(f"  mesh artifacts written     p50 {statistics.median(mesh_ms):7.1f} ms  p95 {percentile(mesh_ms, 95):7.1f}"
          f"  (target <= 150)")
    print(f"  whole job (vis + video)    p50 {statistics.median(job_ms):7.1f} ms  p95 {percentile(job_ms, 95):7.1f}"
          f"  (target <= 350)")


def bench_turntable(engine, path: Path, repeat: int, workdir: Path) -> None:
    recon = engine.reconstruct(decode_image(path.read_bytes(), path.name), Options(video=False))
    list(turntable_frames(recon.faces, 2, 60.0, 512))           # compile / load the renderer outside the timing
    render_ms, encode_ms, gif_ms = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        frames = list(turntable_frames(recon.faces, 30, 60.0, 512))
        middle = time.perf_counter()
        write_mp4(frames, workdir / "turntable.mp4")
        encoded = time.perf_counter()
        write_gif(frames, workdir / "turntable.gif")
        render_ms.append((middle - start) * 1000)
        encode_ms.append((encoded - middle) * 1000)
        gif_ms.append((time.perf_counter() - encoded) * 1000)
    triangles = sum(len(face.triangles) for face in recon.faces)
    print(f"\nturntable, 30 frames 512^2, {triangles} triangles, {repeat} runs:")
    print(f"  render p50 {statistics.median(render_ms):.0f} ms ({statistics.median(render_ms) / 30:.1f} ms/frame;"
          f" target <= 60), MP4 encode p50 {statistics.median(encode_ms):.0f} ms (target <= 60),"
          f" GIF p50 {statistics.median(gif_ms):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="cpu")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the photo folder")
    parser.add_argument("--faces-dir", type=Path, default=ROOT / ".." / "shared" / "faces")
    parser.add_argument("--quick", action="store_true", help="only the one-face and turntable sections")
    args = parser.parse_args()

    start = time.perf_counter()
    engine = get_engine(args.engine)
    print(f"engine {args.engine} loaded in {(time.perf_counter() - start) * 1000:.0f} ms")
    photos = sorted(p for p in args.faces_dir.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    with tempfile.TemporaryDirectory(prefix="face3d-bench-") as tmp:
        workdir = Path(tmp)
        if not args.quick:
            print_stage_table(bench_photos(engine, photos, args.repeat, workdir))
        one_face = args.faces_dir / ONE_FACE_PHOTO
        if one_face.is_file():
            bench_one_face(engine, one_face, 20, workdir)
            bench_turntable(engine, one_face, 10, workdir)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
