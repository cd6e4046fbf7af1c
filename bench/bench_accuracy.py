"""make bench-accuracy: the CPU engine on an AFLW2000-3D folder, scored with the standard protocol (bench/aflw.py).

    python bench/bench_accuracy.py [FOLDER] [--limit N] [--json OUT]

FOLDER holds the photos and ground_truth.jsonl (default: ../shared/benchmarks/aflw2000-3d-dev, the development split).
One engine run per photo (outputs: result.json only, so no texture); every face carries each model's own answer, so
one run scores three variants: MediaPipe's 468 points mapped to 68 with its own similarity pose (the engine before the
robust model, on the faces MediaPipe verifies), the robust model alone (3DDFA_V2 MobileNet-0.5, raw), and the fused
default. ms = decode + detect + landmarks + mesh per photo, p50, this machine.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.aflw import Guess, Score, box_of, load_truth, matching  # noqa: E402
from face3d.shared.engines.base import Face, Options  # noqa: E402
from face3d.shared.engines.cpu import CpuEngine  # noqa: E402
from face3d.shared.engines.cpu.fusion import mediapipe_68  # noqa: E402
from face3d.shared.engines.cpu.mesh import mediapipe_shape  # noqa: E402
from face3d.shared.errors import NoFaceError  # noqa: E402
from face3d.shared.imaging import load_image  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "aflw2000-3d-dev"
VARIANTS = ("mediapipe 468 -> 68", "robust (3DDFA_V2 mb0.5)", "fused (default)")
ENGINE_STAGES = ("decode", "detect", "landmarks", "mesh", "texture")


def guesses(face: Face) -> dict[str, Guess | None]:
    extra = face.extra
    fused = Guess(tuple(face.bbox), face.landmarks_68, face.camera.rotation)
    robust = Guess(box_of(extra["robust_68"]), extra["robust_68"], extra["robust_rotation"])
    mediapipe = None
    if "mediapipe_points" in extra:
        points = extra["mediapipe_points"]
        mediapipe = Guess(box_of(points), mediapipe_68(points)[:, :2], mediapipe_shape(points)[0].rotation)
    return dict(zip(VARIANTS, (mediapipe, robust, fused)))


def run(folder: Path, limit: int | None) -> tuple[dict[str, Score], list[float]]:
    engine = CpuEngine()
    engine.load()
    scores = {name: Score() for name in VARIANTS}
    times = []
    for truth in load_truth(folder)[:limit]:
        started = time.perf_counter()
        photo = load_image(folder / truth.image)
        decode_ms = (time.perf_counter() - started) * 1000
        try:
            recon = engine.reconstruct(photo, Options(outputs=frozenset({"json"})))
            faces = recon.faces
            times.append(decode_ms + sum(recon.timings_ms.get(stage, 0.0) for stage in ENGINE_STAGES))
        except NoFaceError:
            faces = []
            times.append(decode_ms)
        per_face = [guesses(face) for face in faces]
        for name in VARIANTS:
            scores[name].add(truth, matching([g[name] for g in per_face if g[name] is not None], truth))
    return scores, times


def table(scores: dict[str, Score], times: list[float]) -> str:
    head = (f"| variant | photos | misses | NME % | [0,30) | [30,60) | [60,90] | pose MAE ° | yaw | pitch | roll |\n"
            f"|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, score in scores.items():
        s = score.summary()
        rows.append(f"| {name} | {s['photos']} | {s['misses']} | {s['nme']:.2f} | {s['nme_0_30']:.2f} | "
                    f"{s['nme_30_60']:.2f} | {s['nme_60_90']:.2f} | {s['pose_mae']:.2f} | {s['yaw_mae']:.2f} | "
                    f"{s['pitch_mae']:.2f} | {s['roll_mae']:.2f} |")
    ms = np.percentile(times, [50, 95]) if times else [float("nan")] * 2
    return "\n".join([head, *rows, f"\nengine ms per photo (one run, all variants): p50 {ms[0]:.1f}, p95 {ms[1]:.1f}"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=DEFAULT)
    parser.add_argument("--limit", type=int, help="score only the first N photos")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args()
    if not (args.folder / "ground_truth.jsonl").exists():
        print(f"no ground_truth.jsonl in {args.folder}", file=sys.stderr)
        return 2
    scores, times = run(args.folder, args.limit)
    print(table(scores, times))
    if args.json:
        args.json.write_text(json.dumps({name: s.summary() for name, s in scores.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
