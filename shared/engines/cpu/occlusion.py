"""Whether something covers the face (a mask, a hand over an eye, ...), and roughly which part of it.

Two cues, each physical and each checked on every ../shared/faces photo and the AFLW2000-3D development split
(tools/occlusion_cues.py prints them per face; README, Textures):

- **The mouth is covered** when the lips region shows neither the lips' contrast with the skin nor the dark line
  between them: nothing in it darker than MOUTH_DARK below the median of the skin ring around it, and its 10-90 %
  luma spread under MOUTH_SPREAD of that median. A surgical mask measures 0.04 / 0.11; every other mouth of at least
  40 px measured a dark contrast of 0.08 or more (a smiling 41 px face in a dark bar photo; on the development split
  0.14 or more). A mouth behind two hands in the crowd photo measures 0.19 / 0.19 and is missed.
- **An eye is covered** when the two landmark models disagree on it EYE_DISAGREEMENT times more than on the other
  eye (MediaPipe and 3DDFA_V2 each guess an eye they cannot see, and guess differently) *and* that eye shows at most
  EYE_CONTRAST of the other's dark contrast (no dark iris or lashes where fingers or hair are). The hand photo
  measures 4.6 / 0.57; on the development split 3 of 331 faces with both eyes seen pass both (two with hair or a
  deep shadow over one eye, one with closed eyes and a cigarette), none of the other ../shared/faces faces.

Faces under MIN_FACE_PX are not judged (12 px faces have no measurable mouth). The covered region starts from the
covered feature and grows over the texels that look like the occluder (mouth: the colour of what covers the lips)
or unlike the face's other side (eye: a hand or hair is not mirror-symmetric), and its surface share is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from face3d.shared.engines.cpu.regions import regions
from face3d.shared.engines.cpu.skin import features

if TYPE_CHECKING:
    from face3d.shared.engines.cpu.texture import View

MIN_FACE_PX = 40
SEEN = 0.5                   # texels the photo sees at least this well are measured
MIN_SEEN_SHARE = 0.6         # a feature is measured only when this much of it (and of its ring) is seen
MOUTH_DARK = 0.06            # lips: (ring median - 5th percentile inside) / ring median below this ...
MOUTH_SPREAD = 0.2           # ... and (90th - 10th percentile inside) / ring median below this: covered
EYE_DISAGREEMENT = 3.0       # one eye's model disagreement at least this many times the other eye's ...
EYE_CONTRAST = 0.7           # ... and its dark contrast at most this share of the other eye's: covered
LIKE_OCCLUDER = 3.0          # robust sigmas: a texel this close to the occluder's colour belongs to it
UNLIKE_MIRROR = 0.25         # log-colour distance to the mirror texel above which a texel differs from its side
EYE_REACH_MM = 25.0          # a covered eye's region reaches at most this far from the eye


@dataclass(frozen=True)
class Occlusion:
    share: float                 # share of the face's surface found covered (0: nothing found)
    mask: np.ndarray             # (C, C) float32 0..1 texels covered by something
    features: tuple[str, ...]    # the covered features ("lips", "eye_right", "eye_left")
    cues: dict[str, float]       # the measured cues (tools and benchmarks read them; see cue_values)


def nothing(size: int, cues: dict[str, float] | None = None) -> Occlusion:
    return Occlusion(0.0, np.zeros((size, size), np.float32), (), cues or {})


def _luma(colours: np.ndarray) -> np.ndarray:
    return colours.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def feature_contrast(colours: np.ndarray, seen: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per feature seen well enough: (dark contrast, luma spread), both relative to the skin ring's median."""
    region = regions(colours.shape[0])
    luma = _luma(colours)
    well = seen >= SEEN
    found = {}
    for name in ("eye_right", "eye_left", "lips"):
        hull, ring = region.features[name] & well, region.rings[name] & well
        if hull.sum() < MIN_SEEN_SHARE * region.features[name].sum() or \
                ring.sum() < MIN_SEEN_SHARE * region.rings[name].sum():
            continue
        around = max(float(np.median(luma[ring])), 1.0)
        low, high, darkest = np.percentile(luma[hull], [10, 90, 5])
        found[name] = ((around - darkest) / around, (high - low) / around)
    return found


