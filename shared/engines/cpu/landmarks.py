"""468-point face landmarks on a rotated square region of the photo (MediaPipe face_landmark.tflite).

The model runs through a small custom MediaPipe graph that returns the raw landmark tensor *and* the face-presence
score, so every detector box can be verified (the stock face_mesh graph hides the score and re-detects on its own).
We cut the region ourselves (cv2.warpAffine), so the mapping back to photo pixels is one 2x3 matrix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = 192
ROI_SCALE = 1.5            # region side / face box side, as MediaPipe's own detection-to-ROI step
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263

_GRAPH = """
input_stream: "image"
output_stream: "landmarks"
output_stream: "presence"
node {
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image"
  output_stream: "TENSORS:input_tensors"
  options: { [mediapipe.ImageToTensorCalculatorOptions.ext] {
      output_tensor_width: 192 output_tensor_height: 192
      output_tensor_float_range { min: 0.0 max: 1.0 } } }
}
node {
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:input_tensors"
  output_stream: "TENSORS:output_tensors"
  options: { [mediapipe.InferenceCalculatorOptions.ext] {
      model_path: "mediapipe/modules/face_landmark/face_landmark.tflite"
      delegate { xnnpack {} } } }
}
node {
  calculator: "SplitTensorVectorCalculator"
  input_stream: "output_tensors"
  output_stream: "landmark_tensors"
  output_stream: "presence_tensors"
  options: { [mediapipe.SplitVectorCalculatorOptions.ext] {
      ranges: { begin: 0 end: 1 } ranges: { begin: 1 end: 2 } } }
}
node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:landmark_tensors" output_stream: "FLOATS:landmarks" }
node {
  calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:presence_tensors" output_stream: "FLOAT:presence"
  options: { [mediapipe.TensorsToFloatsCalculatorOptions.ext] { activation: SIGMOID } }
}
"""


@dataclass(frozen=True)
class Roi:
    """A rotated square in photo pixels: centre, side, and the image-plane angle of the subject's eye line."""

    cx: float
    cy: float
    size: float
    angle: float             # radians, atan2 of (left eye - right eye) in image coordinates

    def crop_to_photo(self) -> np.ndarray:
        """2x3 affine matrix taking model-input pixels to photo pixels."""
        k = self.size / INPUT_SIZE
        c, s = math.cos(self.angle) * k, math.sin(self.angle) * k
        half = INPUT_SIZE / 2.0
        return np.array([[c, -s, self.cx - c * half + s * half], [s, c, self.cy - s * half - c * half]])


@dataclass
class LandmarkFit:
    points: np.ndarray       # (468, 3) photo pixels; z in pixels, smaller = closer to the camera (MediaPipe)
    presence: float
    roi: Roi


class LandmarkModel:
    def __init__(self) -> None:
        from mediapipe.python.solution_base import SolutionBase

        self._graph = SolutionBase(graph_config=_GRAPH)

    def close(self) -> None:
        self._graph.close()

    def fit(self, rgb: np.ndarray, roi: Roi) -> LandmarkFit:
        matrix = roi.crop_to_photo()
        crop = cv2.warpAffine(rgb, matrix, (INPUT_SIZE, INPUT_SIZE),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        result = self._graph.process({"image": crop})
        raw = np.asarray(result.landmarks, dtype=np.float64).reshape(-1, 3)[:468]
        xy = raw[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        z = raw[:, 2:] * (roi.size / INPUT_SIZE)
        return LandmarkFit(points=np.hstack([xy, z]), presence=float(result.presence), roi=roi)


def roi_from_landmarks(points: np.ndarray) -> Roi:
    """The region MediaPipe itself would use for the next pass: eye-line angle, rotated box, scaled by ROI_SCALE."""
    eye_vector = points[LEFT_EYE_OUTER, :2] - points[RIGHT_EYE_OUTER, :2]
    angle = math.atan2(eye_vector[1], eye_vector[0])
    c, s = math.cos(angle), math.sin(angle)
    local = points[:, :2] @ np.array([[c, -s], [s, c]])          # rotate into the eye-line frame
    lo, hi = local.min(axis=0), local.max(axis=0)
    centre_local = (lo + hi) / 2.0
    centre = np.array([[c, -s], [s, c]]) @ centre_local
    size = float(max(hi - lo)) * ROI_SCALE
    return Roi(float(centre[0]), float(centre[1]), size, angle)


def roi_from_box(box: tuple[float, float, float, float], eyes: np.ndarray | None) -> Roi:
    """Detector box (+ optional right/left eye keypoints) to a landmark region."""
    x0, y0, x1, y1 = box
    angle = 0.0
    if eyes is not None:
        vector = eyes[1] - eyes[0]
        angle = math.atan2(vector[1], vector[0])
    return Roi((x0 + x1) / 2.0, (y0 + y1) / 2.0, max(x1 - x0, y1 - y0) * ROI_SCALE, angle)
