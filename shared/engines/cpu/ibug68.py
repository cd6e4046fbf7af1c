"""The 68-point iBUG / dlib landmark order: its left/right mirror."""
from __future__ import annotations

import numpy as np

# index of each point's mirror partner (jaw, brows, nose, eyes, mouth)
FLIP_68 = np.array(list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30, 35, 34, 33, 32, 31]
                   + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
                   + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])
