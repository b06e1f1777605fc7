"""FOMM's multi-scale patch discriminator (for the adversarial + feature-matching losses).

Names follow the authors' ``modules/discriminator.py``, so the ``discriminator.*`` entries of
an official checkpoint (spectral norm: ``weight_orig``/``weight_u``/``weight_v``) load into it.
Used in training only; the codec never runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DiscriminatorConfig:
    """FOMM's ``discriminator_params`` (vox-256: scales [1], 32, 4 blocks, 512, sn)."""

    scales: list[float] = field(default_factory=lambda: [1.0])
    block_expansion: int = 32
    num_blocks: int = 4
    max_features: int = 512
    sn: bool = True


def _maybe_spectral(conv: nn.Conv2d, sn: bool) -> nn.Module:
    return nn.utils.spectral_norm(conv) if sn else conv


class DiscriminatorBlock(nn.Module):
    """Conv 4x4 (no padding), optional instance norm, leaky ReLU 0.2, optional 2x2 pooling."""

    def __init__(
        self, in_features: int, out_features: int, norm: bool, pool: bool, sn: bool
    ) -> None:
        super().__init__()
        self.conv = _maybe_spectral(nn.Conv2d(in_features, out_features, kernel_size=4), sn)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, 2) if self.pool else out


class Discriminator(nn.Module):
    """Patch discriminator: feature maps of every block and a one-channel prediction map."""

    def __init__(
        self,
        num_channels: int = 3,
        block_expansion: int = 32,
        num_blocks: int = 4,
        max_features: int = 512,
        sn: bool = True,
    ) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DiscriminatorBlock(
                num_channels if i == 0 else min(max_features, block_expansion * 2**i),
                min(max_features, block_expansion * 2 ** (i + 1)),
                norm=i != 0,
                pool=i != num_blocks - 1,
                sn=sn,
            )
            for i in range(num_blocks)
        )
        last = min(max_features, block_expansion * 2**num_blocks)
        self.conv = _maybe_spectral(nn.Conv2d(last, 1, kernel_size=1), sn)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feature_maps = []
        for block in self.down_blocks:
            x = block(x)
            feature_maps.append(x)
        return feature_maps, self.conv(x)


class MultiScaleDiscriminator(nn.Module):
    """One :class:`Discriminator` per image scale (``discs.1`` for full resolution)."""

    def __init__(self, config: DiscriminatorConfig, num_channels: int = 3) -> None:
        super().__init__()
        self.scales = list(config.scales)
        self.discs = nn.ModuleDict(
            {
                f"{scale:g}".replace(".", "-"): Discriminator(
                    num_channels,
                    config.block_expansion,
                    config.num_blocks,
                    config.max_features,
                    config.sn,
                )
                for scale in self.scales
            }
        )

    def forward(self, images: list[torch.Tensor]) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        """``images``: the input at each of :attr:`scales`, in that order."""
        return [disc(image) for disc, image in zip(self.discs.values(), images, strict=True)]


def generator_adversarial_loss(fake: list[tuple[list[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
    """LSGAN generator loss: mean (1 - D(fake))^2, summed over scales."""
    return sum(((1 - prediction) ** 2).mean() for _, prediction in fake)


def feature_matching_loss(
    real: list[tuple[list[torch.Tensor], torch.Tensor]],
    fake: list[tuple[list[torch.Tensor], torch.Tensor]],
) -> torch.Tensor:
    """Mean L1 between the discriminator's feature maps of real and generated images, summed
    over blocks and scales."""
    return sum(
        (a.detach() - b).abs().mean()
        for (real_maps, _), (fake_maps, _) in zip(real, fake, strict=True)
        for a, b in zip(real_maps, fake_maps, strict=True)
    )


def discriminator_loss(
    real: list[tuple[list[torch.Tensor], torch.Tensor]],
    fake: list[tuple[list[torch.Tensor], torch.Tensor]],
) -> torch.Tensor:
    """LSGAN discriminator loss: mean (1 - D(real))^2 + D(fake)^2, summed over scales."""
    return sum(((1 - r) ** 2 + f**2).mean() for (_, r), (_, f) in zip(real, fake, strict=True))
