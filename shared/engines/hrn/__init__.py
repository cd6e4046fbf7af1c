"""HRN engine (ModelScope, CUDA): adapter that reconstructs every face of a photo, one HRN call per face crop."""
from shared.engines.hrn.convert import CropBox, HrnPose, convert_hrn_output
from shared.engines.hrn.engine import Detection, FaceDetector, HrnEngine, LowLightEnhancer

__all__ = ["HrnEngine", "FaceDetector", "Detection", "LowLightEnhancer", "CropBox", "HrnPose", "convert_hrn_output"]
