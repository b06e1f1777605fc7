"""Losses for training FOMM without pretrained perceptual networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim

from fomcodec.nets.blocks import AntiAliasInterpolation2d
from fomcodec.nets.keypoint_detector import Keypoints
from fomcodec.training.transforms import RandomTPS


class ImagePyramid(torch.nn.Module):
    """Anti-aliased copies of an image at several scales (FOMM's ``ImagePyramide``)."""

    def __init__(self, scales: list[float], channels: int = 3) -> None:
        super().__init__()
        self.scales = list(scales)
        self.downs = torch.nn.ModuleList(AntiAliasInterpolation2d(channels, s) for s in scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [down(x) for down in self.downs]


def pyramid_l1(
    pyramid: ImagePyramid, prediction: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Mean L1 distance summed over the pyramid's scales."""
    return sum(F.l1_loss(p, t) for p, t in zip(pyramid(prediction), pyramid(target), strict=True))


def ms_ssim_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM (images in [0, 1], at least 161 pixels a side)."""
    return 1 - ms_ssim(prediction.float(), target.float(), data_range=1.0, size_average=True)


def equivariance_losses(
    kp_detector: torch.nn.Module, driving: torch.Tensor, kp_driving: Keypoints, transform: RandomTPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """FOMM's equivariance of keypoint values and Jacobians under a random warp."""
    transformed = transform.transform_frame(driving)
    kp_transformed = kp_detector(transformed)
    value = (kp_driving.value - transform.warp_coordinates(kp_transformed.value)).abs().mean()
    if kp_driving.jacobian is None or kp_transformed.jacobian is None:
        return value, value.new_zeros(())
    jacobian_transformed = torch.matmul(
        transform.jacobian(kp_transformed.value), kp_transformed.jacobian
    )
    product = torch.matmul(torch.inverse(kp_driving.jacobian), jacobian_transformed)
    eye = torch.eye(2, dtype=product.dtype, device=product.device).view(1, 1, 2, 2)
    return value, (eye - product).abs().mean()
