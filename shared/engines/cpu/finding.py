"""Which boxes are faces: MediaPipe's detectors propose, its landmark model verifies, FaceBoxes adds profiles.

Candidates come from BlazeFace on the whole photo and on tiles (detect.py). Each is verified by the 468-point
landmark model (presence score on two passes, shape residual against the mean face); boxes under 24 px by detector
agreement instead. That model rejects most faces turned past ~60 degrees, so FaceBoxes (robust.py), trained with
profiles, runs once on the photo: a box no verified face covers becomes a face when FaceBoxes is sure of it, or fairly
sure and a BlazeFace box agrees. Measured on the AFLW2000-3D development split and ../shared/faces: true profiles
MediaPipe rejected scored >= 0.84 with BlazeFace support >= 0.7; ears, hands and a basketball next to a face <= 0.84
without support or <= 0.70 with it; no FaceBoxes box on the no-face photos reaches 0.31.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from face3d.shared.engines.cpu.detect import Candidate, Detector, iou, suppress
from face3d.shared.engines.cpu.landmarks import LandmarkFit, LandmarkModel, Roi, roi_from_box, roi_from_landmarks
from face3d.shared.engines.cpu.mesh import mediapipe_shape
from face3d.shared.engines.cpu.robust import RobustModel
from face3d.shared.threads import in_background

DETECT_MAX_SIDE = 1280       # detection runs on a copy no larger than this; landmarks and texture use full resolution
TINY_FACE_PX = 24            # below this (detector box, photo pixels) the landmark presence score is noise
TINY_MIN_SUPPORT = 2         # tiny faces are verified by detector agreement instead: boxes from >= 2 views ...
TINY_MIN_SCORE = 0.75        # ... the best of them at least this confident
MIN_DETECT_PX = 8            # BlazeFace boxes smaller than this are hands, badges and buttons
MIN_PRESENCE = 0.5           # landmark model's face-presence score, on both passes
MAX_SHAPE_RMS = 0.009        # metres (real faces <= 7.6 mm on ../shared/faces): residual of the landmarks against the mean face after similarity alignment
LOOSE_ROI = 2.2              # retry crop scale (profiles: the detector box covers only half the head)
SURE_PROFILE = 0.9           # FaceBoxes score that makes a face on its own ...
AGREED_PROFILE = 0.8         # ... or this with a BlazeFace box of at least AGREEING_SCORE over it
AGREEING_SCORE = 0.6
NEIGHBOURHOOD = 1.3          # a box centred within this many face boxes of a verified face is an ear or a hand of it


@dataclass
class Found:
    """A face: its box (photo pixels), detector score, and MediaPipe's verified fit when that model accepted it."""

    box: tuple[float, float, float, float]
    score: float
    fit: LandmarkFit | None = None
    detector_side: float = 0.0

    @property
    def side(self) -> float:
        """Both boxes under-read a 12 px face by a pixel or two; the larger is the fairer size for min_face_px."""
        return max(side_of(self.box), self.detector_side)


