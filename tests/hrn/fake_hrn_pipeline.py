"""A stand-in for ModelScope's FaceReconstructionPipeline that fails where, and as, the real one does.

Method names and the failing statements are HRN's (modelscope 1.36.3 pipelines/cv/face_reconstruction_pipeline.py,
see shared/engines/hrn/failures.py); everything else is reduced to what reaches those statements.
"""
from __future__ import annotations

import numpy as np


class FakeLandmarker:
    """face_alignment.FaceAlignment: ``get_landmarks_from_image`` returns None when it finds no face."""

    def __init__(self, finds_face: bool) -> None:
        self.finds_face = finds_face

    def get_landmarks_from_image(self, image):
        return [np.zeros((68, 3))] if self.finds_face else None


class FakeHrnPipeline:
    def __init__(self, failure: str) -> None:
        self.failure = failure
        self.lm_sess = FakeLandmarker(finds_face=failure != "face_alignment")
        self.model = None

    def __call__(self, image):
        return self.forward({"img": np.asarray(image)})

    def read_data(self, img, lm, lm3d_std, to_tensor=True, image_res=1024):
        lm[:, -1] = img.shape[0] - 1 - lm[:, -1]          # :146, which a None landmark result would break
        return None

    def forward(self, input):
        if self.failure == "cuda_oom":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.77 GiB total capacity)\n"
                               "If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF")
        base_model_output = self.predict_base(input["img"])
        self.get_img_for_texture(base_model_output['input_img'])      # :497-498
        return {}

    def predict_base(self, img):
        if self.failure == "retinaface":
            return {}                                                  # :464-465
        if self.failure == "key_error_elsewhere":
            raise KeyError("input_img")                                # same exception, not HRN's no-face spot
        landmarks = self.prepare_data(img, self.lm_sess)
        self.read_data(img, landmarks, None)
        return {"input_img": img}

    def prepare_data(self, img, lm_sess, five_points=None):
        if self.failure == "scale_zero":
            return None                                                # :181-182
        landmark = lm_sess.get_landmarks_from_image(img)[0]           # :188
        return landmark[:, :2]

    def get_img_for_texture(self, input_img):
        if self.failure == "type_error_elsewhere":
            texture = None
            return texture[0]                                          # a TypeError HRN's no-face never raises here
        return self.fat_face(input_img)

    def fat_face(self, img, degree=0.1):
        contour_maps, boxes = self.find_face_contour(img)
        return contour_maps

    def find_face_contour(self, image):
        people_maps = [] if self.failure == "second_detection" else [[image]]
        return people_maps[0], []                                      # :400
