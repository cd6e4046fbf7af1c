"""CPU reconstruction engine ("cpu"): MediaPipe BlazeFace + face-landmark models, our own mesh, pose and texture.

Pipeline: decode -> (low light: CLAHE + gamma) -> detect on a <= 1280 px copy (whole image padded + overlapping
tiles, both BlazeFace models) -> verify every box with the 468-point landmark model (presence score, second pass on
the landmark-derived region, shape residual against the mean face; boxes under 24 px by detector agreement instead)
-> similarity Procrustes pose (observed depth stretched 1.0-1.4x to best fit x, y) -> Loop-subdivided
mesh in the face frame -> texture atlas sampled from the full-resolution photo; texels hidden by nearer geometry (depth
buffer), facing away or off the photo take their mirror texel where that one saw skin, or a push-pull fill, blended by
feathered weights; non-skin samples near the face's edges are not trusted, and what covers the face is never
mirrored (texture.py, skin.py, occlusion.py).
``CpuEngine.detect_faces`` stops after verification (boxes, scores, 2D landmarks) for engines that bring their own
reconstruction.
"""
from face3d.shared.engines.cpu.engine import CpuEngine, DetectedFace

__all__ = ["CpuEngine", "DetectedFace"]
