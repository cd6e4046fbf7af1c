"""Head pose by similarity Procrustes (Umeyama) between observed landmarks and the mean frontal shape.

Observed landmarks are turned into a camera frame that matches the face frame's axes (x right, y up, z to the
viewer): ``P = (x, -y, -z)`` in photo pixels. Then ``P ~ s * R @ X + t`` with X the mean shape in metres.
Euler angles follow AFLW2000-3D's composition (see euler_degrees) so that head-pose numbers compare with the
benchmarks; +yaw shows the subject's right cheek, +pitch looks up and +roll tilts the head counter-clockwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    scale: float               # pixels per metre
    rotation: np.ndarray       # (3, 3)
    translation: np.ndarray    # (3,) camera-frame pixels
    rms: float                 # residual, in units of the mean shape (metres)


def to_camera_frame(points: np.ndarray) -> np.ndarray:
    """Photo-pixel landmarks (x, y down, z smaller = closer) to a right-handed Y-up, Z-to-viewer frame."""
    return points * np.array([1.0, -1.0, -1.0])


def fit_similarity(model: np.ndarray, observed: np.ndarray, weights: np.ndarray | None = None) -> Similarity:
    """Least-squares s, R, t with observed ~ s * R @ model + t (Umeyama 1991, reflection-safe)."""
    w = np.ones(len(model)) if weights is None else weights
    w = w / w.sum()
    mu_m, mu_o = w @ model, w @ observed
    dm, do = model - mu_m, observed - mu_o
    covariance = (do * w[:, None]).T @ dm
    u, sigma, vt = np.linalg.svd(covariance)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ fix @ vt
    variance = float(w @ (dm ** 2).sum(axis=1))
    scale = float(np.trace(np.diag(sigma) @ fix) / variance)
    translation = mu_o - scale * rotation @ mu_m
    residual = observed - (scale * model @ rotation.T + translation)
    rms = math.sqrt(float(w @ (residual ** 2).sum(axis=1))) / scale
    return Similarity(scale, rotation, translation, rms)


DEPTH_SCALES = np.linspace(1.0, 1.4, 9)


def fit_with_depth_scale(model: np.ndarray, observed: np.ndarray) -> tuple[Similarity, float]:
    """Similarity fit after stretching the observed depth by the factor (1.0-1.4) that best explains x and y.

    The landmark model's z is compressed on turned faces: profiles fit best at 1.1-1.2 (frontal faces at 1.0, where
    the factor changes nothing), which adds 2-3 degrees of yaw. Returns the fit and the factor used.
    """
    best: tuple[float, Similarity, float] | None = None
    for factor in DEPTH_SCALES:
        stretched = observed * np.array([1.0, 1.0, factor])
        fit = fit_similarity(model, stretched)
        residual = stretched[:, :2] - (fit.scale * model @ fit.rotation[:2].T + fit.translation[:2])
        error = float(np.sqrt((residual ** 2).sum(axis=1).mean())) / fit.scale
        if best is None or error < best[0] - 1e-9:
            best = (error, fit, float(factor))
    return best[1], best[2]


def euler_degrees(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees, composed as AFLW2000-3D and 300W-LP do: R = Rx(pitch) Ry(-yaw) Rz(-roll)
    (roll applied first in the face's own frame, pitch last about the camera's x axis), with our signs: + yaw turns to
    the subject's left, + pitch looks up, + roll tilts the head counter-clockwise in the image (see base.py)."""
    yaw = math.asin(max(-1.0, min(1.0, rotation[0, 2])))
    pitch = math.atan2(rotation[1, 2], rotation[2, 2])
    roll = -math.atan2(rotation[0, 1], rotation[0, 0])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = (math.radians(a) for a in (-yaw, pitch, -roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), math.sin(r), 0], [-math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rx @ ry @ rz
