"""Face candidates from MediaPipe's BlazeFace detectors, run on the whole image and on overlapping tiles.

Candidates are deliberately generous (tiles, both models, a mirrored pass); the engine verifies every one with the
landmark model, which removes the cat / ball / texture boxes that tiling brings.

Measured on ../shared/faces (verified faces / faces by eye): whole image only 3/6 on c_group_t1_six; + tiles 6/6,
7/7 night bar, 17/~27 crowd, 4/4 tiny-faces PNG (10-14 px faces; the engine verifies boxes under 24 px by
detector agreement, ``Candidate.support``, since the landmark presence score is noise at that size). Finer tiles
(4x4 or 5x5 at 0.3-0.35 of the short side) add candidates on the crowd but no verified face: its missing faces are
hidden by hands and caps and fail the landmark check, not the detector. A 15 % grey border on the whole-image pass took
c_group_selfie from 4 to 6 of 7 (edge-cut faces); a reflected border invents mirror faces, so it is constant grey.
Profiles (b_yaw_left_face, b_yaw_dim_room, cameraman, the 3rd emma panel) are all found by the first pass; the
engine's fallback (mirrored image with both models + a 2.2x looser landmark crop) runs only when nothing verified,
costs ~+10 ms, and recovers nothing extra on this set. Landmark-model yaw under-reads strong profiles (about 51-56
degrees for faces judged 60-75 by eye, after pose.fit_with_depth_scale), still above the 45-degree extreme_yaw line.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

import cv2
import numpy as np

from face3d.shared.threads import job_threads, parallel_imap

# (model, grid, tile side / short side). Short-range 3x3 half-size tiles find the small faces. A second tiling, the
# full-range model on a 2x2 grid of 0.6 tiles, once added the tiniest faces (12 px in a 128 px image); since FaceBoxes
# joined the finder either tiling alone finds every face the two find together on ../shared/faces (crowd 20, t1_six 6,
# tiny 4/4, night bar 7; without tiles the crowd drops to 17) and none on the f_* photos, so only the cheaper one
# runs (4 full-range passes cost ~25 ms a photo).
TILINGS = (("short", 3, 0.5),)
PAD_FRACTION = 0.15     # grey border on the whole-image pass: faces cut by the frame edge are found far more often


@dataclass
class Candidate:
    box: tuple[float, float, float, float]     # x0, y0, x1, y1, pixels of the image given to detect()
    score: float
    keypoints: np.ndarray                      # (6, 2): right eye, left eye, nose, mouth, right ear, left ear
    support: int = 1                           # raw detections (views x models) merged into this one by suppress()

    @property
    def side(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def scaled(self, factor: float) -> "Candidate":
        return Candidate(tuple(v * factor for v in self.box), self.score, self.keypoints * factor, self.support)


View = tuple[str, np.ndarray, Callable[[Candidate], Candidate]]   # (model, image, candidate -> photo pixels)
MODEL_COST = {"full": 3, "short": 1}    # relative time of one pass (measured ~6.3 vs ~2.3 ms on 2 cores)
MAX_LANES = 4


class Detector:
    """BlazeFace's two models. Views run in lanes on the job's threads, each lane with its own pair of graphs (a
    graph serves one thread at a time; they release the GIL while they run)."""

    def __init__(self, min_score: float = 0.4) -> None:
        from mediapipe.python.solutions.face_detection import FaceDetection

        self._lanes = [{"short": FaceDetection(model_selection=0, min_detection_confidence=min_score),
                        "full": FaceDetection(model_selection=1, min_detection_confidence=min_score)}
                       for _ in range(min(job_threads(), MAX_LANES))]

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    def close(self) -> None:
        for graphs in self._lanes:
            for model in graphs.values():
                model.close()

    def run(self, rgb: np.ndarray, model: str, lane: int = 0) -> list[Candidate]:
        height, width = rgb.shape[:2]
        result = self._lanes[lane][model].process(rgb)
        found = []
        for detection in result.detections or ():
            data = detection.location_data
            rel = data.relative_bounding_box
            box = (rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width, (rel.ymin + rel.height) * height)
            keypoints = np.array([[k.x * width, k.y * height] for k in data.relative_keypoints])
            found.append(Candidate(box, float(detection.score[0]), keypoints))
        return found

    def detect(self, rgb: np.ndarray, tiles: bool = True, mirrored: bool = False) -> list[Candidate]:
        """Every view's candidates, photo pixels, in view order."""
        views = _views(rgb, tiles, mirrored)
        lanes = balanced(views, min(job_threads(), len(self._lanes)))
        found = parallel_imap(lambda lane: self._run_lane(lane, [views[i] for i in lanes[lane]]), range(len(lanes)))
        by_view = dict(zip((i for lane in lanes for i in lane), (c for lane in found for c in lane)))
        return [c for i in range(len(views)) for c in by_view.get(i, [])]

    def _run_lane(self, lane: int, views: list[View]) -> list[list[Candidate]]:
        return [[to_photo(c) for c in self.run(image, model, lane)] for model, image, to_photo in views]


