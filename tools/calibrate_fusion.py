"""Fit shared/engines/cpu/weights/fusion.npz on an AFLW2000-3D development folder (never on photos held out).

    python tools/calibrate_fusion.py [FOLDER] [--check]

Runs the CPU engine with the fusion switched off on every photo, keeps the face that matches the truth, then
1. derives the MediaPipe -> iBUG point pairs on the frontal faces (|true yaw| < 30),
2. fits alpha / bias / rotation per yaw knot (tools/fusion_fit.py),
3. prints what a 2-fold split (4 seeds) gains on the half it was not fitted on, then fits on everything and writes
   the file (--check: print only). Run it twice when it reports that the point pairs changed (they move the crops).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.aflw import POSE_LIMIT, aflw_angles, aflw_rotation, load_truth, matching, Guess, box_of  # noqa: E402
from face3d.shared.engines.base import Options  # noqa: E402
from face3d.shared.engines.cpu import CpuEngine, fusion  # noqa: E402
from face3d.shared.engines.cpu.topology import canonical  # noqa: E402
from face3d.shared.errors import NoFaceError  # noqa: E402
from face3d.shared.imaging import load_image  # noqa: E402
from tools.fusion_fit import derive_mapping, fit  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "benchmarks" / "aflw2000-3d-dev"
OUTLIER_NME = 0.15          # faces the raw model misses this badly (broken truth, wrong face) are left out of fits


def records(folder: Path) -> list[dict]:
    current = fusion.calibration()
    fusion.calibration = lambda: current.uncorrected()          # the raw models, same point pairs
    engine = CpuEngine()
    found = []
    for truth in load_truth(folder):
        try:
            faces = engine.reconstruct(load_image(folder / truth.image), Options(outputs=frozenset({"json"}))).faces
        except NoFaceError:
            continue
        guesses = {id(face): Guess(box_of(face.extra["robust_68"]), face.extra["robust_68"], face.camera.rotation)
                   for face in faces}
        best = matching(list(guesses.values()), truth)
        face = next((f for f in faces if guesses[id(f)] is best), None)
        if face is not None:
            found.append(_record(face.extra, truth))
    fusion.calibration = lambda: current
    return found


def _record(extra: dict, truth) -> dict:
    yaw, _, roll = aflw_angles(extra["robust_rotation"])
    usable_pose = np.abs(truth.angles).max() <= POSE_LIMIT
    return {"robust": extra["robust_68"], "mediapipe_points": extra.get("mediapipe_points"), "mediapipe": None,
            "rotation": extra["robust_rotation"], "yaw": yaw, "roll": roll, "truth": truth.landmarks,
            "true_rotation": aflw_rotation(truth.angles) if usable_pose else None, "norm": truth.norm,
            "true_yaw": abs(truth.angles[0]), "true_angles": truth.angles}


def with_mapping(found: list[dict], mapping: np.ndarray) -> list[dict]:
    for r in found:
        points = r["mediapipe_points"]
        r["mediapipe"] = None if points is None else points[mapping].mean(axis=1)[:, :2]
    return found


def mapping_of(found: list[dict]) -> np.ndarray:
    frontal = [r for r in found if r["mediapipe_points"] is not None and r["true_yaw"] < 30]
    points = np.array([r["mediapipe_points"][:, :2] for r in frontal])
    return derive_mapping(points, np.array([r["truth"] for r in frontal]), np.array([r["norm"] for r in frontal]),
                          canonical().mirror)


def evaluate(found: list[dict], calib) -> tuple[float, float, float]:
    bins, pose = [[], [], []], []
    for r in found:
        points = fusion.fuse_points(r["robust"], r["mediapipe"], r["yaw"], r["roll"], calib)
        error = np.linalg.norm(points - r["truth"], axis=1).mean() / r["norm"]
        bins[0 if r["true_yaw"] < 30 else 1 if r["true_yaw"] < 60 else 2].append(error)
        if r["true_rotation"] is not None:
            rotation = fusion.corrected_rotation(r["rotation"], r["yaw"], calib)
            pose.append(np.abs(aflw_angles(rotation) - r["true_angles"]).mean())
    means = [100 * float(np.mean(b)) for b in bins]
    return float(np.mean(means)), means[2], float(np.mean(pose))


def fitted(found: list[dict], mapping: np.ndarray):
    usable = [r for r in found if np.linalg.norm(r["robust"] - r["truth"], axis=1).mean() / r["norm"] < OUTLIER_NME]
    return fit(usable, mapping)


def cross_validate(found: list[dict], mapping: np.ndarray, seeds: int = 4) -> None:
    raw = fusion.calibration().uncorrected()
    raw = type(raw)(raw.alpha, raw.bias, raw.rotation, mapping)
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(found))
        for train, test in ((order[::2], order[1::2]), (order[1::2], order[::2])):
            held = [found[i] for i in test]
            before, after = evaluate(held, raw), evaluate(held, fitted([found[i] for i in train], mapping))
            print(f"seed {seed}: held-out NME {before[0]:.2f} -> {after[0]:.2f}  [60,90] {before[1]:.2f} -> "
                  f"{after[1]:.2f}  pose MAE {before[2]:.2f} -> {after[2]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=DEFAULT)
    parser.add_argument("--check", action="store_true", help="print the cross-validation, write nothing")
    args = parser.parse_args()
    found = records(args.folder)
    mapping = mapping_of(found)
    changed = int((mapping != fusion.calibration().mediapipe_to_68).any(axis=1).sum())
    print(f"{len(found)} faces matched; MediaPipe point pairs changed for {changed} of 68 points")
    with_mapping(found, mapping)
    cross_validate(found, mapping)
    calib = fitted(found, mapping)
    print(f"fitted on all: NME / [60,90] / pose MAE {evaluate(found, calib)}")
    if not args.check:
        np.savez(fusion.CALIBRATION, alpha=calib.alpha, bias=calib.bias, rotation=calib.rotation,
                 mediapipe_to_68=mapping.astype(np.int16))
        print(f"wrote {fusion.CALIBRATION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