def cue_values(contrast: dict[str, tuple[float, float]], disagreement: tuple[float, float] | None) -> dict[str, float]:
    """mouth_dark, mouth_spread; eye_disagreement (the worse eye's over the other's) and eye_contrast (the worse
    eye's dark contrast over the other's), each where it can be measured."""
    cues = {}
    if "lips" in contrast:
        cues["mouth_dark"], cues["mouth_spread"] = contrast["lips"]
    if disagreement is not None and "eye_right" in contrast and "eye_left" in contrast:
        worse, other = ("eye_right", "eye_left") if disagreement[0] >= disagreement[1] else ("eye_left", "eye_right")
        cues["eye_disagreement"] = max(disagreement) / max(min(disagreement), 1e-3)
        cues["eye_contrast"] = contrast[worse][0] / max(contrast[other][0], 1e-3)
        cues["worse_eye_is_left"] = float(worse == "eye_left")
    return cues


def covered_features(cues: dict[str, float]) -> tuple[str, ...]:
    covered = []
    if cues.get("mouth_dark", 1.0) < MOUTH_DARK and cues.get("mouth_spread", 1.0) < MOUTH_SPREAD:
        covered.append("lips")
    if cues.get("eye_disagreement", 0.0) >= EYE_DISAGREEMENT and cues.get("eye_contrast", 1.0) <= EYE_CONTRAST:
        covered.append("eye_left" if cues["worse_eye_is_left"] else "eye_right")
    return tuple(covered)


def find_occlusion(view: View, skin: np.ndarray, disagreement: tuple[float, float] | None = None) -> Occlusion:
    """What covers the face in ``view``; ``disagreement``: the two landmark models' per-eye disagreement (right,
    left), when both saw the face."""
    size = skin.shape[0]
    if view.face_px < MIN_FACE_PX:
        return nothing(size)
    cues = cue_values(feature_contrast(view.colours, view.seen), disagreement)
    covered = covered_features(cues)
    if not covered:
        return nothing(size, cues)
    well = (view.seen >= SEEN) & view.covered
    mask = np.zeros((size, size), bool)
    for name in covered:
        mask |= _region(name, view.colours, well)
    share = float(view.area[mask].sum() / max(view.area[view.covered].sum(), 1e-9))
    return Occlusion(share, cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0), covered, cues)


def _region(name: str, colours: np.ndarray, well: np.ndarray) -> np.ndarray:
    """The seen texels connected to the covered feature that look like its occluder."""
    region = regions(colours.shape[0])
    seed = region.features[name] & well
    values = features(colours)
    if name == "lips":
        inside = values[seed]
        centre = np.median(inside, axis=0)
        spread = np.maximum(1.4826 * np.median(np.abs(inside - centre), axis=0), (0.02, 0.02, 0.05))
        alike = np.sqrt((((values - centre) / spread) ** 2).sum(axis=-1)) < LIKE_OCCLUDER
    else:
        mirrored = values[:, ::-1]
        alike = np.linalg.norm(values - mirrored, axis=-1) > UNLIKE_MIRROR
        reach = round(EYE_REACH_MM * region.texels_per_mm)
        near = cv2.dilate(region.features[name].astype(np.uint8),
                          cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
        alike &= near.astype(bool)
    candidates = ((alike & well) | seed).astype(np.uint8)
    count, labels = cv2.connectedComponents(candidates, connectivity=8)
    touching = np.unique(labels[seed])
    return np.isin(labels, touching[touching > 0]) | seed | region.rings[name] & well


def eye_disagreement(mediapipe_68: np.ndarray | None, robust_68: np.ndarray) -> tuple[float, float] | None:
    """Mean distance between the two models' points of each eye (right, left), over the face's size."""
    if mediapipe_68 is None:
        return None
    robust = np.asarray(robust_68)[:, :2]
    size = float(np.sqrt(np.prod(np.ptp(robust, axis=0))))
    distance = np.linalg.norm(np.asarray(mediapipe_68)[:, :2] - robust, axis=1) / max(size, 1e-6)
    return float(distance[36:42].mean()), float(distance[42:48].mean())
