"""Frames between numpy and torch, and PSNR on tensors: the conversions every stage shares.

Shape:
    frames: (B, H, W, 3) uint8 RGB (numpy); images: (B, 3, H, W) float in [0, 1] (torch).
"""

from __future__ import annotations

import numpy as np
import torch

PSNR_CAP = 99.0


def frames_to_images(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1] on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return tensor.permute(0, 3, 1, 2).float() / 255


def images_to_frames(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float (clipped to [0, 1]) -> (B, H, W, 3) uint8, rounded to nearest."""
    scaled = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(scaled.permute(0, 2, 3, 1).cpu().numpy())


def image_psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (B,) in dB of (B, C, H, W) images in [0, 1]; identical images score
    :data:`PSNR_CAP`."""
    mse = ((prediction.float() - target.float()) ** 2).flatten(1).mean(1)
    return torch.where(
        mse > 0, -10 * torch.log10(mse.clamp_min(1e-12)), torch.full_like(mse, PSNR_CAP)
    )
