"""Motion normalisation as in the FOMM demo: driving motion relative to the first driving frame,
transferred onto the source image's keypoints.

The encoder sends the *relative* motion (:func:`relative_motion`); the decoder, which computes
the source keypoints itself on the decoded source image, applies it (:func:`apply_relative_motion`).
Together they equal the demo's ``normalize_kp`` (:func:`normalize_keypoints`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError

from fomcodec.nets.keypoint_detector import Keypoints


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints) -> float:
    """sqrt(area of source keypoints' convex hull / area of initial driving keypoints' hull).

    Returns 1.0 when either hull is degenerate (collinear or coincident keypoints).
    """
    try:
        source_area = ConvexHull(kp_source.value[0].detach().double().cpu().numpy()).volume
        driving_area = ConvexHull(
            kp_driving_initial.value[0].detach().double().cpu().numpy()
        ).volume
    except (QhullError, ValueError):
        return 1.0
    if not driving_area > 0 or not np.isfinite(source_area):
        return 1.0
    return float(np.sqrt(source_area) / np.sqrt(driving_area))


def relative_motion(kp_driving: Keypoints, kp_driving_initial: Keypoints) -> Keypoints:
    """Movement since the first driving frame: value difference and J_d @ inv(J_initial)."""
    value = kp_driving.value - kp_driving_initial.value
    if kp_driving.jacobian is None or kp_driving_initial.jacobian is None:
        return Keypoints(value)
    jacobian = torch.matmul(kp_driving.jacobian, torch.inverse(kp_driving_initial.jacobian))
    return Keypoints(value, jacobian)


def apply_relative_motion(
    motion: Keypoints, kp_source: Keypoints, scale: float = 1.0, relative_jacobian: bool = True
) -> Keypoints:
    """Driving keypoints for the generator: source keypoints moved by ``motion``."""
    value = motion.value * scale + kp_source.value
    if not relative_jacobian or motion.jacobian is None or kp_source.jacobian is None:
        return Keypoints(value, motion.jacobian)
    return Keypoints(value, torch.matmul(motion.jacobian, kp_source.jacobian))


def normalize_keypoints(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    adapt_movement_scale: bool = False,
    use_relative_movement: bool = True,
    use_relative_jacobian: bool = True,
) -> Keypoints:
    """The FOMM demo's ``normalize_kp``: absolute keypoints unchanged, or relative motion
    (optionally rescaled by :func:`movement_scale`) applied to the source keypoints."""
    if not use_relative_movement:
        return kp_driving
    scale = movement_scale(kp_source, kp_driving_initial) if adapt_movement_scale else 1.0
    motion = relative_motion(kp_driving, kp_driving_initial)
    if not use_relative_jacobian:
        motion = Keypoints(motion.value, kp_driving.jacobian)
    return apply_relative_motion(motion, kp_source, scale, use_relative_jacobian)
