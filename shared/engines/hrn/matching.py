"""Did HRN reconstruct the face we asked for? Its 68 landmarks against the detector's box.

Each crop is 2.2x the target face, and HRN reconstructs the highest-scoring face its own RetinaFace finds in it
(``predict_jsons`` sorts its boxes by score, models/cv/skin_retouching/retinaface/predict_single.py:101-108;
``infer_lmks`` keeps that order and ``predict_base`` takes ``results[0]``, face_reconstruction_pipeline.py:216-229,
468): in a group photo a neighbour can win. So after each call the box of
HRN's projected 68 landmarks must overlap the target box (IoU >= 0.5); on a mismatch the engine asks once more
with everything outside the target box painted over.
"""
from __future__ import annotations

import numpy as np

from face3d.shared.engines.hrn.convert import CropBox, HrnPose, project_to_crop
from face3d.shared.engines.hrn.crops import Box

MATCH_IOU = 0.5
# The fill: ImageNet's mean colour (RGB), which HRN itself pads crops with (pipeline :263-270), reads as "nothing".
FILL_RGB = (124, 117, 104)
# Painted from this far outside the target box (a share of its side): RetinaFace needs the face's own outline.
FILL_MARGIN = 0.1


def landmark_box(raw: dict, pose: HrnPose, crop: CropBox) -> Box:
    """Photo-pixel box of HRN's 68 landmarks (all vertices if the pose has no keypoints)."""
    world = np.asarray(raw["output"]["mesh"]["vertices"], dtype=np.float64)
    keypoints = pose.keypoints if pose.keypoints is not None and len(pose.keypoints) else slice(None)
    xy = crop.to_photo(project_to_crop(world[keypoints], pose.align))
    return (*(float(v) for v in xy.min(axis=0)), *(float(v) for v in xy.max(axis=0)))


def box_iou(a: Box, b: Box) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def is_target(raw: dict, pose: HrnPose, crop: CropBox, target: Box) -> bool:
    return box_iou(landmark_box(raw, pose, crop), target) >= MATCH_IOU


def fill_outside(crop_rgb: np.ndarray, crop: CropBox, target: Box, margin: float = FILL_MARGIN) -> np.ndarray:
    """A copy of the crop with everything outside the (slightly enlarged) target box painted ``FILL_RGB``."""
    x0, y0, x1, y1 = target
    pad = margin * max(x1 - x0, y1 - y0)
    left, top = (np.array([x0 - pad, y0 - pad]) - [crop.x0, crop.y0]) * crop.scale
    right, bottom = (np.array([x1 + pad, y1 + pad]) - [crop.x0, crop.y0]) * crop.scale
    height, width = crop_rgb.shape[:2]
    keep = (slice(max(0, int(np.floor(top))), min(height, int(np.ceil(bottom)))),
            slice(max(0, int(np.floor(left))), min(width, int(np.ceil(right)))))
    filled = np.empty_like(crop_rgb)
    filled[:] = np.array(FILL_RGB, dtype=crop_rgb.dtype)
    filled[keep] = crop_rgb[keep]
    return filled