class FaceFinder:
    def __init__(self, detector: Detector, landmarks: LandmarkModel, robust: RobustModel) -> None:
        self._detector, self._landmarks, self._robust = detector, landmarks, robust

    def find(self, rgb: np.ndarray) -> list[Found]:
        """Every face MediaPipe verifies, then the profiles only FaceBoxes and BlazeFace agree on."""
        robust_boxes = in_background(lambda: self._robust.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
        candidates = self.candidates(rgb, mirrored=False)
        found = self._verify(rgb, candidates)
        if not found:                        # profiles and hard cases: mirrored pass and looser crops
            mirrored = self.candidates(rgb, mirrored=True)
            found = self._verify(rgb, mirrored, loose=True)
            candidates += mirrored
        return found + self._profiles(robust_boxes(), candidates, found)

    def candidates(self, rgb: np.ndarray, mirrored: bool) -> list[Candidate]:
        scale = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
        small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        found = self._detector.detect(small, tiles=not mirrored, mirrored=mirrored)
        found = suppress([c.scaled(1.0 / scale) for c in found], threshold=0.5)
        return [c for c in found if c.side >= MIN_DETECT_PX]

    @staticmethod
    def _profiles(robust_boxes: list[tuple[tuple[float, ...], float]], candidates: list[Candidate],
                  found: list[Found]) -> list[Found]:
        added: list[Found] = []
        for box, score in robust_boxes:
            if any(near(box, f.box) for f in found + added):
                continue
            support = max((c.score for c in candidates if iou(c.box, box) > 0.2), default=0.0)
            if score >= SURE_PROFILE or (score >= AGREED_PROFILE and support >= AGREEING_SCORE):
                added.append(Found(box, score, None, side_of(box)))
        return added

    def _verify(self, rgb: np.ndarray, candidates: list[Candidate], loose: bool = False) -> list[Found]:
        found: list[Found] = []
        for candidate in candidates:
            if any(_covers(f.box, candidate.box) for f in found):
                continue
            tiny = candidate.side < TINY_FACE_PX
            fit = self._tiny_fit(rgb, candidate) if tiny else self._landmark_fit(rgb, candidate, loose)
            if fit is None:
                continue
            box = landmark_box(fit.points)
            if any(iou(box, f.box) > 0.4 or _inside_fraction(box, f.box) > 0.6 for f in found):
                continue
            if mediapipe_shape(fit.points)[0].rms > MAX_SHAPE_RMS:
                continue
            found.append(Found(box, candidate.score, fit, candidate.side))
        return found

    def _landmark_fit(self, rgb: np.ndarray, candidate: Candidate, loose: bool) -> LandmarkFit | None:
        roi = roi_from_box(candidate.box, candidate.keypoints[:2])
        rois = [roi] + ([Roi(roi.cx, roi.cy, roi.size * LOOSE_ROI / 1.5, roi.angle)] if loose else [])
        for first_roi in rois:
            first = self._landmarks.fit(rgb, first_roi)
            if first.presence < MIN_PRESENCE:
                continue
            second = self._landmarks.fit(rgb, roi_from_landmarks(first.points))
            if second.presence >= MIN_PRESENCE:
                return second
        return None

    def _tiny_fit(self, rgb: np.ndarray, candidate: Candidate) -> LandmarkFit | None:
        """A 10-20 px face: trust the detectors' agreement; keep the most confident of four landmark fits."""
        if candidate.support < TINY_MIN_SUPPORT or candidate.score < TINY_MIN_SCORE:
            return None
        roi = roi_from_box(candidate.box, candidate.keypoints[:2])
        fits = []
        for factor in (1.0, 1.2):
            first = self._landmarks.fit(rgb, Roi(roi.cx, roi.cy, roi.size * factor, roi.angle))
            fits += [first, self._landmarks.fit(rgb, roi_from_landmarks(first.points))]
        return max(fits, key=lambda fit: fit.presence)


def side_of(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], box[3] - box[1])


def landmark_box(points: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def near(box: tuple[float, ...], face_box: tuple[float, ...]) -> bool:
    """``box`` is (part of) the face in ``face_box``: they overlap, or its centre lies in the face's neighbourhood."""
    if iou(box, face_box) > 0.3:
        return True
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    grow_x = (face_box[2] - face_box[0]) * (NEIGHBOURHOOD - 1) / 2
    grow_y = (face_box[3] - face_box[1]) * (NEIGHBOURHOOD - 1) / 2
    return face_box[0] - grow_x <= cx <= face_box[2] + grow_x and face_box[1] - grow_y <= cy <= face_box[3] + grow_y


def _covers(face_box: tuple[float, ...], box: tuple[float, ...]) -> bool:
    """A candidate box whose centre lies inside an accepted face is that face again (skip the landmark call)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    inside = face_box[0] <= cx <= face_box[2] and face_box[1] <= cy <= face_box[3]
    return inside and 0.5 < side_of(box) / max(side_of(face_box), 1e-6) < 2.0


def _inside_fraction(box: tuple[float, ...], other: tuple[float, ...]) -> float:
    """How much of ``box`` lies inside ``other`` (a hand or an eye on a face is not a second face)."""
    ix = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    iy = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return ix * iy / area if area > 0 else 1.0
