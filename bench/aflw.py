"""AFLW2000-3D: the split's ground truth and the standard protocol (68-point NME by yaw bin, pose MAE, misses).

Protocol (as 3DDFA, 3DDFA_V2, 2DASL and SynergyNet report it):
- NME: mean 2D distance of the 68 predicted points to the true ones / sqrt(w * h) of the true 68-point box, in %;
  photos binned by |true yaw| into [0, 30), [30, 60), [60, 90]; the headline NME is the mean of the bin means.
- Pose: mean absolute yaw, pitch and roll error (degrees) on photos whose true angles all lie in [-99, 99]; the
  predicted rotation is decomposed in AFLW2000-3D's own convention, R = Rx(pitch) Ry(yaw) Rz(roll).
- Miss: no returned face whose box overlaps the true box with IoU >= 0.1 (counted, not scored).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POSE_LIMIT = 99.0
MIN_IOU = 0.1


@dataclass(frozen=True)
class Truth:
    image: str
    landmarks: np.ndarray          # (68, 2)
    angles: np.ndarray             # yaw, pitch, roll (degrees, AFLW2000-3D's signs)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return box_of(self.landmarks)

    @property
    def norm(self) -> float:
        x0, y0, x1, y1 = self.box
        return math.sqrt((x1 - x0) * (y1 - y0))


@dataclass(frozen=True)
class Guess:
    box: tuple[float, float, float, float]
    landmarks: np.ndarray          # (68, 2) photo pixels
    rotation: np.ndarray           # (3, 3) face frame -> camera frame (x right, y up, z to the viewer)


def load_truth(folder: Path) -> list[Truth]:
    rows = [json.loads(line) for line in (folder / "ground_truth.jsonl").read_text().splitlines() if line.strip()]
    return [Truth(r["image"], np.asarray(r["landmarks_68"], float), np.array([r["yaw"], r["pitch"], r["roll"]]))
            for r in rows]


def aflw_angles(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees with Rx(pitch) Ry(yaw) Rz(roll) == rotation, AFLW2000-3D's signs."""
    yaw = math.asin(max(-1.0, min(1.0, -rotation[0, 2])))
    return np.degrees([yaw, math.atan2(rotation[1, 2], rotation[2, 2]), math.atan2(rotation[0, 1], rotation[0, 0])])


def box_of(points: np.ndarray) -> tuple[float, float, float, float]:
    return float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max())


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def matching(guesses: list[Guess], truth: Truth) -> Guess | None:
    """The guess whose box overlaps the true face best, if it overlaps enough."""
    scored = [(iou(g.box, truth.box), g) for g in guesses]
    best = max(scored, key=lambda pair: pair[0], default=(0.0, None))
    return best[1] if best[0] >= MIN_IOU else None


@dataclass
class Score:
    bins: list[list[float]] = field(default_factory=lambda: [[], [], []])
    pose_errors: list[np.ndarray] = field(default_factory=list)
    misses: int = 0
    photos: int = 0

    def add(self, truth: Truth, guess: Guess | None) -> None:
        self.photos += 1
        if guess is None:
            self.misses += 1
            return
        error = float(np.linalg.norm(guess.landmarks - truth.landmarks, axis=1).mean() / truth.norm)
        yaw = abs(truth.angles[0])
        self.bins[0 if yaw < 30 else 1 if yaw < 60 else 2].append(error)
        if np.abs(truth.angles).max() <= POSE_LIMIT:
            self.pose_errors.append(np.abs(aflw_angles(guess.rotation) - truth.angles))

    def summary(self) -> dict[str, float]:
        bins = [100.0 * float(np.mean(b)) if b else float("nan") for b in self.bins]
        pose = np.array(self.pose_errors) if self.pose_errors else np.full((1, 3), np.nan)
        return {"photos": self.photos, "misses": self.misses, "nme": float(np.mean(bins)), "nme_0_30": bins[0],
                "nme_30_60": bins[1], "nme_60_90": bins[2], "pose_mae": float(pose.mean()),
                "yaw_mae": float(pose[:, 0].mean()), "pitch_mae": float(pose[:, 1].mean()),
                "roll_mae": float(pose[:, 2].mean())}


def aflw_rotation(angles: np.ndarray) -> np.ndarray:
    """The rotation of AFLW2000-3D's (yaw, pitch, roll) in degrees: the inverse of aflw_angles."""
    yaw, pitch, roll = np.radians(angles)
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), np.sin(pitch)], [0, -np.sin(pitch), np.cos(pitch)]])
    ry = np.array([[np.cos(yaw), 0, -np.sin(yaw)], [0, 1, 0], [np.sin(yaw), 0, np.cos(yaw)]])
    rz = np.array([[np.cos(roll), np.sin(roll), 0], [-np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    return rx @ ry @ rz