def balanced(views: list[View], lanes: int) -> list[list[int]]:
    """View indices per lane, longest first onto the least loaded lane (no empty lane)."""
    loads = [0] * max(1, min(lanes, len(views)))
    assigned: list[list[int]] = [[] for _ in loads]
    for index in sorted(range(len(views)), key=lambda i: -MODEL_COST[views[i][0]]):
        lane = loads.index(min(loads))
        assigned[lane].append(index)
        loads[lane] += MODEL_COST[views[index][0]]
    return assigned


def _views(rgb: np.ndarray, tiles: bool, mirrored: bool) -> list[View]:
    """(model, image, candidate -> photo pixels) of each pass: the padded whole image with both models, the tiles,
    and with ``mirrored`` the flipped image with both models."""
    pad = int(PAD_FRACTION * max(rgb.shape[:2]))
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    views = [(model, padded, partial(_shift, dx=-pad, dy=-pad)) for model in ("full", "short")]
    if tiles:
        for model, grid, fraction in TILINGS:
            views += [(model, tile, partial(_shift, dx=x0, dy=y0)) for x0, y0, tile in tile_views(rgb, grid, fraction)]
    if mirrored:
        flipped = cv2.flip(rgb, 1)
        views += [(model, flipped, partial(_unmirror, width=rgb.shape[1])) for model in ("full", "short")]
    return views


def tile_views(rgb: np.ndarray, grid: int = 3, fraction: float = 0.5):
    """Overlapping square tiles (side = fraction of the short side) on a grid, so faces are larger in them."""
    height, width = rgb.shape[:2]
    side = int(min(height, width) * fraction)
    if side < 48:
        return
    for y0 in np.linspace(0, height - side, grid).astype(int):
        for x0 in np.linspace(0, width - side, max(grid, round(grid * width / height))).astype(int):
            yield int(x0), int(y0), np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side])


def _shift(c: Candidate, dx: float, dy: float) -> Candidate:
    x0, y0, x1, y1 = c.box
    return Candidate((x0 + dx, y0 + dy, x1 + dx, y1 + dy), c.score, c.keypoints + [dx, dy], c.support)


def _unmirror(c: Candidate, width: int) -> Candidate:
    x0, y0, x1, y1 = c.box
    keypoints = c.keypoints.copy()
    keypoints[:, 0] = width - keypoints[:, 0]
    keypoints = keypoints[[1, 0, 2, 3, 5, 4]]          # the mirror swaps the subject's left and right
    return Candidate((width - x1, y0, width - x0, y1), c.score, keypoints, c.support)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def suppress(candidates: list[Candidate], threshold: float = 0.3) -> list[Candidate]:
    """Greedy non-maximum suppression, best score first; each kept box counts the boxes it absorbed (support)."""
    kept: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: -c.score):
        overlapping = [i for i, k in enumerate(kept) if iou(c.box, k.box) >= threshold]
        if overlapping:
            first = kept[overlapping[0]]
            kept[overlapping[0]] = replace(first, support=first.support + c.support)
        else:
            kept.append(c)
    return kept
