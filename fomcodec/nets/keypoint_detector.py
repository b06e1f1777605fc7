"""FOMM keypoint detector: an hourglass predicting K heatmaps and, per keypoint, a 2x2 Jacobian."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fomcodec.nets.blocks import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid


@dataclass
class Keypoints:
    """Keypoints of a batch of frames.

    Shape:
        value: (B, K, 2), (x, y) in [-1, 1].
        jacobian: (B, K, 2, 2) or None for models without Jacobians.
    """

    value: torch.Tensor
    jacobian: torch.Tensor | None = None

    def __getitem__(self, index: slice | int | list[int]) -> Keypoints:
        index = slice(index, index + 1) if isinstance(index, int) else index
        jacobian = None if self.jacobian is None else self.jacobian[index]
        return Keypoints(self.value[index], jacobian)

    def to(self, *args, **kwargs) -> Keypoints:
        jacobian = None if self.jacobian is None else self.jacobian.to(*args, **kwargs)
        return Keypoints(self.value.to(*args, **kwargs), jacobian)

    def __len__(self) -> int:
        return self.value.shape[0]

    @staticmethod
    def cat(parts: list[Keypoints]) -> Keypoints:
        """The frames of ``parts`` one after the other (all with Jacobians, or none)."""
        jacobians = [p.jacobian for p in parts]
        return Keypoints(
            torch.cat([p.value for p in parts]),
            None if jacobians[0] is None else torch.cat(jacobians),
        )


class KPDetector(nn.Module):
    """Detects keypoints (soft-argmax of heatmaps) and their local affine Jacobians.

    Shape:
        input: (B, C, H, W) RGB in [0, 1]; output: :class:`Keypoints`.
    """

    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
        single_jacobian_map: bool = False,
        pad: int = 0,
    ) -> None:
        super().__init__()
        self.predictor = Hourglass(
            block_expansion,
            in_features=num_channels,
            max_features=max_features,
            num_blocks=num_blocks,
        )
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=(7, 7), padding=pad)
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters,
                4 * self.num_jacobian_maps,
                kernel_size=(7, 7),
                padding=pad,
            )
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(
                    torch.tensor([1, 0, 0, 1] * self.num_jacobian_maps, dtype=torch.float)
                )
        else:
            self.jacobian = None
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the (downscaled input, hourglass feature map)."""
        if self.scale_factor != 1:
            x = self.down(x)
        return x, self.predictor(x)

    def forward(self, x: torch.Tensor) -> Keypoints:
        _, feature_map = self.features(x)
        logits = self.kp(feature_map)
        batch, num_kp, height, width = logits.shape
        heatmap = F.softmax(logits.view(batch, num_kp, -1) / self.temperature, dim=2)
        heatmap = heatmap.view(batch, num_kp, height, width)
        grid = make_coordinate_grid(height, width, heatmap.dtype, heatmap.device)
        value = (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))
        if self.jacobian is None:
            return Keypoints(value)
        jacobian_map = self.jacobian(feature_map).reshape(
            batch, self.num_jacobian_maps, 4, height, width
        )
        jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(batch, num_kp, 4, -1).sum(dim=-1)
        return Keypoints(value, jacobian.view(batch, num_kp, 2, 2))
