"""Building blocks shared by FOMM's networks (names follow the authors' ``modules/util.py``
so that state_dict keys match the official checkpoints)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(
    height: int,
    width: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    centred: bool = False,
) -> torch.Tensor:
    """Grid of (x, y) pixel coordinates in [-1, 1].

    ``centred=False`` (FOMM's grid): -1 and 1 are the corner pixels' centres, the identity for
    ``grid_sample(align_corners=True)``. ``centred=True``: -1 and 1 are the outer pixel edges,
    the exact identity for ``grid_sample(align_corners=False)``.

    Shape: (height, width, 2), last dimension ordered (x, y) as ``grid_sample`` expects.
    """
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    if centred:
        x = (2 * x + 1) / width - 1
        y = (2 * y + 1) / height - 1
    else:
        x = 2 * (x / (width - 1)) - 1
        y = 2 * (y / (height - 1)) - 1
    yy = y.view(-1, 1).expand(height, width)
    xx = x.view(1, -1).expand(height, width)
    return torch.stack([xx, yy], dim=2)


def keypoints_to_gaussians(
    values: torch.Tensor, height: int, width: int, variance: float, centred: bool = False
) -> torch.Tensor:
    """Gaussian blobs around keypoints. values: (B, K, 2) -> (B, K, height, width)."""
    grid = make_coordinate_grid(height, width, values.dtype, values.device, centred)
    diff = grid.view(1, 1, height, width, 2) - values.view(*values.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def resize_deformation(
    deformation: torch.Tensor, height: int, width: int, centred: bool
) -> torch.Tensor:
    """A sampling grid (B, h, w, 2) resized to (B, height, width, 2).

    Centred grids are resized as displacements from the identity, so that no motion stays the
    exact identity at every resolution; FOMM's grids are interpolated as they are (the authors'
    behaviour, kept for their checkpoints).
    """
    _, h_old, w_old, _ = deformation.shape
    if (h_old, w_old) == (height, width):
        return deformation
    if not centred:
        return F.interpolate(
            deformation.permute(0, 3, 1, 2), size=(height, width), mode="bilinear"
        ).permute(0, 2, 3, 1)
    identity_old = make_coordinate_grid(h_old, w_old, deformation.dtype, deformation.device, True)
    identity_new = make_coordinate_grid(height, width, deformation.dtype, deformation.device, True)
    displacement = F.interpolate(
        (deformation - identity_old).permute(0, 3, 1, 2), size=(height, width), mode="bilinear"
    )
    return displacement.permute(0, 2, 3, 1) + identity_new


class ResBlock2d(nn.Module):
    """Pre-activation residual block that keeps the resolution."""

    def __init__(
        self, in_features: int, kernel_size: int | tuple[int, int], padding: int | tuple[int, int]
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.norm2 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class SameBlock2d(nn.Module):
    """Conv, BatchNorm and ReLU at constant resolution."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int] = 3,
        padding: int | tuple[int, int] = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class UpBlock2d(SameBlock2d):
    """Nearest-neighbour x2 upsampling, then conv, BatchNorm and ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2))


class DownBlock2d(SameBlock2d):
    """Conv, BatchNorm, ReLU, then 2x2 average pooling."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int] = 3,
        padding: int | tuple[int, int] = 1,
    ) -> None:
        super().__init__(in_features, out_features, kernel_size, padding)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * (2**level))


class HourglassEncoder(nn.Module):
    """Hourglass encoder; returns the input and every level's features."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256
    ) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """Hourglass decoder with skip connections; output has ``out_filters`` channels."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256
    ) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            multiplier = 1 if i == num_blocks - 1 else 2
            in_filters = multiplier * _width(block_expansion, max_features, i + 1)
            blocks.append(UpBlock2d(in_filters, _width(block_expansion, max_features, i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        skips = list(features)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style encoder-decoder."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256
    ) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then subsampling by an integer factor (downscaling without aliasing)."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        coords = torch.arange(kernel_size, dtype=torch.float32)
        mean = (kernel_size - 1) / 2
        profile = torch.exp(-((coords - mean) ** 2) / (2 * sigma**2))
        kernel = profile.view(-1, 1) * profile.view(1, -1)
        kernel = kernel / kernel.sum()
        self.register_buffer(
            "weight", kernel.view(1, 1, kernel_size, kernel_size).repeat(channels, 1, 1, 1)
        )
        self.groups = channels
        self.scale = scale
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight.to(out.dtype), groups=self.groups)
        return out[:, :, :: self.step, :: self.step]
