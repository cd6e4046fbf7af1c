"""Keep MediaPipe's native start-up chatter off stderr without hiding anything else.

TFLite and absl print INFO/WARNING lines ("Created TensorFlow Lite XNNPACK delegate", "All log messages before
absl::InitializeLog()", "Feedback manager requires ...") from C++ straight to file descriptor 2 whenever a graph
starts; GLOG_minloglevel / TF_CPP_MIN_LOG_LEVEL do not reach them (measured with mediapipe 0.10.21). So model
loading runs with fd 2 pointed at a temporary file, and afterwards every line that is not one of those known
messages is written to stderr again: real errors still show, only later.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite XNNPACK delegate"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|W\d{4} [\d:.]+ +\d+ inference_feedback_manager\.cc:\d+\] Feedback manager requires)"
)


def is_noise(line: str) -> bool:
    return bool(NOISE.match(line))


@contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Capture fd 2 for the block; replay what it caught, less the known start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not is_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
