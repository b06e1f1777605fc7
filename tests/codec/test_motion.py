"""Relative motion normalisation: split into encoder and decoder halves."""

from __future__ import annotations

import torch

from fomcodec.codec.motion import (
    apply_relative_motion,
    movement_scale,
    normalize_keypoints,
    relative_motion,
)
from fomcodec.nets.keypoint_detector import Keypoints


def random_keypoints(batch: int, seed: int) -> Keypoints:
    gen = torch.Generator().manual_seed(seed)
    value = torch.rand(batch, 10, 2, generator=gen) * 1.6 - 0.8
    jacobian = torch.eye(2) + 0.2 * torch.randn(batch, 10, 2, 2, generator=gen)
    return Keypoints(value, jacobian)


def test_encoder_and_decoder_halves_equal_normalize_kp() -> None:
    source, driving = random_keypoints(1, 0), random_keypoints(6, 1)
    motion = relative_motion(driving, driving[0])
    split = apply_relative_motion(motion, source)
    whole = normalize_keypoints(source, driving, driving[0])
    torch.testing.assert_close(split.value, whole.value)
    torch.testing.assert_close(split.jacobian, whole.jacobian)


def test_first_frame_motion_is_identity_and_maps_to_the_source() -> None:
    source, driving = random_keypoints(1, 2), random_keypoints(3, 3)
    motion = relative_motion(driving, driving[0])
    assert motion.value[0].abs().max() == 0
    torch.testing.assert_close(motion.jacobian[0], torch.eye(2).expand(10, 2, 2))
    first = apply_relative_motion(motion[0], source)
    torch.testing.assert_close(first.value, source.value)
    torch.testing.assert_close(first.jacobian, source.jacobian)


def test_movement_scale_is_ratio_of_hull_sizes_and_safe_when_degenerate() -> None:
    driving = random_keypoints(1, 4)
    source = Keypoints(driving.value * 0.5, driving.jacobian)
    assert abs(movement_scale(source, driving) - 0.5) < 1e-6
    collinear = Keypoints(torch.zeros(1, 10, 2), None)
    assert movement_scale(collinear, driving) == 1.0
    assert movement_scale(driving, collinear) == 1.0


def test_absolute_mode_passes_driving_keypoints_through() -> None:
    source, driving = random_keypoints(1, 5), random_keypoints(2, 6)
    out = normalize_keypoints(source, driving, driving[0], use_relative_movement=False)
    assert out is driving
