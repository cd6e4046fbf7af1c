"""HRN (GPU) benchmark: per-face latency of the engine, and of the whole job with and without the turntable video.

Run on a machine with CUDA, the GPU packages and the weights (``HRN_MODEL_DIR``), e.g. inside the GPU image:
``python bench/bench_gpu.py [--photos a_frontal_obama.jpg c_group_t1_six.jpg] [--repeat 3]``.
Without them it says why and exits 0. Prints a table; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from face3d.shared.engines.base import Options  # noqa: E402
from face3d.shared.errors import EngineUnavailable  # noqa: E402

FACES_DIR = ROOT / ".." / "shared" / "faces"
DEFAULT_PHOTOS = ("a_frontal_obama.jpg", "c_group_t1_six.jpg")


def main() -> int:
    args = parse_args()
    from face3d.shared.engines.hrn import HrnEngine

    engine = HrnEngine()
    try:
        started = time.perf_counter()
        engine.load()
    except EngineUnavailable as exc:
        print(f"bench_gpu: skipped, HRN is not available here: {exc.message}")
        return 0
    print(f"HRN load: {(time.perf_counter() - started) * 1000:.0f} ms")
    print(f"{'photo':32} {'faces':>5} {'video':>5} {'engine ms/face':>15} {'job ms/face p50':>16} {'p95':>8}  warnings")
    for name in args.photos:
        for video in (False, True):
            row = measure(engine, args.faces_dir / name, Options(video=video), args.repeat)
            print(f"{name:32} {row['faces']:>5} {str(video):>5} {row['engine']:>15.0f} {row['p50']:>16.0f} "
                  f"{row['p95']:>8.0f}  {','.join(row['warnings']) or '-'}")
    return 0


def measure(engine, path: Path, options: Options, repeat: int) -> dict:
    from face3d.shared.artifacts import write_artifacts
    from face3d.shared.imaging import load_image

    photo = load_image(path)
    engine_ms, job_ms, faces, warnings = [], [], 1, []
    for _ in range(repeat):
        started = time.perf_counter()
        recon = engine.reconstruct(photo, options)
        reconstructed = time.perf_counter()
        with tempfile.TemporaryDirectory() as outdir:
            write_artifacts(recon, Path(outdir), options)
        faces, warnings = len(recon.faces), recon.warnings   # face_skipped / hrn_face_mismatch: see matching.py
        engine_ms.append((reconstructed - started) * 1000 / faces)
        job_ms.append((time.perf_counter() - started) * 1000 / faces)
    job_ms.sort()
    return {"faces": faces, "warnings": warnings, "engine": statistics.median(engine_ms), "p50": statistics.median(job_ms),
            "p95": job_ms[min(len(job_ms) - 1, round(0.95 * (len(job_ms) - 1)))]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS))
    parser.add_argument("--faces-dir", type=Path, default=FACES_DIR)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
