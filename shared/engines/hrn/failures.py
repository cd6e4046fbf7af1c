"""Which of HRN's exceptions mean "no face in this crop", and which must never be swallowed.

HRN has no "no face" result: it fails. Read from ``modelscope/pipelines/cv/face_reconstruction_pipeline.py``
(modelscope 1.36.3; the file is byte-identical in 1.39.0 and 1.40.2), its three no-face signals are:

- ``forward`` (line 498): ``base_model_output['input_img']`` raises ``KeyError('input_img')`` when ``predict_base``
  returned ``{}`` because its RetinaFace found nothing (lines 462-465);
- ``prepare_data`` (line 188): ``lm_sess.get_landmarks_from_image(input_img)[0]`` raises ``TypeError`` ('NoneType'
  object is not subscriptable) when face-alignment finds no face (face_alignment 1.4.1 ``api.py`` returns ``None``);
  ``prepare_data`` also returns ``None`` itself when ``align_for_lm`` gives scale 0 (lines 181-182), which
  ``read_data`` would subscript (line 146): our ``read_data`` wrapper sees that ``None`` first (``runner.py``);
- ``find_face_contour`` (line 400): ``people_maps[0]`` raises ``IndexError`` when the second detection, on the
  aligned face that ``get_img_for_texture`` -> ``fat_face`` hands it (lines 201, 406), finds nothing.

Each is matched by type, message and the HRN function it was raised in, so the same exception types raised
anywhere else (a bug, a CUDA failure surfacing as TypeError, ...) stay engine errors.
"""
from __future__ import annotations

from types import TracebackType


class HrnNoFace(Exception):
    """HRN found no face in the crop it was given: the face is skipped, not the job failed."""


MAX_CAUSE_CHARS = 300       # CUDA's messages run on for lines; the first says what happened

# (exception type, function HRN raised it in, text its message contains)
NO_FACE_SIGNALS: tuple[tuple[type[BaseException], str, str], ...] = (
    (KeyError, "forward", "'input_img'"),
    (TypeError, "prepare_data", "NoneType"),
    (IndexError, "find_face_contour", "list index out of range"),
)


def no_face_signal(exc: BaseException) -> str | None:
    """``"KeyError in forward"`` etc. when ``exc`` is one of HRN's no-face signals, else ``None``."""
    raised_in = _innermost_function(exc.__traceback__)
    for kind, function, text in NO_FACE_SIGNALS:
        if type(exc) is kind and raised_in == function and text in repr(exc):
            return f"{kind.__name__} in {function}"
    return None


def is_time_limit(exc: BaseException) -> bool:
    """Celery's soft time limit (``celery.exceptions.SoftTimeLimitExceeded`` subclasses billiard's): the task must
    see it, or the hard limit kills the process and the job is delivered again."""
    try:
        from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
    except ImportError:          # no Celery installed: nothing can raise it
        return False
    return isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded))


def describe(exc: BaseException) -> str:
    """``RuntimeError: CUDA out of memory ...``: the cause as a job's error message shows it."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:MAX_CAUSE_CHARS] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _innermost_function(tb: TracebackType | None) -> str | None:
    name = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    return name
