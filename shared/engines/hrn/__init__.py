"""HRN engine (ModelScope, CUDA): adapter that reconstructs every face of a photo, one HRN call per face crop."""
from face3d.shared.engines.hrn.convert import CropBox, HrnPose, convert_hrn_output
from face3d.shared.engines.hrn.engine import Detection, FaceDetector, HrnEngine, LowLightEnhancer

__all__ = ["HrnEngine", "FaceDetector", "Detection", "LowLightEnhancer", "CropBox", "HrnPose", "convert_hrn_output"]
