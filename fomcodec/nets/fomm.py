"""The complete First Order Motion Model: keypoint detector + generator."""

from __future__ import annotations

import dataclasses

from torch import nn

from fomcodec.nets.config import ModelConfig
from fomcodec.nets.generator import OcclusionAwareGenerator
from fomcodec.nets.keypoint_detector import KPDetector


class FOMM(nn.Module):
    """Keypoint detector and occlusion-aware generator, state_dict-compatible with the
    authors' checkpoints (``kp_detector.*`` and ``generator.*``)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.kp_detector = KPDetector(
            num_kp=config.num_kp,
            num_channels=config.num_channels,
            estimate_jacobian=config.estimate_jacobian,
            **dataclasses.asdict(config.kp_detector),
        )
        gen = dataclasses.asdict(config.generator)
        dense = gen.pop("dense_motion")
        self.generator = OcclusionAwareGenerator(
            num_kp=config.num_kp,
            num_channels=config.num_channels,
            estimate_jacobian=config.estimate_jacobian,
            dense_motion_params=dense,
            align_corners=config.align_corners,
            centred_grid=config.centred_grid,
            **gen,
        )
